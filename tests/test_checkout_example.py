"""The checkout example: a business outcome, a webhook wait, a timeout, under both runners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coordination import EntryKind, WorkflowStatus
from coordination.testing import assert_equivalent, run_both
from examples.checkout import (
    CardPayments,
    CheckoutStarted,
    OrderBook,
    OrderConfirmed,
    OrderDeclined,
    PaymentAbandoned,
    PaymentFailed,
    PaymentSettled,
    WebhookCheckout,
)
from examples.checkout.flow import WEBHOOK_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
S = WorkflowStatus


def services() -> tuple[CardPayments, OrderBook]:
    return CardPayments(limit_cents=10_000), OrderBook()


@pytest.mark.parametrize(
    ("amount", "then", "status", "output"),
    [
        (2_500, (PaymentSettled(order_id="o"),), S.COMPLETED,
         OrderConfirmed(order_id="o", amount_cents=2_500)),
        (2_500, (PaymentFailed(order_id="o", reason="no"),), S.COMPLETED,
         PaymentAbandoned(order_id="o", reason="no")),
        (25_000, (), S.COMPLETED, OrderDeclined(order_id="o", reason="over the card's limit")),
        (2_500, (WEBHOOK_TIMEOUT,), S.COMPENSATED, None),
    ],
    ids=["settled", "failed", "declined", "timed-out"],
)  # fmt: skip
def test_every_path_agrees_under_all_four_entry_points(
    amount: int, then: tuple[object, ...], status: WorkflowStatus, output: object
) -> None:
    both = run_both(
        WebhookCheckout, services, CheckoutStarted(order_id="o", amount_cents=amount),
        correlation_id="o", then=then,  # type: ignore[arg-type]
    )  # fmt: skip
    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {status}
    assert both.orchestrated.output == output


def test_a_declined_card_skips_the_wait() -> None:
    run = WebhookCheckout(*services()).run(CheckoutStarted(order_id="o", amount_cents=25_000))
    assert run.status is S.COMPLETED
    assert run.journal.names(EntryKind.SKIPPED) == [
        "wait.PaymentSettled|PaymentFailed",
        "Orders.confirm",
        "Orders.abandon",
    ]
    assert not run.journal.of_kind(EntryKind.WAITING)


def test_the_demo_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.checkout"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert len(lines) == 8
    assert "o-silent    COMPENSATED voided" in result.stdout
