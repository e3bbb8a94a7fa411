"""Deliberate type errors against the DESIGN.md example: mypy must report each marked line.

`tests/test_typing.py` expects exactly the errors marked `# expect-error: <code>` here, which
proves that the typing test can fail. This module is never imported.
"""

from __future__ import annotations

from coordination import Context

from .design_example import (
    ChargeOrder,
    FakePayments,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    Payments,
)


def wrong() -> None:
    payments = FakePayments()
    ctx = Context("flow", "key")
    order = OrderPlaced(order_id="o-1", customer_id="c-1", amount_cents=1)
    payments.charge("not a message", ctx)  # expect-error: arg-type
    captured = payments.charge(order, ctx)
    payments.refund(order, ctx)  # expect-error: arg-type
    orders = ChargeOrder(payments)
    orders.run(captured)  # expect-error: arg-type
    run = orders.run(order)
    not_an_order: OrderPlaced | None = run.output  # expect-error: assignment
    interface: Payments = payments  # through the interface, typed by the Action descriptor
    interface.charge(captured, ctx)  # expect-error: arg-type
    refunded: PaymentRefunded = interface.charge(order, ctx)  # expect-error: assignment
    ok: PaymentCaptured = interface.charge(order, ctx)
    print(not_an_order, refunded, ok)
