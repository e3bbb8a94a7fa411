"""Business outcomes: a union output picks a branch; what the other branch needed is skipped.

A declined payment is not a failure: the run takes the declined branch, the steps that
needed the captured payment are skipped (journaled as skipped), and the run ends COMPLETED
with the business output, under all four entry points, in memory and on SQLite.
"""

from __future__ import annotations

import asyncio
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
    WorkflowStatus,
    action,
)
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError
from coordination.orchestration import Orchestrator, parallel, step
from coordination.stores import SQLiteStore, StepOutcome
from coordination.testing import (
    ENTRY_POINTS,
    FaultPlan,
    VirtualClock,
    assert_crash_safe,
    assert_equivalent,
    fault_plans,
    run_both,
)
from tests.branching import (
    Cashier,
    Checkout,
    CheckoutStarted,
    LedgerCashier,
    LedgerOrders,
    LedgerWarehouse,
    OrderConfirmed,
    OrderDeclined,
    Orders,
    PaymentCaptured,
    PaymentDeclined,
    Shipped,
    Warehouse,
    checkout_services,
)

COMPLETED = WorkflowStatus.COMPLETED
CAPTURED = CheckoutStarted(order_id="o-1", amount=40)
DECLINED = CheckoutStarted(order_id="o-2", amount=400)


def test_a_captured_payment_takes_its_branch_and_the_other_is_skipped() -> None:
    run = Checkout(*checkout_services()).run(CAPTURED, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output == Shipped(order_id="o-1")
    assert run.journal.names(EntryKind.SKIPPED) == ["Orders.decline"]
    outcomes = {record.key: record.outcome for record in run.steps}
    assert outcomes == {
        "Cashier.charge": StepOutcome.COMPLETED,
        "Orders.confirm": StepOutcome.COMPLETED,
        "Orders.decline": StepOutcome.SKIPPED,
        "Warehouse.ship": StepOutcome.COMPLETED,
    }


def test_a_declined_payment_completes_with_the_business_output_and_undoes_nothing() -> None:
    cashier, orders, warehouse = LedgerCashier(), LedgerOrders(), LedgerWarehouse()
    run = Checkout(cashier, orders, warehouse).run(DECLINED, workflow_id="wf")

    assert run.status is COMPLETED
    assert run.output == OrderDeclined(order_id="o-2", reason="over the limit")
    assert run.output_of(PaymentDeclined) == PaymentDeclined(
        order_id="o-2", reason="over the limit"
    )
    assert run.output_of(PaymentCaptured) is None
    # Skipped in the generation that opened without their input, in declared order.
    assert run.journal.names(EntryKind.SKIPPED) == ["Orders.confirm", "Warehouse.ship"]
    skipped = run.journal.of_kind(EntryKind.SKIPPED)[0]
    assert "PaymentCaptured" in str(skipped.detail)
    assert not run.journal.of_kind(EntryKind.COMPENSATED)
    assert warehouse.snapshot() == []
    assert orders.snapshot() == [("wf:Orders.decline", 0)]


@pytest.mark.parametrize("start", [CAPTURED, DECLINED], ids=["captured", "declined"])
def test_all_four_entry_points_take_the_same_branch(start: CheckoutStarted) -> None:
    both = run_both(Checkout, checkout_services, start, correlation_id="wf")

    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {COMPLETED}
    skipped = {tuple(o.journal.names(EntryKind.SKIPPED)) for o in both.outcomes}
    expected = ("Orders.decline",) if start is CAPTURED else ("Orders.confirm", "Warehouse.ship")
    assert skipped == {expected}


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Any]:
    opened: list[SQLiteStore] = []

    def make() -> SQLiteStore:
        opened.append(SQLiteStore(tmp_path / f"store-{len(opened)}.db"))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.mark.parametrize("start", [CAPTURED, DECLINED], ids=["captured", "declined"])
def test_on_sqlite_all_four_entry_points_take_the_same_branch(
    start: CheckoutStarted, stores: Any
) -> None:
    both = run_both(Checkout, checkout_services, start, correlation_id="wf", stores=stores)

    assert_equivalent(both)
    assert {outcome.status for outcome in both.outcomes} == {COMPLETED}
    assert both["run"].journal.names(EntryKind.SKIPPED) == both["publish"].journal.names(
        EntryKind.SKIPPED
    )


def test_skipped_steps_and_the_business_output_are_read_back_from_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    with SQLiteStore(path) as store:
        Checkout(*checkout_services(), store=store).run(DECLINED, workflow_id="wf")
    with SQLiteStore(path) as store:
        run = Checkout(*checkout_services(), store=store).get("wf")
        assert run.status is COMPLETED
        assert run.output == OrderDeclined(order_id="o-2", reason="over the limit")
        assert [r.key for r in run.steps if r.outcome is StepOutcome.SKIPPED] == [
            "Orders.confirm",
            "Warehouse.ship",
        ]
        again = Checkout(*checkout_services(), store=store).run(DECLINED, workflow_id="wf")
        assert again.journal == run.journal  # idempotent: nothing ran again


def test_a_failure_after_the_branch_undoes_only_the_branch_taken() -> None:
    class FailingShip(LedgerWarehouse):
        def ship(self, confirmed: OrderConfirmed, ctx: Context) -> Shipped:
            raise NonRetryable("the warehouse burned down")

    both = run_both(
        Checkout,
        lambda: (LedgerCashier(), LedgerOrders(), FailingShip()),
        CAPTURED,
        correlation_id="wf",
    )

    assert_equivalent(both)
    run = both["run"]
    assert run.status is WorkflowStatus.COMPENSATED
    # The skipped decline is never undone; the captured branch is, newest first.
    undone = [entry.undoes for entry in run.journal.of_kind(EntryKind.COMPENSATED)]
    assert undone == ["Orders.confirm", "Cashier.charge"]
    assert all(p.snapshot() == [] for p in both["run"].participants)  # type: ignore[attr-defined]


