"""The bundled demo runs, and shows what it promises: a retried charge and a compensated order."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.ecommerce.demo import main

ROOT = Path(__file__).resolve().parent.parent


def check_output(text: str) -> None:
    # The good order: completed, with a tracking number, after a retried charge.
    assert re.search(r"order-1: COMPLETED; tracking number TRK-o-1-\d{4}", text)
    assert re.search(r"ConfirmationSent: .*tracking_number=TRK-o-1-\d{4}", text)
    assert re.search(r"failed +Payments\.charge attempt 1 .*TimeoutError: gateway timeout", text)
    assert re.search(r"retried +Payments\.charge attempt 2", text)
    assert re.search(r"completed +Payments\.charge attempt 2", text)
    # The failing order: compensated, the courier released and the payment refunded.
    assert "order-2: COMPENSATED" in text
    assert re.search(r"failed +Sellers\.reserve_stock .*OutOfStock", text)
    assert re.search(r"compensated +Logistics\.release_courier \(undoes Logistics\.assign", text)
    assert re.search(r"compensated +Payments\.refund \(undoes Payments\.charge\)", text)
    assert "PaymentRefunded: order_id=o-2" in text
    assert "CourierReleased: order_id=o-2" in text
    assert "Every service is back where it was before this order." in text
    # Courier released before the payment is refunded: newest first.
    assert text.index("compensated         Logistics.release_courier") < text.index(
        "compensated         Payments.refund"
    )


def test_python_m_examples_ecommerce_runs_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "examples.ecommerce"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    check_output(result.stdout)


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    check_output(capsys.readouterr().out)


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "python -m examples.ecommerce" in capsys.readouterr().out
