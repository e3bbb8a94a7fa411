"""Graphs and lint know the flow shapes: business outcomes, pivots and outside messages.

An action on one branch of a business outcome is never "irreversible before a failure"
of an action on the other branch, and a branch's own result is no unconsumed event; a
pivot is the point of no return on purpose; a wait's message comes from outside, so its
consumers are no unproduced input. The graph marks pivots and outcome branches.
"""

from __future__ import annotations

from typing import Any

import pytest

from coordination.choreography import Choreography, EventBus, wait
from coordination.observe import graph, lint
from examples.checkout import CardPayments, OrderBook, PaymentFailed, PaymentSettled
from examples.checkout import WebhookCheckout as CheckoutExample
from tests.branching import Checkout as BranchingCheckout
from tests.branching import checkout_services
from tests.pivot_flow import Checkout as PivotCheckout
from tests.pivot_flow import pivot_services
from tests.waiting_flow import PaymentFailed as WebhookFailed
from tests.waiting_flow import PaymentSettled as WebhookSettled
from tests.waiting_flow import WebhookCheckout, webhook_services

SHAPES: dict[str, Any] = {
    "checkout-example": lambda: CheckoutExample,
    "checkout-example-adopted": lambda: Choreography(
        EventBus(), CardPayments(), OrderBook(), flow=CheckoutExample
    ),
    "branches": lambda: BranchingCheckout,
    "branches-derived": lambda: Choreography(EventBus(), *checkout_services()),
    "pivot": lambda: PivotCheckout,
    "pivot-derived": lambda: Choreography(EventBus(), *pivot_services()),
    "webhook": lambda: WebhookCheckout,
    "webhook-derived": lambda: Choreography(
        EventBus(), *webhook_services(), waits=(wait(WebhookSettled | WebhookFailed),)
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_no_finding_on_the_flow_shapes(shape: str) -> None:
    assert lint(SHAPES[shape]()) == []


def test_an_irreversible_step_on_the_same_branch_is_still_found() -> None:
    from coordination.orchestration import Orchestrator, step
    from tests.pivot_flow import Couriers, Mailer, Payments, Purchase, Shipped

    class Unpivoted(Orchestrator[Purchase, Shipped]):
        steps = (step(Payments.charge), step(Mailer.send_receipt, pivot=False), step(Couriers.ship))

    assert [f.code for f in lint(Unpivoted)] == ["irreversible-before-failure"]


def test_the_graph_marks_pivots_and_outcomes() -> None:
    assert "pivot: no undo after it" in graph(PivotCheckout).mermaid()
    drawn = graph(CheckoutExample).mermaid()
    assert "one of 2 outcomes" in drawn
    assert PaymentSettled.__name__ in drawn and PaymentFailed.__name__ in drawn  # noqa: PT018
