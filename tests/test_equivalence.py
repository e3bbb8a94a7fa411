"""Same participants, same outcome: all four entry points agree, for every fault plan.

`run_both()` drives `run()`, `run_async()`, `publish()` and `publish_async()` on fresh,
identical participants; `assert_equivalent()` checks the same status, the same effects
(the participants' `snapshot()`s), the same compensations in the same order and journals
of the same shape. The fault plans are the default `fault_plans()`: forward faults
(transient, injected timeouts, refusals, late results) and compensation faults, on the
e-commerce flow and on shapes with joins, tuple outputs, input-typed undos, a three-branch
group, async participants, business outcomes, a pivot, outside messages (sent in any
order, twice), durable timers and wait timeouts. Nothing is excused: where the entry
points differ, it is a bug (DESIGN.md, "One engine, one rule").

The tests after the properties are the divergences found before the engine was one, each
a regression test now.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import (
    Context,
    EntryKind,
    Event,
    Message,
    Participant,
    Retry,
    WorkflowStatus,
    action,
)
from coordination.choreography import Choreography, EventBus
from coordination.orchestration import Orchestrator, parallel, step
from coordination.testing import (
    Fault,
    FaultKind,
    FaultPlan,
    VirtualClock,
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
from tests.branching import Checkout, CheckoutStarted, checkout_services
from tests.equivalence_flows import BookTrip, TripRequested, travel_services
from tests.equivalence_shapes import (
    AsyncThreeFlow,
    Go,
    MixedFlow,
    SplitFlow,
    ThreeFlow,
    async_three_services,
    mixed_services,
    split_services,
    three_services,
)
from tests.fanout_flow import CrawlRequested, IndexSite, fanout_services
from tests.pivot_flow import Checkout as PivotCheckout
from tests.pivot_flow import Purchase, pivot_services
from tests.test_timeout_outcomes import Patient, patient_services
from tests.test_timers import DAYS_30, GracePeriod, Impatient, grace_services, impatient_services
from tests.waiting_flow import OrderPlaced as WebhookOrder
from tests.waiting_flow import PaymentFailed, PaymentSettled, WebhookCheckout, webhook_services

#: Nothing happens after the start.
NOTHING_AFTER: st.SearchStrategy[tuple[Any, ...]] = st.just(())
SETTLED = PaymentSettled(order_id="o-1")
FAILED = PaymentFailed(order_id="o-1", reason="refused")

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
COMPENSATION_FAILED = WorkflowStatus.COMPENSATION_FAILED
#: 200 examples a case in `make test` (issue 8); the long profile's 2,000 in `make test-long`.
EXAMPLES = max(200, settings().max_examples)


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
    """One flow under test: its orchestrator, its participants and its start messages."""

    name: str
    flow: type[Orchestrator[Any, Any]]
    services: Callable[[], Sequence[Participant]]
    starts: st.SearchStrategy[Any]
    #: Whether `predict()` can tell its outcome from the fault plan alone (not when the
    #: participants pick a business outcome: which branch runs is theirs to say).
    predictable: bool = True
    #: What happens after the start (`run_both(then=...)`): outside messages, time passing.
    thens: st.SearchStrategy[tuple[Any, ...]] = NOTHING_AFTER
    #: The same without faults, ending COMPLETED.
    then: tuple[Any, ...] = ()


CASES = [
    Case(
        "ecommerce",
        PlaceOrder,
        shop,
        messages(
            OrderPlaced,
            customer_id="c1",
            sku="sku-1",
            quantity=st.integers(min_value=1, max_value=7),  # above 5: out of stock
            amount_cents=st.integers(min_value=1, max_value=5_000),
        ),
    ),
    Case(
        "trip",
        BookTrip,
        travel_services,
        messages(
            TripRequested,
            traveller_id="t1",
            flight="XY123",
            hotel="Grand",
            seats=st.integers(min_value=1, max_value=8),  # above 6: the flight is full
            nights=st.integers(min_value=1, max_value=5),
            deposit_cents=st.integers(min_value=1, max_value=5_000),
        ),
    ),
    Case("split", SplitFlow, split_services, st.builds(Go, n=st.integers(-1, 5))),
    Case("three", ThreeFlow, three_services, st.builds(Go, n=st.integers(-2, 5))),
    Case("three-async", AsyncThreeFlow, async_three_services, st.builds(Go, n=st.integers(-2, 5))),
    Case("mixed", MixedFlow, mixed_services, st.builds(Go, n=st.integers(-2, 5))),
    Case(
        "fan-out",
        IndexSite,
        fanout_services,
        st.builds(
            CrawlRequested,
            site=st.just("s"),
            paths=st.lists(st.sampled_from(["a", "bb", "bad", "ccc", "late"]), max_size=4),
        ),
        predictable=False,  # a page the indexer refuses, or none: the participants' to say
    ),
    Case("pivot", PivotCheckout, pivot_services, st.builds(Purchase, n=st.integers(1, 5))),
    Case(
        "checkout-branches",
        Checkout,
        checkout_services,
        st.builds(CheckoutStarted, order_id=st.just("o-1"), amount=st.integers(1, 200)),
        predictable=False,
    ),
    Case(
        "webhook-wait",
        WebhookCheckout,
        webhook_services,
        st.builds(WebhookOrder, order_id=st.just("o-1"), cents=st.integers(1, 900)),
        predictable=False,
        thens=st.sampled_from([(SETTLED,), (FAILED,), (SETTLED, SETTLED), (FAILED, SETTLED)]),
        then=(SETTLED,),
    ),
    Case(
        "grace-period-sleep",
        GracePeriod,
        grace_services,
        st.builds(WebhookOrder, order_id=st.just("o-1"), cents=st.integers(1, 900)),
        predictable=False,
        thens=st.sampled_from([(DAYS_30,), (DAYS_30 / 2, DAYS_30 / 2), (1.0,)]),
        then=(DAYS_30,),
    ),
    Case(
        "wait-timeout",
        Impatient,
        impatient_services,
        st.builds(WebhookOrder, order_id=st.just("o-1"), cents=st.integers(1, 900)),
        predictable=False,
        thens=st.sampled_from([(SETTLED,), (61.0,), (30.0, SETTLED), (30.0, 31.0, SETTLED)]),
        then=(30.0, SETTLED),
    ),
    Case(
        "timeout-outcome",
        Patient,
        patient_services,
        st.builds(WebhookOrder, order_id=st.just("o-1"), cents=st.integers(1, 900)),
        predictable=False,
        thens=st.sampled_from([(SETTLED,), (61.0,), (30.0, SETTLED), (30.0, 31.0, SETTLED)]),
        then=(61.0,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_every_fault_plan_gives_the_same_outcome_under_all_four_entry_points(
    case: Case, data: st.DataObject
) -> None:
    plan = data.draw(fault_plans(case.flow), label="plan")
    start = data.draw(case.starts, label="start")
    then = data.draw(case.thens, label="then")
    both = run_both(case.flow, case.services, start, plan, correlation_id="wf", then=then)
    assert_equivalent(both)
    if start_refused(start) or not case.predictable:
        return  # a refusal by the participant itself, not by the plan: predict() cannot see it
    expected = predict(case.flow, plan)
    assert both["run"].status is expected.status, both["run"].journal.render()


def start_refused(start: Any) -> bool:
    """Whether the participants refuse this start on their own (stock, seats, a negative)."""
    if isinstance(start, OrderPlaced):
        return start.quantity > 5
    if isinstance(start, TripRequested):
        return start.seats > 6
    return isinstance(start, Go) and start.n < 0


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_without_faults_every_entry_point_completes_with_the_same_state(case: Case) -> None:
    start = _start_of(case)
    both = run_both(case.flow, case.services, start, correlation_id="wf", then=case.then)
    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {COMPLETED}


def _start_of(case: Case) -> Message:
    if case.flow is PlaceOrder:
        return OrderPlaced(
            order_id="o-1", customer_id="c1", email="a@b.c", sku="sku-1", quantity=1,
            amount_cents=100, address="1 Road",
        )  # fmt: skip
    if case.flow is Checkout:
        return CheckoutStarted(order_id="o-1", amount=10)
    if case.flow is PivotCheckout:
        return Purchase(n=1)
    if case.flow in (WebhookCheckout, GracePeriod, Impatient, Patient):
        return WebhookOrder(order_id="o-1", cents=100)
    if case.flow is BookTrip:
        return TripRequested(
            trip_id="t-1", traveller_id="t1", flight="XY123", seats=1, hotel="Grand",
            nights=2, deposit_cents=100,
        )  # fmt: skip
    if case.flow is IndexSite:
        return CrawlRequested(site="s", paths=["a", "bb", "ccc"])
    return Go(n=1)


def test_fault_plans_cover_late_results_and_compensations() -> None:
    kinds: set[FaultKind] = set()
    targets: set[str] = set()

    @settings(max_examples=300, database=None)
    @given(plan=fault_plans(PlaceOrder))
    def collect(plan: FaultPlan) -> None:
        for fault in plan:
            kinds.add(fault.kind)
            targets.add(fault.target)

    collect()
    assert FaultKind.LATE in kinds
    assert "Payments.refund" in targets  # a compensation


# -- the divergences found, each a regression test -------------------------------------------


class Ask(Event):
    n: int


class Held(Event):
    n: int


class Freed(Event):
    n: int


class Got(Event):
    n: int


class SlowUndo(Participant):
    """Divergence 1: an async compensation bounded by its timeout."""

    @action
    @abstractmethod
    async def hold(self, ask: Ask, ctx: Context) -> Held: ...

    @hold.compensation(retry=Retry(attempts=1), timeout=0.05)
    @abstractmethod
    async def free(self, held: Held, ctx: Context) -> Freed: ...


class Refuser(Participant):
    @action
    @abstractmethod
    async def refuse(self, held: Held, ctx: Context) -> Got: ...


class RealSlowUndo(SlowUndo):
    async def hold(self, ask: Ask, ctx: Context) -> Held:
        return Held(n=ask.n)

    async def free(self, held: Held, ctx: Context) -> Freed:
        await asyncio.sleep(0.5)
        return Freed(n=held.n)


class RealRefuser(Refuser):
    async def refuse(self, held: Held, ctx: Context) -> Got:
        from coordination import NonRetryable

        raise NonRetryable("no")


class SlowUndoFlow(Orchestrator[Ask, Got], name="tests.slow-undo"):
    steps = (step(SlowUndo.hold), step(Refuser.refuse))


def test_an_async_compensation_is_bounded_by_its_timeout_under_every_entry_point() -> None:
    started = time.monotonic()
    both = run_both(SlowUndoFlow, lambda: (RealSlowUndo(), RealRefuser()), Ask(n=1))
    elapsed = time.monotonic() - started
    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {COMPENSATION_FAILED}
    assert elapsed < 4 * 0.5  # four runs, none waited for the 0.5 s undo
    for outcome in both.outcomes:
        failed = outcome.journal.of_kind(EntryKind.COMPENSATION_FAILED)
        assert [e.error for e in failed] == ["AttemptTimeout: attempt did not finish within 0.05s"]


class Stock(Event):
    n: int


class Left(Event):
    n: int


class Right(Event):
    n: int


class LeftFlowPart(Participant):
    @action(retry=Retry(attempts=2), timeout=1.0)
    @abstractmethod
    def left(self, stock: Stock, ctx: Context) -> Left: ...

    @left.compensation
    @abstractmethod
    def unleft(self, left: Left, ctx: Context) -> None: ...


class RightFlowPart(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def right(self, stock: Stock, ctx: Context) -> Right: ...

    @right.compensation
    @abstractmethod
    def unright(self, right: Right, ctx: Context) -> None: ...


class UntimedLeft(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def left(self, stock: Stock, ctx: Context) -> Left: ...

    @left.compensation
    @abstractmethod
    def unleft(self, left: Left, ctx: Context) -> None: ...


class Parts:
    """Effects by key, shared shape for the three participants below."""

    def __init__(self) -> None:
        self.effects: set[str] = set()

    def snapshot(self) -> list[str]:
        return sorted(self.effects)


class RealLeft(Parts, LeftFlowPart):
    def left(self, stock: Stock, ctx: Context) -> Left:
        self.effects.add(ctx.idempotency_key)
        return Left(n=stock.n)

    def unleft(self, left: Left, ctx: Context) -> None:
        self.effects.discard(ctx.idempotency_key.removesuffix(":undo"))


class RealUntimedLeft(Parts, UntimedLeft):
    def left(self, stock: Stock, ctx: Context) -> Left:
        self.effects.add(ctx.idempotency_key)
        return Left(n=stock.n)

    def unleft(self, left: Left, ctx: Context) -> None:
        self.effects.discard(ctx.idempotency_key.removesuffix(":undo"))


class RealRight(Parts, RightFlowPart):
    def right(self, stock: Stock, ctx: Context) -> Right:
        self.effects.add(ctx.idempotency_key)
        return Right(n=stock.n)

    def unright(self, right: Right, ctx: Context) -> None:
        self.effects.discard(ctx.idempotency_key.removesuffix(":undo"))


class TimedPair(Orchestrator[Stock, tuple[Left, Right]], name="tests.timed-pair"):
    steps = (parallel(step(LeftFlowPart.left), step(RightFlowPart.right)),)


class UntimedPair(Orchestrator[Stock, tuple[Left, Right]], name="tests.untimed-pair"):
    steps = (parallel(step(UntimedLeft.left), step(RightFlowPart.right)),)


def test_a_refused_timed_branch_and_a_failing_sibling_undo_agree() -> None:
    """Divergence 2a: the first branch has a timeout and is refused; the second's undo fails."""
    plan = FaultPlan.of(
        Fault("LeftFlowPart.left", 1, FaultKind.REFUSAL),
        *(Fault("RightFlowPart.unright", n, FaultKind.ERROR) for n in range(1, 6)),
    )
    both = run_both(TimedPair, lambda: (RealLeft(), RealRight()), Stock(n=1), plan)
    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {COMPENSATION_FAILED}


