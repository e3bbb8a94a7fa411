"""The bundled demo runs and shows what it promises, in both modes: a retried charge, a
compensated order, the process monitor, loyalty points, and the same outcome either way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.ecommerce.demo import main

ROOT = Path(__file__).resolve().parent.parent


def check_output(text: str) -> None:
    assert "Part 2: choreography" in text, text
    orchestrated, _, choreographed = text.partition("Part 2: choreography")
    choreographed, _, summary = choreographed.partition("\nSummary\n")

    # Orchestration, the good order: completed with a tracking number, after a retried charge.
    assert re.search(r"ConfirmationSent: .*tracking_number=TRK-o-1-\d{4}", orchestrated)
    # Both modes tell the same story in their journals.
    for part in (orchestrated, choreographed):
        assert re.search(
            r"failed +Payments\.charge attempt 1 .*TimeoutError: gateway timeout", part
        )
        assert re.search(r"retried +Payments\.charge attempt 2", part)
        assert re.search(r"completed +Payments\.charge attempt 2", part)
        assert re.search(r"completed +Notifications\.send_confirmation attempt 1", part)
        assert re.search(r"failed +Sellers\.reserve_stock .*OutOfStock", part)
        released = re.search(
            r"compensated +Logistics\.release_courier \(undoes Logistics\.assign", part
        )
        refunded = re.search(r"compensated +Payments\.refund \(undoes Payments\.charge\)", part)
        assert released
        assert refunded
        assert released.start() < refunded.start()  # newest first: courier, then payment
        assert "Every service is back where it was before this order." in part
    # Orchestration, the failing order: what the compensations returned.
    assert "PaymentRefunded: order_id=o-2" in orchestrated
    assert "CourierReleased: order_id=o-2" in orchestrated
    # Choreography: the process monitor's views, the published events, the loyalty points.
    assert "order-1: COMPLETED (started by OrderPlaced)" in choreographed
    assert "order-2: COMPENSATED (started by OrderPlaced)" in choreographed
    assert re.search(r"failed: +Sellers\.reserve_stock\n", choreographed)
    assert re.search(r"compensated: +Logistics\.assign_courier, Payments\.charge\n", choreographed)
    assert re.search(r"workflow_started +\S+ OrderPlaced", choreographed)
    for event in ("PaymentCaptured", "ActionFailed", "CourierReleased", "PaymentRefunded"):
        assert re.search(rf"published +\w+\.{event} ", choreographed), event
    assert "+25 points for alice (order confirmed)" in choreographed
    assert "saw the refund of o-2; o-2 had earned no points" in choreographed
    assert choreographed.count("points now: alice=25") == 2
    # The same services, the same outcome.
    assert choreographed.count("    Payments       same: ") == 2
    assert "DIFFERENT" not in text
    assert "The outcome is the same" in text
    # One summary line per order per mode.
    assert re.search(r"order-1  orchestration  COMPLETED; tracking number TRK-o-1-\d{4};", summary)
    assert re.search(r"order-1  choreography   COMPLETED; tracking number TRK-o-1-\d{4};", summary)
    assert re.search(r"order-2  orchestration  COMPENSATED; Sellers\.reserve_stock failed", summary)
    assert re.search(r"order-2  choreography   COMPENSATED; Sellers\.reserve_stock failed", summary)
    assert "loyalty +25 points" in summary
    assert "no loyalty points" in summary
    assert summary.count("retried") == 2  # the good order, in each mode


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
