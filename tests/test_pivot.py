"""The pivot: the point of no return. Before it steps are undone; after it, never.

A step after the pivot that fails for good parks the run for an operator (nothing is
undone: the pivot's effect cannot be); the operator's `retry()` runs it again, under its
key, and the run goes on. Under all four entry points, in memory and on SQLite.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import (
    Context,
    EntryKind,
    Event,
    NonRetryable,
    Participant,
    Retry,
    WorkflowStatus,
    action,
)
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError, UsageError
from coordination.orchestration import Orchestrator, parallel, step, wait
from coordination.stores import SQLiteStore
from coordination.testing import (
    ENTRY_POINTS,
    Fault,
    FaultKind,
    FaultPlan,
    VirtualClock,
    assert_crash_safe,
    assert_equivalent,
    fault_plans,
    run_both,
    settle_late_results,
)
from tests.pivot_flow import (
    Charged,
    Checkout,
    Couriers,
    Mailer,
    Payments,
    Purchase,
    ReceiptSent,
    Shipped,
    pivot_services,
)

S = WorkflowStatus
START = Purchase(n=3)


def snapshots(participants: Any) -> list[Any]:
    return [p.snapshot() for p in participants]


# -- declarations ------------------------------------------------------------------------


class Done(Event):
    n: int


class Undoable(Participant):
    @action
    @abstractmethod
    def finish(self, shipped: Shipped) -> Done: ...

    @finish.compensation
    @abstractmethod
    def unfinish(self, done: Done) -> None: ...


def test_a_compensation_after_the_pivot_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"Undoable.finish runs after the pivot"):

        class Broken(Orchestrator[Purchase, Done]):
            steps = (
                step(Payments.charge),
                step(Mailer.send_receipt),
                step(Couriers.ship),
                step(Undoable.finish),
            )


def test_step_pivot_overrides_the_actions_own() -> None:
    class Later(Orchestrator[Purchase, Shipped]):
        steps = (
            step(Payments.charge),
            step(Mailer.send_receipt, pivot=False),
            step(Couriers.ship, pivot=True),
        )

    assert Later.plan.pivot is not None
    assert Later.plan.pivot.key == "Couriers.ship"

    class Unpivoted(Orchestrator[Purchase, Shipped]):
        steps = (step(Payments.charge), step(Mailer.send_receipt, pivot=False), step(Couriers.ship))

    assert Unpivoted.plan.pivot is None


class Other(Participant):
    @action
    @abstractmethod
    def also(self, charged: Charged) -> Done: ...


def test_a_pivot_runs_alone_and_there_is_one() -> None:
    with pytest.raises(DefinitionError, match=r"side by side with Other\.also"):

        class Crowded(Orchestrator[Purchase, Any]):
            steps = (step(Payments.charge), parallel(step(Mailer.send_receipt), step(Other.also)))

    with pytest.raises(DefinitionError, match="both pivots"):

        class Twice(Orchestrator[Purchase, Shipped]):
            steps = (
                step(Payments.charge),
                step(Mailer.send_receipt),
                step(Couriers.ship, pivot=True),
            )

    with pytest.raises(DefinitionError, match="pivot"):
        step(Couriers.ship, pivot="yes")  # type: ignore[arg-type]


def test_the_pivot_is_part_of_the_stored_shape() -> None:
    class Unpivoted(Orchestrator[Purchase, Shipped]):
        steps = (step(Payments.charge), step(Mailer.send_receipt, pivot=False), step(Couriers.ship))

    assert Checkout.plan.shape != Unpivoted.plan.shape  # a changed pivot is a FlowChanged


# -- before, at and after the pivot -------------------------------------------------------


def test_before_the_pivot_a_failure_undoes() -> None:
    plan = FaultPlan((Fault("Mailer.send_receipt", 1, FaultKind.REFUSAL),))
    both = run_both(Checkout, pivot_services, START, plan, correlation_id="wf")

    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {S.COMPENSATED}
    assert both["run"].journal.names(EntryKind.COMPENSATED) == ["Payments.refund"]


def test_after_the_pivot_a_failure_parks_the_run_and_undoes_nothing() -> None:
    both = run_both(Checkout, lambda: pivot_services([True]), START, correlation_id="wf")

    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {S.PARKED}
    for outcome in both.outcomes:
        assert not outcome.journal.of_kind(EntryKind.COMPENSATED)
        # Retried forward by its own policy first: three attempts, then parked.
        assert [e.attempt for e in outcome.journal.of_kind(EntryKind.FAILED)] == [1, 2, 3]
    run = both.orchestrated
    assert run.parked_reason is not None
    assert "Couriers.ship failed after the pivot Mailer.send_receipt" in run.parked_reason
    assert "ConnectionError" in str(run.error)
    assert both.choreographed.parked_reason == run.parked_reason
    assert snapshots(both["run"].participants)[:2] == [[("wf:Payments.charge", 3)], [
        ("wf:Mailer.send_receipt", 3)]]  # fmt: skip


def test_an_operators_retry_resumes_a_parked_run_past_the_pivot() -> None:
    broken = [True]
    services = pivot_services(broken)
    orders = Checkout(*services, clock=VirtualClock())
    assert orders.run(START, workflow_id="wf").status is S.PARKED

    with pytest.raises(UsageError, match="point of no return"):
        orders.cancel("wf")
    broken[0] = False  # the courier's API is back
    run = orders.retry("wf")

    assert run.status is S.COMPLETED
    assert run.output == Shipped(n=3)
    assert not run.journal.of_kind(EntryKind.COMPENSATED)
    assert services[2].snapshot() == [("wf:Couriers.ship", 3)]  # type: ignore[attr-defined]


def test_a_retry_that_fails_again_parks_again() -> None:
    orders = Checkout(*pivot_services([True]), clock=VirtualClock())
    orders.run(START, workflow_id="wf")
    again = orders.retry("wf")

    assert again.status is S.PARKED
    assert len(again.journal.of_kind(EntryKind.FAILED)) == 6  # 3 attempts, twice


def test_a_choreography_parks_after_the_pivot_and_an_operator_resumes_it() -> None:
    broken = [True]
    clock = VirtualClock()
    services = pivot_services(broken)
    flow = Choreography(EventBus(clock=clock), *services, flow=Checkout, clock=clock)
    flow.publish(START, correlation_id="wf")
    assert flow.monitor.get("wf").status is S.PARKED

    with pytest.raises(UsageError, match="point of no return"):
        flow.cancel("wf")
    broken[0] = False
    view = flow.retry("wf")

    assert view.status is S.COMPLETED
    assert view.done == ("Payments.charge", "Mailer.send_receipt", "Couriers.ship")
    assert services[2].snapshot() == [("wf:Couriers.ship", 3)]  # type: ignore[attr-defined]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Any]:
    opened: list[SQLiteStore] = []

    def make() -> SQLiteStore:
        opened.append(SQLiteStore(tmp_path / f"store-{len(opened)}.db"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_on_sqlite_every_entry_point_parks_past_the_pivot(stores: Any) -> None:
    both = run_both(
        Checkout, lambda: pivot_services([True]), START, correlation_id="wf", stores=stores
    )
    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {S.PARKED}


@pytest.mark.parametrize("runner", ["orchestration", "choreography"])
def test_a_run_parked_on_sqlite_is_retried_by_another_process(tmp_path: Path, runner: str) -> None:
    path = tmp_path / "orders.db"

    def build(store: SQLiteStore, broken: bool) -> Any:
        clock = VirtualClock()
        services = pivot_services([broken])
        if runner == "orchestration":
            return Checkout(*services, store=store, clock=clock)
        return Choreography(
            EventBus(clock=clock), *services, flow=Checkout, store=store, clock=clock
        )

    with SQLiteStore(path) as store:
        first = build(store, broken=True)
        if runner == "orchestration":
            first.run(START, workflow_id="wf")
        else:
            first.publish(START, correlation_id="wf")
    with SQLiteStore(path) as store:
        second = build(store, broken=False)  # a new process, its courier fixed
        ended = second.retry("wf")
        assert ended.status is S.COMPLETED
        assert [e.name for e in ended.journal.of_kind(EntryKind.COMPLETED)] == [
            "Payments.charge",
            "Mailer.send_receipt",
            "Couriers.ship",
        ]


def test_a_crash_at_any_write_past_the_pivot_recovers_to_the_park() -> None:
    assert assert_crash_safe(Checkout, lambda: pivot_services([True]), START)


# -- the property ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(plan=fault_plans(Checkout))
def test_a_failure_after_the_pivot_never_compensates(plan: FaultPlan) -> None:
    both = run_both(Checkout, pivot_services, START, plan, correlation_id="wf")

    assert_equivalent(both)
    for outcome in both.outcomes:
        journal = outcome.journal
        pivoted = "Mailer.send_receipt" in journal.names(EntryKind.COMPLETED)
        if pivoted:
            assert outcome.status in (S.COMPLETED, S.PARKED), journal.render()
            assert not journal.of_kind(EntryKind.COMPENSATED), journal.render()
            assert not journal.of_kind(EntryKind.COMPENSATION_FAILED), journal.render()
        else:
            assert outcome.status in (S.COMPENSATED, S.COMPENSATION_FAILED), journal.render()
    if both["run"].status is S.PARKED:
        assert snapshots(both["run"].participants)[:2] == [
            [("wf:Payments.charge", 3)],
            [("wf:Mailer.send_receipt", 3)],
        ]


def test_the_monitor_shows_the_step_that_parked_until_it_is_retried() -> None:
    broken = [True]
    clock = VirtualClock()
    flow = Choreography(EventBus(clock=clock), *pivot_services(broken), flow=Checkout, clock=clock)
    flow.publish(START, correlation_id="wf")
    parked = flow.monitor.get("wf")
    assert parked.failed == ("Couriers.ship",)
    assert parked.pending == ()  # PARKED is finished until an operator acts

    broken[0] = False
    done = flow.retry("wf")
    assert done.failed == ()
    assert "skipped:" not in done.render()


def test_a_choreography_derived_from_signatures_honours_the_actions_pivot() -> None:
    clock = VirtualClock()
    services = pivot_services([True])
    flow = Choreography(EventBus(clock=clock), *services, clock=clock)  # no flow=
    flow.publish(START, correlation_id="wf")

    view = flow.monitor.get("wf")
    assert view.status is S.PARKED
    assert view.compensated == ()
    assert view.parked_reason is not None
    assert "after the pivot Mailer.send_receipt" in view.parked_reason


def _planned(plan: FaultPlan, broken: bool) -> tuple[Participant, ...]:
    services = pivot_services([broken])
    plan.fresh().install(*services)
    return services


@settings(max_examples=60, deadline=None)
@given(plan=fault_plans(Checkout, crashes=True), broken=st.booleans())
def test_a_drawn_crash_and_faults_keep_the_invariants_around_the_pivot(
    plan: FaultPlan, broken: bool
) -> None:
    assert plan.crash is not None
    points = assert_crash_safe(
        Checkout,
        lambda: _planned(plan, broken),
        START,
        entry_points=ENTRY_POINTS,
        same_end=False,
        crash=plan.crash,
    )
    assert [p.entry_point for p in points] == list(ENTRY_POINTS)


class SlowCouriers(Couriers):
    """Its one attempt times out, then returns late, after the run parked."""

    def ship(self, receipt: ReceiptSent, ctx: Context) -> Shipped:
        time.sleep(0.2)
        return Shipped(n=receipt.n)


class SlowCheckout(Orchestrator[Purchase, Shipped], name="tests.pivot-slow"):
    steps = (
        step(Payments.charge),
        step(Mailer.send_receipt),
        step(Couriers.ship, retry=Retry(attempts=1), timeout=0.05),
    )


def test_a_late_result_after_the_park_is_journaled_and_left_alone() -> None:
    payments, mailer, _ = pivot_services()
    orders = SlowCheckout(payments, mailer, SlowCouriers())
    assert orders.run(START, workflow_id="wf").status is S.PARKED
    settle_late_results()

    run = orders.get("wf")
    assert run.status is S.PARKED
    (late,) = run.journal.of_kind(EntryKind.LATE_RESULT)
    assert late.detail == "timed-out attempt 1 returned late: nothing declared to undo it"
    assert not run.journal.of_kind(EntryKind.COMPENSATED)


# -- with business outcomes and waits ------------------------------------------------------------


class Gift(Event, type_name="tests.pivot.Gift"):
    n: int


class Nudge(Event, type_name="tests.pivot.Nudge"):
    n: int


class Pay(Participant):
    @action
    @abstractmethod
    def pay(self, purchase: Purchase) -> Charged | Gift: ...

    @pay.compensation
    @abstractmethod
    def unpay(self, charged: Charged) -> None: ...


class Nudger(Participant):
    @action
    @abstractmethod
    def nudge(self, nudge: Nudge) -> Done: ...


class GiftCheckout(Orchestrator[Purchase, Any], name="tests.pivot-gift"):
    steps = (
        step(Pay.pay),
        step(Mailer.send_receipt),  # the pivot; skipped when it is a gift
        wait(Nudge),
        step(Nudger.nudge),
    )


class GiftPay(Pay):
    def pay(self, purchase: Purchase) -> Charged | Gift:
        return Gift(n=purchase.n)

    def unpay(self, charged: Charged) -> None:
        raise AssertionError("a gift is never charged")


class FailingNudger(Nudger):
    def nudge(self, nudge: Nudge) -> Done:
        raise NonRetryable("no")


def test_a_failure_after_a_skipped_pivot_undoes_instead_of_parking() -> None:
    _, mailer, _ = pivot_services()
    orders = GiftCheckout(GiftPay(), mailer, FailingNudger())
    assert orders.run(START, workflow_id="wf").status is S.WAITING
    run = orders.send("wf", Nudge(n=1))

    assert run.status is S.COMPENSATED  # the pivot never ran: nothing is past no return
    assert run.journal.names(EntryKind.SKIPPED) == ["Mailer.send_receipt"]


def test_a_wait_after_the_pivot_cannot_time_out() -> None:
    class Settled(Event):
        n: int

    class Use(Participant):
        @action
        @abstractmethod
        def use(self, receipt: ReceiptSent, settled: Settled) -> Done: ...

    with pytest.raises(DefinitionError, match="cannot time out"):

        class Late(Orchestrator[Purchase, Done]):
            steps = (
                step(Payments.charge),
                step(Mailer.send_receipt),
                wait(Settled, timeout=5.0),
                step(Use.use),
            )