def test_a_branch_failing_both_attempts_and_a_failing_sibling_undo_agree() -> None:
    """Divergence 2b: no timeout; the first branch fails both attempts; the sibling's undo
    fails (the choreography used to run the sibling during the retry's backoff)."""
    plan = FaultPlan.of(
        Fault("UntimedLeft.left", 1, FaultKind.ERROR),
        Fault("UntimedLeft.left", 2, FaultKind.ERROR),
        *(Fault("RightFlowPart.unright", n, FaultKind.ERROR) for n in range(1, 6)),
    )
    both = run_both(
        UntimedPair, lambda: (RealUntimedLeft(), RealRight()), Stock(n=1), plan, correlation_id="wf"
    )
    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {COMPENSATION_FAILED}
    assert both["run"].participants[1].snapshot() == ["wf:RightFlowPart.right"]  # type: ignore[attr-defined]


class Holds(Participant):
    """Divergence 3: a step undone by its input, whose timed-out attempt landed late."""

    @action(retry=Retry(attempts=2))
    @abstractmethod
    def hold(self, stock: Stock, ctx: Context) -> Left: ...

    @hold.compensation
    @abstractmethod
    def release(self, stock: Stock, ctx: Context) -> None: ...


class RealHolds(Holds):
    """Idempotent by key, as the docs once advised: a late undo under the first undo's key
    would be skipped; under its own key it runs."""

    def __init__(self) -> None:
        self.held = 0
        self.undo_keys: set[str] = set()

    def hold(self, stock: Stock, ctx: Context) -> Left:
        self.held += 1
        return Left(n=stock.n)

    def release(self, stock: Stock, ctx: Context) -> None:
        if ctx.idempotency_key in self.undo_keys:
            return
        self.undo_keys.add(ctx.idempotency_key)
        self.held = max(self.held - 1, 0)

    def snapshot(self) -> int:
        return self.held


