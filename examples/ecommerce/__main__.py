"""`python -m examples.ecommerce`: run the bundled demo."""

from __future__ import annotations

import os
import sys

from .demo import main

if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # piped into a reader that stopped early, like `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
