"""Orchestration and choreography of the same participants agree, whatever fails.

For the e-commerce flow and a trip-booking flow of our own (`tests/equivalence_flows.py`:
a deposit, then seats and a room side by side, then an itinerary that joins them), and for
every failure choice — which action, which attempt, retries exhausted or not, a transient
error, an injected timeout or a business refusal — `run_both()` runs one message through
the `Orchestrator` and through a `Choreography` of fresh, identical participants, and the
two must reach the status `predict()` works out from the plan alone and leave the
participants in the same final state (their `snapshot()`s): untouched when COMPENSATED,
every participant changed when COMPLETED.

Only forward actions fail here (`fault_plans(flow, compensations=False)`). With failing
compensations the two patterns may legitimately differ inside a parallel group, the same way
`run()` and `run_async()` can: `run()` starts no branch after one failed, while the
choreography delivers the group's common input to every branch and retries by delayed
re-delivery, so a sibling may already have completed. Its undo is then owed in the
choreography and not in the orchestration, and if that undo fails the choreography ends
COMPENSATION_FAILED where the orchestration ends COMPENSATED. With compensations that
succeed the sibling's effect is undone, and both end in the same state. For the same reason
attempts are compared only where both patterns must make the same ones: steps of the
groups before the one that failed, and a failing step alone in its group.

Faults that fire after the effect landed (`after_effect=True`) are injected only into
`Hotels.hold_room`, the step undone by its *input*: its undo runs for a step that started
and failed too, so a landed effect is undone either way. (An output-typed undo never runs
for a failed step, so a landed effect there is outside what a saga can undo.)

Known disagreement (see `test_a_retry_cut_short_by_a_failed_sibling_is_still_undone`): in
the choreography, a step waiting for a retry when another step fails is dropped without
its input-typed undo, so an effect its failed attempt landed stays applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coordination import EntryKind, Journal, Message, Participant, WorkflowStatus
from coordination.orchestration import Orchestrator
from coordination.testing import (
    BothRuns,
    Fault,
    FaultKind,
    FaultPlan,
    assert_equivalent,
    fault_plans,
    messages,
    predict,
    run_both,
)
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PlaceOrder,
)
from tests.equivalence_flows import (
    BookTrip,
    InMemoryAgency,
    InMemoryAirline,
    InMemoryHotels,
    InMemoryWallet,
    TripRequested,
    travel_services,
)

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED


def shop() -> tuple[Participant, ...]:
    """Fresh e-commerce services with enough money, stock and couriers for any order here."""
    return (
        InMemoryPayments({"c1": 10_000}),
        InMemorySellers({"sku-1": 5}),
        InMemoryLogistics(["ann", "bob"]),
        InMemoryNotifications(),
    )


@dataclass(frozen=True)
class Case:
    """One flow under test: its orchestrator, its participants, and its start messages."""

    name: str
    flow: type[Orchestrator[Any, Any]]
    services: Callable[[], Sequence[Participant]]
    starts: st.SearchStrategy[Any]
    start: Message

    def arranged(self, order: Sequence[int]) -> Callable[[], tuple[Participant, ...]]:
        """A factory of fresh participants in `order` (the choreography subscribes them so)."""

        def build() -> tuple[Participant, ...]:
            parts = self.services()
            return tuple(parts[i] for i in order)

        return build


ECOMMERCE = Case(
    "ecommerce",
    PlaceOrder,
    shop,
    messages(
        OrderPlaced,
        customer_id="c1",
        sku="sku-1",
        quantity=st.integers(min_value=1, max_value=3),
        amount_cents=st.integers(min_value=1, max_value=5_000),
    ),
    OrderPlaced(
        order_id="o-1",
        customer_id="c1",
        email="ada@example.com",
        sku="sku-1",
        quantity=2,
        amount_cents=3_000,
        address="1 Analytical Way",
    ),
)
TRAVEL = Case(
    "travel",
    BookTrip,
    travel_services,
    messages(
        TripRequested,
        traveller_id="t1",
        flight="XY123",
        hotel="Grand",
        seats=st.integers(min_value=1, max_value=3),
        nights=st.integers(min_value=1, max_value=14),
        deposit_cents=st.integers(min_value=1, max_value=50_000),
    ),
    TripRequested(
        trip_id="trip-1",
        traveller_id="t1",
        flight="XY123",
        seats=2,
        hotel="Grand",
        nights=3,
        deposit_cents=20_000,
    ),
)
CASES = [ECOMMERCE, TRAVEL]
ORDERS = {"as listed": (0, 1, 2, 3), "reversed": (3, 2, 1, 0)}


def states(participants: Sequence[Any]) -> dict[type, Any]:
    """Each participant's `snapshot()`, by implementation class (whatever their order)."""
    return {type(participant): participant.snapshot() for participant in participants}


def started(journal: Journal) -> dict[str, int]:
    """Attempts made per `Interface.method` (actions and compensations)."""
    return dict(Counter(entry.name for entry in journal if entry.kind is EntryKind.STARTED))