class HoldFlow(Orchestrator[Stock, Left], name="tests.holds"):
    steps = (step(Holds.hold),)


def test_a_late_result_of_an_input_undone_step_is_undone_under_its_own_key() -> None:
    # The second attempt times out too (a refusal could not come after the key applied:
    # an idempotent participant answers it).
    plan = FaultPlan.of(
        Fault("Holds.hold", 1, FaultKind.LATE), Fault("Holds.hold", 2, FaultKind.TIMEOUT)
    )
    both = run_both(HoldFlow, lambda: (RealHolds(),), Stock(n=1), plan, correlation_id="wf")
    assert_equivalent(both)
    for outcome in both.outcomes:
        assert outcome.status is COMPENSATED
        holds = outcome.participants[0]
        assert isinstance(holds, RealHolds)
        assert holds.undo_keys == {"wf:Holds.hold:late1:undo", "wf:Holds.hold:undo"}
        assert holds.snapshot() == 0, outcome.entry_point


def test_a_late_failure_is_journaled_the_same_way_by_both_runners() -> None:
    """Divergence 4: one wording for a late result, whichever runner saw it."""
    plan = FaultPlan.of(Fault("Holds.hold", 1, FaultKind.LATE))
    both = run_both(HoldFlow, lambda: (RealHolds(),), Stock(n=1), plan)
    assert_equivalent(both)
    details = {
        outcome.entry_point: [e.detail for e in outcome.journal.of_kind(EntryKind.LATE_RESULT)]
        for outcome in both.outcomes
    }
    assert set(map(tuple, details.values())) == {
        ("timed-out attempt 1 returned late: left alone (the action succeeded)",)
    }


