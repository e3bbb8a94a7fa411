"""Property tests: for any faults, a run ends as the saga rules say, with its effects to match."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import WorkflowStatus
from coordination.orchestration import Orchestrator
from coordination.testing import (
    FaultKind,
    FaultPlan,
    VirtualClock,
    assert_saga_atomic,
    fault_plans,
    messages,
    predict,
)
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PlaceOrder,
)
from tests.orchestration.flows import ForkJoin, Harness, Longer, SplitJoin, Start, WithPlain

ORDERS = messages(
    OrderPlaced,
    customer_id="c1",
    sku="sku-1",
    quantity=st.integers(min_value=1, max_value=3),
    amount_cents=st.integers(min_value=1, max_value=5_000),
)


def services() -> tuple[Any, ...]:
    return (
        InMemoryPayments({"c1": 10_000}),
        InMemorySellers({"sku-1": 5}),
        InMemoryLogistics(["ann", "bob"]),
        InMemoryNotifications(),
    )


# Which service holds the effect of each step, and how its snapshot shows it.
EFFECT = {
    "Payments.charge": (0, "charged"),
    "Sellers.reserve_stock": (1, "reserved"),
    "Logistics.assign_courier": (2, "assigned"),
    "Notifications.send_confirmation": (3, "sent"),
}


def check_effects(
    run: Any,
    plan: FaultPlan,
    parts: tuple[Any, ...],
    before: list[Any],
) -> None:
    prediction = predict(PlaceOrder, plan)
    assert run.status is prediction.status, run.journal.render()
    after = [p.snapshot() for p in parts]
    if run.status is WorkflowStatus.COMPLETED:
        for key, (index, field) in EFFECT.items():
            assert after[index][field], f"{key} left no effect"
        return
    if run.status is WorkflowStatus.COMPENSATED:
        # Everything undone, except what a step nothing can undo (the confirmation email)
        # did in an attempt whose result came back late: nothing is declared to undo it.
        landed = {fault.target for fault in plan if fault.kind is FaultKind.LATE}
        if "Notifications.send_confirmation" in landed:
            after[3] = before[3]
        assert after == before, "a compensated run left effects behind"
        return
    # COMPENSATION_FAILED: exactly the steps not undone keep their effects.
    still_applied = set(prediction.completed) - set(prediction.undone)
    for key in prediction.completed:
        index, field = EFFECT[key]
        assert bool(after[index][field]) == (key in still_applied), key


@given(order=ORDERS, plan=fault_plans(PlaceOrder))
def test_any_faults_end_completed_compensated_or_compensation_failed(
    order: OrderPlaced, plan: FaultPlan
) -> None:
    parts = services()
    before = [p.snapshot() for p in parts]
    plan.install(*parts)
    clock = VirtualClock()
    run = PlaceOrder(*parts, clock=clock).run(order)
    assert_saga_atomic(run, PlaceOrder)
    check_effects(run, plan, parts, before)
    prediction = predict(PlaceOrder, plan)
    for target, attempts in prediction.attempts.items():
        made = [call for call in plan.calls if call.target == target]
        assert len(made) == attempts, (target, made)
    # Every call of one step shared one idempotency key; a compensation has one per undo it
    # ran: the step's own, and each late result's (`<key>:late<n>:undo`).
    for target in prediction.attempts:
        keys = {call.key for call in plan.calls if call.target == target}
        if target in {"Payments.charge", "Sellers.reserve_stock", "Logistics.assign_courier",
                      "Notifications.send_confirmation"}:  # fmt: skip
            assert len(keys) == 1, (target, keys)
        else:
            bases = {re.sub(r":late\d+:undo$", ":undo", str(key)) for key in keys}
            assert len(bases) == 1, (target, keys)


@given(order=ORDERS, plan=fault_plans(PlaceOrder))
def test_run_async_reaches_the_same_outcome(order: OrderPlaced, plan: FaultPlan) -> None:
    parts = services()
    before = [p.snapshot() for p in parts]
    plan.install(*parts)
    run = asyncio.run(PlaceOrder(*parts, clock=VirtualClock()).run_async(order))
    assert_saga_atomic(run, PlaceOrder)
    check_effects(run, plan, parts, before)  # the same rule, whatever the concurrency


def test_backoff_waits_follow_the_retry_policy_on_the_virtual_clock() -> None:
    from coordination.testing import Fault, FaultKind

    parts = services()
    plan = FaultPlan.of(
        Fault("Payments.charge", 1, FaultKind.ERROR), Fault("Payments.charge", 2, FaultKind.TIMEOUT)
    )
    plan.install(*parts)
    clock = VirtualClock()
    orders: Orchestrator[OrderPlaced, Any] = PlaceOrder(*parts, clock=clock, random=lambda: 0.5)
    run = orders.run(
        OrderPlaced(
            order_id="o1",
            customer_id="c1",
            email="a@b.c",
            sku="sku-1",
            quantity=1,
            amount_cents=100,
            address="x",
        )
    )
    assert run.status is WorkflowStatus.COMPLETED
    # Retry(attempts=3, backoff=0.05): 0.05 then 0.1, jitter factor exactly 1.0 here.
    assert clock.sleeps == [0.05, 0.1]


# Flows with input-typed undos (Gamma.cancel_third), tuple outputs (Split.split, undone by
# one member) and joins, from the orchestration tests' shared flows.
OTHER_FLOWS = [Longer, SplitJoin, ForkJoin, WithPlain]


@pytest.mark.parametrize("flow", OTHER_FLOWS, ids=lambda flow: flow.__name__)
@given(data=st.data())
def test_other_flows_keep_the_saga_rules_for_any_faults(
    flow: type[Orchestrator[Any, Any]], data: st.DataObject
) -> None:
    plan = data.draw(fault_plans(flow))
    harness = Harness(flow)
    plan.install(*harness.fakes.values())
    run = harness.orchestrator.run(Start(n=1))
    assert_saga_atomic(run, flow)
    prediction = predict(flow, plan)
    assert run.status is prediction.status, run.journal.render()
    undone = [r.key.removesuffix(":undo") for r in run.steps if r.key.endswith(":undo")]
    if run.status is not WorkflowStatus.COMPENSATION_FAILED:
        assert undone == list(prediction.undone)
    # An input-typed undo ran for the failed step itself when it has one.
    if prediction.failed == "Gamma.third" and run.status is WorkflowStatus.COMPENSATED:
        own = [u for u in undone if ":late" not in u]
        assert own[0] == "Gamma.third"  # after the undos of its late results, if any
        assert all(":late" in u for u in undone[: undone.index("Gamma.third")])