def check(case: Case, both: BothRuns, plan: FaultPlan) -> None:
    """Both patterns agree with each other, with `predict()`, and with the untouched state."""
    assert_equivalent(both)
    run, view = both.orchestrated, both.choreographed
    prediction = predict(case.flow, plan)
    assert run.status is prediction.status, run.journal.render()
    assert view.status is prediction.status, view.render()

    fresh = states(case.services())
    left = states(both.orchestration_participants)
    if prediction.status is COMPENSATED:
        assert left == fresh, "a compensated run left effects behind"
        assert view.failed, view.render()
    else:
        assert prediction.status is COMPLETED
        assert run.output is not None
        for kind, state in left.items():
            assert state != fresh[kind], f"{kind.__name__} shows no effect of a completed run"

    # The orchestration runs sequentially: every attempt is as predicted, undos included.
    assert started(run.journal) == prediction.attempts, run.journal.render()
    # The choreography makes the same attempts wherever the outcome fixes them.
    made = started(view.journal)
    for group in case.flow.flow.groups:
        failing = prediction.failed in {compiled.key for compiled in group}
        if failing and len(group) > 1:
            assert set(view.failed) <= {compiled.key for compiled in group}, view.render()
            break
        for compiled in group:
            assert made.get(compiled.key, 0) == prediction.attempts[compiled.key], (
                compiled.key,
                view.render(),
            )
            undo = compiled.compensation
            if undo is not None and not failing:
                assert made.get(undo.qualname, 0) == prediction.attempts.get(undo.qualname, 0)
        if failing:
            assert view.failed == (prediction.failed,), view.render()
            break


# -- any forward faults (hypothesis) ---------------------------------------------------------


def any_forward_faults(case: Case, data: st.DataObject) -> None:
    start = data.draw(case.starts, label="start")
    order = data.draw(st.permutations(range(len(case.services()))), label="participant order")
    plan = data.draw(fault_plans(case.flow, compensations=False), label="plan")
    check(case, run_both(case.flow, case.arranged(order), start, plan), plan)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@given(data=st.data())
def test_any_forward_faults_reach_the_same_status_and_state(
    case: Case, data: st.DataObject
) -> None:
    any_forward_faults(case, data)


@pytest.mark.long
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@settings(max_examples=1_500)
@given(data=st.data())
def test_any_forward_faults_agree_on_many_more_examples(case: Case, data: st.DataObject) -> None:
    any_forward_faults(case, data)


def test_fault_plans_without_compensations_only_fail_forward_actions() -> None:
    forward = {compiled.key for case in CASES for compiled in case.flow.flow.steps}

    @settings(max_examples=50)
    @given(plan=st.one_of(*(fault_plans(case.flow, compensations=False) for case in CASES)))
    def only_forward(plan: FaultPlan) -> None:
        assert plan.targets() <= forward

    only_forward()


# -- every single failure (deterministic) ----------------------------------------------------


def _kind(attempt: int) -> FaultKind:
    """Transient failures alternate between an error and an injected timeout."""
    return FaultKind.ERROR if attempt % 2 else FaultKind.TIMEOUT


def single_failures() -> list[Any]:
    """For each forward action: retried at each attempt, exhausted, and refused at each."""
    cases = []
    for case in CASES:
        for compiled in case.flow.flow.steps:
            target, attempts = compiled.key, compiled.step.retry.attempts
            for n in range(1, attempts + 1):
                transient = [Fault(target, a, _kind(a)) for a in range(1, n + 1)]
                outcome = "exhausted" if n == attempts else "retried"
                status = COMPENSATED if n == attempts else COMPLETED
                cases.append(
                    pytest.param(
                        case,
                        FaultPlan(tuple(transient)),
                        status,
                        id=f"{case.name}-{target}-fails-{n}-of-{attempts}-{outcome}",
                    )
                )
                refused = [*transient[:-1], Fault(target, n, FaultKind.REFUSAL)]
                cases.append(
                    pytest.param(
                        case,
                        FaultPlan(tuple(refused)),
                        COMPENSATED,
                        id=f"{case.name}-{target}-refused-at-{n}",
                    )
                )
    return cases


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize(("case", "plan", "status"), single_failures())
def test_every_single_failure_reaches_the_same_status_and_state(
    case: Case, plan: FaultPlan, status: WorkflowStatus, order: tuple[int, ...]
) -> None:
    both = run_both(case.flow, case.arranged(order), case.start, plan)
    assert both.orchestrated.status is status
    check(case, both, plan)


def test_every_forward_action_and_attempt_is_covered() -> None:
    ids = {param.id for param in single_failures()}
    for case in CASES:
        for compiled in case.flow.flow.steps:
            for n in range(1, compiled.step.retry.attempts + 1):
                assert any(i.startswith(f"{case.name}-{compiled.key}-fails-{n}-") for i in ids)
                assert f"{case.name}-{compiled.key}-refused-at-{n}" in ids