def test_the_choreography_moves_its_instances_through_the_lifecycle_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Divergence 5: every status move of a choreographed instance is checked, too."""
    import coordination.engine._recorder as saga_module

    moves: list[tuple[WorkflowStatus, WorkflowStatus]] = []
    real = saga_module.check_move

    def recording(source: WorkflowStatus, destination: WorkflowStatus) -> None:
        moves.append((source, destination))
        real(source, destination)

    monkeypatch.setattr(saga_module, "check_move", recording)
    plan = FaultPlan.of(Fault("Holds.hold", 1, FaultKind.REFUSAL))
    parts = (RealHolds(),)
    plan.install(*parts)
    clock = VirtualClock()
    flow = Choreography(EventBus(clock=clock), *parts, flow=HoldFlow, clock=clock)
    flow.publish(Stock(n=1), correlation_id="c")
    assert moves == [
        (WorkflowStatus.RUNNING, WorkflowStatus.COMPENSATING),
        (WorkflowStatus.COMPENSATING, WorkflowStatus.COMPENSATED),
    ]


class TimedHolds(Participant):
    """A step with a real, short timeout: its first attempt overruns and returns late."""

    @action(retry=Retry(attempts=2), timeout=0.05)
    @abstractmethod
    def hold(self, stock: Stock, ctx: Context) -> Left: ...

    @hold.compensation
    @abstractmethod
    def release(self, left: Left, ctx: Context) -> None: ...


class RealTimedHolds(TimedHolds):
    """Holds by key; the first attempt sleeps past the timeout; `refuse` fails attempt 2."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.holds: dict[str, int] = {}
        self.lock = __import__("threading").Lock()

    def hold(self, stock: Stock, ctx: Context) -> Left:
        if ctx.attempt == 1:
            time.sleep(0.2)  # past the 0.05 s timeout: abandoned, then returns late
        elif self.refuse:
            from coordination import NonRetryable

            raise NonRetryable("no")
        with self.lock:
            self.holds.setdefault(ctx.idempotency_key, stock.n)
        return Left(n=stock.n)

    def release(self, left: Left, ctx: Context) -> None:
        with self.lock:  # idempotent by the state it undoes: the hold of the step's key
            self.holds.pop(ctx.idempotency_key.split(":Timed")[0] + ":TimedHolds.hold", None)

    def snapshot(self) -> list[tuple[str, int]]:
        with self.lock:
            return sorted(self.holds.items())


class TimedHoldFlow(Orchestrator[Stock, Left], name="tests.timed-holds"):
    steps = (step(TimedHolds.hold),)


@pytest.mark.parametrize("refuse", [False, True], ids=["succeeds-after", "fails-after"])
def test_real_short_timeouts_and_their_late_results_agree(refuse: bool) -> None:
    both = run_both(
        TimedHoldFlow, lambda: (RealTimedHolds(refuse),), Stock(n=1), correlation_id="wf"
    )
    assert_equivalent(both)
    for outcome in both.outcomes:
        late = outcome.journal.of_kind(EntryKind.LATE_RESULT)
        assert [e.attempt for e in late] == [1], outcome.entry_point
        holds = outcome.participants[0]
        assert isinstance(holds, RealTimedHolds)
        if refuse:
            assert outcome.status is COMPENSATED
            assert holds.snapshot() == []  # the late hold was undone, under its own key
            assert "undone (the action failed)" in (late[0].detail or "")
        else:
            assert outcome.status is COMPLETED
            assert holds.snapshot() == [("wf:TimedHolds.hold", 1)]
            assert "left alone" in (late[0].detail or "")
