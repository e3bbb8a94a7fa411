"""Where a wheel carries the bundled examples (`coordination demo` after a plain install).

The sources live in the repository's `examples/`; the wheel build copies
`examples/ecommerce/` here, so this package is empty in a checkout.
"""