def test_without_faults_both_complete_with_the_same_state() -> None:
    for case in CASES:
        both = run_both(case.flow, case.services, case.start)
        assert both.orchestrated.status is COMPLETED
        check(case, both, FaultPlan())


# -- business refusals of the participants themselves ----------------------------------------


def _short_of(what: str) -> Callable[[], tuple[Participant, ...]]:
    def build() -> tuple[Participant, ...]:
        if what in ("money", "stock", "couriers"):
            return (
                InMemoryPayments({"c1": 10 if what == "money" else 10_000}),
                InMemorySellers({"sku-1": 1 if what == "stock" else 5}),
                InMemoryLogistics([] if what == "couriers" else ["ann"]),
                InMemoryNotifications(),
            )
        return (
            InMemoryWallet({"t1": 10 if what == "deposit" else 100_000}),
            InMemoryAirline({"XY123": 1 if what == "seats" else 6}),
            InMemoryHotels({"Grand": [] if what == "rooms" else ["101"]}),
            InMemoryAgency(),
        )

    return build


@pytest.mark.parametrize(
    ("case", "what"),
    [
        (ECOMMERCE, "money"),
        (ECOMMERCE, "stock"),
        (ECOMMERCE, "couriers"),
        (TRAVEL, "deposit"),
        (TRAVEL, "seats"),
        (TRAVEL, "rooms"),
    ],
)
def test_a_participant_refusing_on_its_own_is_undone_alike(case: Case, what: str) -> None:
    build = _short_of(what)
    both = run_both(case.flow, build, case.start)
    assert_equivalent(both)
    assert both.orchestrated.status is COMPENSATED
    assert both.choreographed.status is COMPENSATED
    assert states(both.choreography_participants) == states(build())


# -- effects that landed before the failure: only under an input-typed undo ------------------

HOLD = "Hotels.hold_room"
INPUT_UNDONE = {
    compiled.key for compiled in BookTrip.flow.steps if compiled.undo_input_slot is not None
}


@st.composite
def plans_with_landed_holds(draw: st.DrawFn) -> FaultPlan:
    """Forward faults, where each fault of the input-undone step may fire after its effect."""
    plan = draw(fault_plans(BookTrip, compensations=False))
    return FaultPlan(
        tuple(
            Fault(f.target, f.attempt, f.kind, after_effect=draw(st.booleans()))
            if f.target in INPUT_UNDONE
            else f
            for f in plan
        )
    )


def test_the_travel_flow_has_exactly_one_input_undone_step() -> None:
    assert {HOLD} == INPUT_UNDONE


@given(start=TRAVEL.starts, plan=plans_with_landed_holds())
@example(
    start=TRAVEL.start,
    plan=FaultPlan.of(
        Fault(HOLD, 1, FaultKind.ERROR, after_effect=True),
        Fault(HOLD, 2, FaultKind.TIMEOUT, after_effect=True),
        Fault(HOLD, 3, FaultKind.ERROR, after_effect=True),
    ),
)
@example(
    start=TRAVEL.start,
    plan=FaultPlan.of(
        Fault(HOLD, 1, FaultKind.TIMEOUT, after_effect=True),
        Fault("Agency.issue_itinerary", 1, FaultKind.REFUSAL),
    ),
)
def test_landed_effects_of_an_input_undone_step_agree(start: Any, plan: FaultPlan) -> None:
    # Participants in declared order: the choreography then settles each hold before a
    # sibling's failure can cut its retries short (the other order is the known bug below).
    # Enumerating every plan of this shape found no disagreement in this order.
    check(TRAVEL, run_both(BookTrip, TRAVEL.services, start, plan), plan)


@pytest.mark.long
@settings(max_examples=1_500)
@given(start=TRAVEL.starts, plan=plans_with_landed_holds())
def test_landed_effects_agree_on_many_more_examples(start: Any, plan: FaultPlan) -> None:
    check(TRAVEL, run_both(BookTrip, TRAVEL.services, start, plan), plan)


def test_a_retry_cut_short_by_a_failed_sibling_is_still_undone() -> None:
    # The hotel is subscribed before the airline, so in the choreography the hold runs
    # first: its attempt 1 holds a room and then fails (retried in 0.02 s); the airline
    # refuses. The hold waiting for its retry has started, so its input-typed undo
    # (Hotels.release_room) is owed: the choreography runs it, and the room is free again.
    # The orchestration, in declared order, never starts the hold. Both end COMPENSATED.
    # (This once failed: the waiting hold was dropped without its undo.)
    plan = FaultPlan.of(
        Fault(HOLD, 1, FaultKind.ERROR, after_effect=True),
        Fault("Airline.book_seats", 1, FaultKind.REFUSAL),
    )
    both = run_both(BookTrip, TRAVEL.arranged((0, 2, 1, 3)), TRAVEL.start, plan)
    assert both.orchestrated.status is COMPENSATED
    assert both.choreographed.status is COMPENSATED
    assert_equivalent(both)