def test_a_compensation_typed_as_one_outcome_never_undoes_the_other() -> None:
    class FailingDecline(LedgerOrders):
        def decline(self, declined: PaymentDeclined, ctx: Context) -> OrderDeclined:
            raise NonRetryable("cannot write the decline")

    refunds: list[PaymentCaptured] = []

    class CountingCashier(LedgerCashier):
        def refund(self, payment: PaymentCaptured, ctx: Context) -> None:
            refunds.append(payment)

    both = run_both(
        Checkout,
        lambda: (CountingCashier(), FailingDecline(), LedgerWarehouse()),
        DECLINED,
        correlation_id="wf",
    )

    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {WorkflowStatus.COMPENSATED}
    assert refunds == []  # a declined payment is never refunded


def test_a_choreography_derived_from_signatures_takes_the_same_branch() -> None:
    clock = VirtualClock()
    services = checkout_services()
    flow = Choreography(EventBus(clock=clock), *services, clock=clock)
    flow.publish(DECLINED, correlation_id="wf")

    view = flow.monitor.get("wf")
    assert view.status is COMPLETED
    assert view.journal.names(EntryKind.SKIPPED) == ["Orders.confirm", "Warehouse.ship"]
    assert view.skipped == ("Orders.confirm", "Warehouse.ship")
    assert view.done == ("Cashier.charge", "Orders.decline")
    assert "  skipped:     Orders.confirm, Warehouse.ship" in view.render()
    orchestrated = checkout_services()
    Checkout(*orchestrated).run(DECLINED, workflow_id="wf")
    assert [p.snapshot() for p in services] == [p.snapshot() for p in orchestrated]  # type: ignore[attr-defined]


def test_run_async_takes_the_declined_branch() -> None:
    run = asyncio.run(Checkout(*checkout_services()).run_async(DECLINED, workflow_id="wf"))
    assert run.status is COMPLETED
    assert run.output == OrderDeclined(order_id="o-2", reason="over the limit")


# -- declarations ------------------------------------------------------------------------


def test_a_declared_output_must_cover_every_business_outcome() -> None:
    with pytest.raises(DefinitionError, match=r"can end with OrderDeclined"):

        class OnlyShipped(Orchestrator[CheckoutStarted, Shipped]):
            steps = (
                step(Cashier.charge),
                parallel(step(Orders.confirm), step(Orders.decline)),
                step(Warehouse.ship),
            )


def test_a_chain_skipped_to_its_end_returns_the_outcome_that_ended_it() -> None:
    class ChargeThenShip(Orchestrator[CheckoutStarted, OrderConfirmed | PaymentDeclined]):
        steps = (step(Cashier.charge), step(Orders.confirm))

    cashier, orders = LedgerCashier(), LedgerOrders()
    run = ChargeThenShip(cashier, orders).run(DECLINED)
    assert run.status is COMPLETED
    assert run.output == PaymentDeclined(order_id="o-2", reason="over the limit")
    assert run.journal.names(EntryKind.SKIPPED) == ["Orders.confirm"]


class Ping(Event):
    n: int


class Pong(Event):
    n: int


class Pang(Event):
    n: int


def test_an_output_typed_as_a_union_checks_the_value_returned() -> None:
    class Bouncer(Participant):
        @action
        @abstractmethod
        def bounce(self, ping: Ping) -> Pong | Pang: ...

    class Wrong(Bouncer):
        def bounce(self, ping: Ping) -> Pong | Pang:
            return Ping(n=ping.n)  # type: ignore[return-value]

    class Bounce(Orchestrator[Ping, Pong | Pang]):
        steps = (step(Bouncer.bounce),)

    run = Bounce(Wrong()).run(Ping(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert "OutputTypeError" in str(run.error)
    assert "Pong | Pang" in str(run.error)


# -- crashes ---------------------------------------------------------------------------


@pytest.mark.parametrize("start", [CAPTURED, DECLINED], ids=["captured", "declined"])
def test_a_crash_at_any_write_recovers_to_the_same_branch(start: CheckoutStarted) -> None:
    points = assert_crash_safe(
        Checkout, checkout_services, start, entry_points=("run", "run_async", "publish")
    )
    assert points  # every write was crashed at, and each recovered to the same end


def test_a_crash_at_any_sqlite_write_recovers_to_the_same_branch(stores: Any) -> None:
    assert assert_crash_safe(Checkout, checkout_services, DECLINED, store=stores)


def _planned(plan: FaultPlan) -> tuple[Participant, ...]:
    services = checkout_services()
    plan.fresh().install(*services)
    return services


@settings(max_examples=60, deadline=None)
@given(
    plan=fault_plans(Checkout, crashes=True),
    start=st.sampled_from([CAPTURED, DECLINED]),
)
def test_a_drawn_crash_and_faults_keep_the_invariants_on_either_branch(
    plan: FaultPlan, start: CheckoutStarted
) -> None:
    assert plan.crash is not None
    points = assert_crash_safe(
        Checkout,
        lambda: _planned(plan),
        start,
        entry_points=ENTRY_POINTS,
        same_end=False,
        crash=plan.crash,
    )
    assert [p.entry_point for p in points] == list(ENTRY_POINTS)
