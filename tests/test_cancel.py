"""Cancelling a live instance: it stops at the next step boundary and undoes what it did.

An operator's `cancel()` reaches a run this process is driving (from any thread, or from
inside one of its own attempts): the attempt in flight runs to its end, nothing later
starts, and what was done is undone newest first; the instance ends CANCELLED. The four
entry points agree; an interrupted instance is cancelled by claiming it; a finished one
is a `UsageError` saying so.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coordination import Context, EntryKind, Event, Participant, Retry, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.errors import UsageError, WorkflowNotFound
from coordination.orchestration import Orchestrator, step
from coordination.stores import SQLiteStore
from coordination.testing import ENTRY_POINTS, VirtualClock, journal_problems, journal_shape
from tests.equivalence_shapes import Ledger

S = WorkflowStatus


class Go(Event, type_name="tests.cancel.Go"):
    n: int


class Reserved(Event, type_name="tests.cancel.Reserved"):
    n: int
    ref: str


class Billed(Event, type_name="tests.cancel.Billed"):
    n: int
    ref: str


class Sent(Event, type_name="tests.cancel.Sent"):
    n: int


class Stock(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def reserve(self, go: Go, ctx: Context) -> Reserved: ...

    @reserve.compensation
    @abstractmethod
    def release(self, reserved: Reserved, ctx: Context) -> None: ...


class Billing(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def bill(self, reserved: Reserved, ctx: Context) -> Billed: ...

    @bill.compensation
    @abstractmethod
    def unbill(self, billed: Billed, ctx: Context) -> None: ...


class Shipping(Participant):
    @action
    @abstractmethod
    def ship(self, billed: Billed, ctx: Context) -> Sent: ...


class Order(Orchestrator[Go, Sent], name="tests.cancel-order"):
    steps = (step(Stock.reserve), step(Billing.bill), step(Shipping.ship))


class LedgerStock(Ledger, Stock):
    def reserve(self, go: Go, ctx: Context) -> Reserved:
        return Reserved(n=self.apply(ctx, go.n), ref=ctx.idempotency_key)

    def release(self, reserved: Reserved, ctx: Context) -> None:
        self.revert(reserved.ref)


class LedgerBilling(Ledger, Billing):
    """Calls `during()` inside its attempt: where a test's operator cancels."""

    def __init__(self, during: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.during = during

    def bill(self, reserved: Reserved, ctx: Context) -> Billed:
        self.during()
        return Billed(n=self.apply(ctx, reserved.n), ref=ctx.idempotency_key)

    def unbill(self, billed: Billed, ctx: Context) -> None:
        self.revert(billed.ref)


class LedgerShipping(Ledger, Shipping):
    def ship(self, billed: Billed, ctx: Context) -> Sent:
        return Sent(n=self.apply(ctx, billed.n))


def run_entry_point(entry_point: str, store: Any = None) -> tuple[Any, list[Any], list[Any]]:
    """Run `Go(n=2)` under `entry_point`, cancelled from inside `Billing.bill`.

    Returns the instance as it ended, the participants' snapshots and what each `cancel()`
    returned.
    """
    clock = VirtualClock()
    cancelled: list[Any] = []
    runner: list[Any] = []

    def cancel_now() -> None:
        cancelled.append(runner[0].cancel("wf").status)  # as it stood when it returned

    services = (LedgerStock(), LedgerBilling(cancel_now), LedgerShipping())
    if entry_point.startswith("run"):
        orchestrator = Order(*services, clock=clock, store=store)
        runner.append(orchestrator)
        if entry_point == "run":
            orchestrator.run(Go(n=2), workflow_id="wf")
        else:
            asyncio.run(orchestrator.run_async(Go(n=2), workflow_id="wf"))
        ended: Any = orchestrator.get("wf")
    else:
        flow = Choreography(EventBus(clock=clock), *services, flow=Order, clock=clock, store=store)
        runner.append(flow)
        if entry_point == "publish":
            flow.publish(Go(n=2), correlation_id="wf")
        else:
            asyncio.run(flow.publish_async(Go(n=2), correlation_id="wf"))
        ended = flow.monitor.get("wf")
    return ended, [p.snapshot() for p in services], cancelled


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_live_instance_stops_at_the_next_step_boundary_and_undoes(entry_point: str) -> None:
    ended, state, cancelled = run_entry_point(entry_point)

    assert ended.status is S.CANCELLED
    assert cancelled == [S.COMPENSATING]  # returned at once: the run is live
    journal = ended.journal
    assert "Shipping.ship" not in journal.names(EntryKind.STARTED)  # nothing later started
    assert "Billing.bill" in journal.names(EntryKind.COMPLETED)  # in flight: ran to its end
    undone = [entry.undoes for entry in journal.of_kind(EntryKind.COMPENSATED)]
    assert undone == ["Billing.bill", "Stock.reserve"]
    assert state == [[], [], []]


def test_every_entry_point_cancels_alike() -> None:
    ends = [run_entry_point(entry_point) for entry_point in ENTRY_POINTS]
    for ended, _, _ in ends:
        assert journal_problems(ended.journal) == []
    assert len({journal_shape(ended.journal) for ended, _, _ in ends}) == 1
    assert len({repr(state) for _, state, _ in ends}) == 1


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_live_instance_on_sqlite_is_cancelled(entry_point: str, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "orders.db") as store:
        ended, state, _ = run_entry_point(entry_point, store)
        assert ended.status is S.CANCELLED
        assert state == [[], [], []]
        assert store.get_run("wf").status is S.CANCELLED  # type: ignore[union-attr]


def test_a_cancel_from_another_thread_reaches_the_run_in_flight() -> None:
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(10)

    services = (LedgerStock(), LedgerBilling(hold), LedgerShipping())
    orchestrator = Order(*services, clock=VirtualClock())
    worker = threading.Thread(
        target=orchestrator.run, args=(Go(n=2),), kwargs={"workflow_id": "wf"}
    )
    worker.start()
    assert entered.wait(10)
    returned = orchestrator.cancel("wf").status
    release.set()
    worker.join(10)

    assert returned is S.COMPENSATING
    assert orchestrator.get("wf").status is S.CANCELLED
    assert [p.snapshot() for p in services] == [[], [], []]  # type: ignore[attr-defined]


def test_cancelling_twice_says_it_is_being_undone() -> None:
    services = (LedgerStock(), LedgerBilling(), LedgerShipping())
    orchestrator = Order(*services, clock=VirtualClock())
    answers: list[str] = []

    def twice() -> None:
        orchestrator.cancel("wf")
        with pytest.raises(UsageError, match="already COMPENSATING") as caught:
            orchestrator.cancel("wf")
        answers.append(str(caught.value))

    services[1].during = twice  # type: ignore[attr-defined]
    assert orchestrator.run(Go(n=2), workflow_id="wf").status is S.CANCELLED
    assert len(answers) == 1


# -- a choreography's instance that is not live here ---------------------------------------


def test_an_interrupted_choreographed_instance_is_cancelled_by_claiming_it() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    clock = VirtualClock()
    services = (LedgerStock(), LedgerBilling(interrupt), LedgerShipping())
    flow = Choreography(EventBus(clock=clock), *services, flow=Order, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        flow.publish(Go(n=2), correlation_id="wf")
    assert flow.monitor.get("wf").status is S.RUNNING

    view = flow.cancel("wf")

    assert view.status is S.CANCELLED
    # The bill was interrupted before it applied anything: only the reservation is undone.
    assert view.compensated == ("Stock.reserve",)
    assert [p.snapshot() for p in services] == [[], [], []]  # type: ignore[attr-defined]


def test_cancelling_a_finished_or_unknown_instance_says_so() -> None:
    clock = VirtualClock()
    flow = Choreography(
        EventBus(clock=clock),
        LedgerStock(),
        LedgerBilling(),
        LedgerShipping(),
        flow=Order,
        clock=clock,
    )
    flow.publish(Go(n=2), correlation_id="wf")
    with pytest.raises(UsageError, match="already finished COMPLETED"):
        flow.cancel("wf")
    with pytest.raises(WorkflowNotFound):
        flow.cancel("nope")
    with pytest.raises(UsageError, match="retry\\(\\) takes a PARKED"):
        flow.retry("wf")
