"""Durable timers: `sleep(...)` steps and wait timeouts, on the runner's clock.

A sleeping instance is WAITING, holding no thread and no lease; `resume_due()` fires what
is due on the runner's clock (a 30-day grace period passes in a test's millisecond with
the virtual clock), exactly once, whichever process calls it; a wait past its timeout
fails like a step and what was done is undone. Under both runners, sync and async, in
memory and on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import pytest

from coordination import Context, EntryKind, Event, Participant, Retry, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError, UsageError
from coordination.orchestration import Orchestrator, sleep, step, wait
from coordination.stores import SQLiteStore
from coordination.testing import (
    ENTRY_POINTS,
    VirtualClock,
    assert_crash_safe,
    journal_problems,
    journal_shape,
)
from tests.equivalence_shapes import Ledger
from tests.waiting_flow import (
    Authorized,
    OrderPlaced,
    Payments,
    PaymentSettled,
    webhook_services,
)

S = WorkflowStatus
DAYS_30 = 30 * 24 * 3600.0
ORDER = OrderPlaced(order_id="o-1", cents=500)


class Renewed(Event, type_name="tests.timers.Renewed"):
    order_id: str
    cents: int


class Confirmed(Event, type_name="tests.timers.Confirmed"):
    order_id: str


class Renewals(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def renew(self, authorized: Authorized, ctx: Context) -> Renewed: ...


class Confirmations(Participant):
    @action
    @abstractmethod
    def confirm(
        self, authorized: Authorized, settled: PaymentSettled, ctx: Context
    ) -> Confirmed: ...


class GracePeriod(Orchestrator[OrderPlaced, Renewed], name="tests.grace-period"):
    """Authorize, wait out a 30-day grace period, then renew (eShop's grace period)."""

    steps = (step(Payments.authorize), sleep(dt.timedelta(days=30)), step(Renewals.renew))


class Impatient(Orchestrator[OrderPlaced, Confirmed], name="tests.impatient"):
    """Authorize, then wait at most a minute for the provider to settle."""

    steps = (
        step(Payments.authorize),
        wait(PaymentSettled, timeout=60.0),
        step(Confirmations.confirm),
    )


class LedgerRenewals(Ledger, Renewals):
    def renew(self, authorized: Authorized, ctx: Context) -> Renewed:
        return Renewed(order_id=authorized.order_id, cents=self.apply(ctx, authorized.cents))


class LedgerConfirmations(Ledger, Confirmations):
    def confirm(self, authorized: Authorized, settled: PaymentSettled, ctx: Context) -> Confirmed:
        self.apply(ctx, 1)
        return Confirmed(order_id=settled.order_id)


def grace_services() -> tuple[Participant, ...]:
    return (webhook_services()[0], LedgerRenewals())


def impatient_services() -> tuple[Participant, ...]:
    return (webhook_services()[0], LedgerConfirmations())


class Rig:
    """One entry point of one flow on a virtual clock (and a store, if given)."""

    def __init__(self, flow: Any, services: Any, entry_point: str, store: Any = None) -> None:
        self.entry_point = entry_point
        self.clock = VirtualClock()
        self.services = services()
        if entry_point.startswith("run"):
            self.runner: Any = flow(*self.services, clock=self.clock, store=store)
        else:
            self.runner = Choreography(
                EventBus(clock=self.clock), *self.services, flow=flow, clock=self.clock,
                store=store,
            )  # fmt: skip

    def start(self) -> None:
        point = self.entry_point
        if point == "run":
            self.runner.run(ORDER, workflow_id="wf")
        elif point == "run_async":
            asyncio.run(self.runner.run_async(ORDER, workflow_id="wf"))
        elif point == "publish":
            self.runner.publish(ORDER, correlation_id="wf")
        else:
            asyncio.run(self.runner.publish_async(ORDER, correlation_id="wf"))

    def get(self) -> Any:
        if self.entry_point.startswith("run"):
            return self.runner.get("wf")
        return self.runner.monitor.get("wf")

    def state(self) -> list[Any]:
        return [p.snapshot() for p in self.services]  # type: ignore[attr-defined]


# -- sleeping -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_30_day_sleep_passes_on_the_virtual_clock(entry_point: str) -> None:
    rig = Rig(GracePeriod, grace_services, entry_point)
    rig.start()
    assert rig.get().status is S.WAITING
    record = rig.runner.store.get_run("wf")
    assert (record.owner, record.lease_expires) == (None, None)  # no thread, no lease

    rig.clock.advance(DAYS_30 - 1)
    assert rig.runner.resume_due() == []  # not due yet: nothing moves
    assert rig.get().status is S.WAITING

    rig.clock.advance(1)
    (moved,) = rig.runner.resume_due()
    assert moved.status is S.COMPLETED
    done = rig.get()
    assert done.journal.names(EntryKind.WAITING) == ["sleep.1"]
    assert rig.state()[1] == [("wf:Renewals.renew", 500)]
    assert journal_problems(done.journal) == []


def test_every_entry_point_sleeps_alike() -> None:
    ends = []
    for entry_point in ENTRY_POINTS:
        rig = Rig(GracePeriod, grace_services, entry_point)
        rig.start()
        rig.clock.advance(DAYS_30)
        rig.runner.resume_due()
        ended = rig.get()
        ends.append((ended.status, journal_shape(ended.journal), repr(rig.state())))
    assert len(set(ends)) == 1, ends


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_timer_fires_exactly_once(runner: str) -> None:
    rig = Rig(GracePeriod, grace_services, runner)
    rig.start()
    rig.clock.advance(DAYS_30 + 5)
    assert len(rig.runner.resume_due()) == 1
    assert rig.runner.resume_due() == []  # fired already
    assert len(rig.get().journal.of_kind(EntryKind.STARTED)) == 2  # authorize, renew: once


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_timer_is_durable_and_fires_once_across_processes(runner: str, tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    with SQLiteStore(path) as store:
        Rig(GracePeriod, grace_services, runner, store).start()
    with SQLiteStore(path) as one, SQLiteStore(path) as other:
        first = Rig(GracePeriod, grace_services, runner, one)
        second = Rig(GracePeriod, grace_services, runner, other)
        for rig in (first, second):
            rig.clock.advance(DAYS_30)  # both processes see the timer due
        assert len(first.runner.resume_due()) == 1
        assert second.runner.resume_due() == []  # the other process fired it: once
        assert first.get().status is S.COMPLETED
        assert second.state()[1] == []  # nothing ran twice
        assert first.state()[1] == [("wf:Renewals.renew", 500)]


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_crash_at_any_write_before_the_sleep_recovers_to_it(runner: str) -> None:
    assert assert_crash_safe(GracePeriod, grace_services, ORDER, entry_points=(runner,))


# -- wait timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_wait_past_its_timeout_fails_like_a_step(entry_point: str) -> None:
    rig = Rig(Impatient, impatient_services, entry_point)
    rig.start()
    rig.clock.advance(61)
    (moved,) = rig.runner.resume_due()

    assert moved.status is S.COMPENSATED
    ended = rig.get()
    assert ended.journal.names(EntryKind.FAILED) == ["wait.PaymentSettled"]
    assert [e.undoes for e in ended.journal.of_kind(EntryKind.COMPENSATED)] == [
        "Payments.authorize"
    ]
    assert rig.state() == [[], []]
    late = PaymentSettled(order_id="o-1")
    if entry_point.startswith("run"):
        send = lambda: rig.runner.send("wf", late)  # noqa: E731
    else:
        send = lambda: rig.runner.publish(late, correlation_id="wf")  # noqa: E731
    with pytest.raises(UsageError, match="stopped waiting for PaymentSettled: WaitTimeout"):
        send()


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_message_before_the_timeout_wins(runner: str) -> None:
    rig = Rig(Impatient, impatient_services, runner)
    rig.start()
    rig.clock.advance(30)
    if runner == "run":
        rig.runner.send("wf", PaymentSettled(order_id="o-1"))
    else:
        rig.runner.publish(PaymentSettled(order_id="o-1"), correlation_id="wf")
    rig.clock.advance(60)

    assert rig.runner.resume_due() == []  # nothing waits any more: no timer fires
    assert rig.get().status is S.COMPLETED


def test_every_entry_point_times_out_alike() -> None:
    ends = []
    for entry_point in ENTRY_POINTS:
        rig = Rig(Impatient, impatient_services, entry_point)
        rig.start()
        rig.clock.advance(60)
        rig.runner.resume_due()
        ended = rig.get()
        ends.append((ended.status, journal_shape(ended.journal), repr(rig.state())))
    assert len(set(ends)) == 1, ends
    assert ends[0][0] is S.COMPENSATED


# -- declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0, -1.0, "30", True, dt.timedelta(0)])
def test_a_duration_is_positive_seconds_or_a_timedelta(duration: Any) -> None:
    with pytest.raises(DefinitionError, match="positive number of seconds or a timedelta"):
        sleep(duration)
    with pytest.raises(DefinitionError, match="positive number of seconds or a timedelta"):
        wait(PaymentSettled, timeout=duration)


def test_sleeps_are_numbered_and_part_of_the_shape() -> None:
    assert [w.key for w in GracePeriod.plan.waits] == ["sleep.1"]
    assert GracePeriod.plan.waits[0].due_in == DAYS_30
    assert "sleep" in GracePeriod.plan.shape


# -- workers -------------------------------------------------------------------------------


def _serving(orchestrator: Any, until: Any, then: Any = None) -> None:
    """Run `orchestrator.serve()` on a thread until `until()` holds (10 s at most); `then()`
    once the worker went idle (its first recovery done)."""
    stop = threading.Event()
    worker = threading.Thread(target=lambda: orchestrator.serve(poll=0.01, stop=stop))
    worker.start()
    try:
        if then is not None:
            stop.wait(0.3)  # past the worker's first recover(): what comes now, it claims
            then()
        deadline = time.monotonic() + 10
        while not until() and time.monotonic() < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        worker.join(10)


def test_a_worker_fires_the_timers_that_came_due(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "orders.db") as store:
        clock = VirtualClock()
        orders = GracePeriod(*grace_services(), clock=clock, store=store)
        orders.run(ORDER, workflow_id="wf")
        clock.advance(DAYS_30)
        _serving(orders, lambda: orders.get("wf").status is S.COMPLETED)
        assert orders.get("wf").status is S.COMPLETED


def test_a_waiting_run_is_no_free_run_for_postgresql_workers(postgres: Any) -> None:
    store = postgres.store()
    orders = GracePeriod(*grace_services(), clock=VirtualClock(), store=store)
    orders.run(ORDER, workflow_id="older")  # sleeping: WAITING, let go

    # The oldest free run is the one submitted later, never the sleeping one (which a
    # claim would only suspend again, over and over).
    _serving(
        orders,
        lambda: orders.get("newer").status is S.WAITING,
        then=lambda: orders.submit(OrderPlaced(order_id="o-2", cents=100), workflow_id="newer"),
    )
    assert orders.get("newer").status is S.WAITING
    assert orders.get("older").status is S.WAITING
