"""`ctx.schedule(...)`: a participant sends its own instance a message later, or starts the
next instance of a repeating process, on the runner's clock, exactly once.

Shown on the bundled subscription (examples/subscription): each period charges and
schedules its own `PeriodEnded` in 30 days; at the period's end `renew` schedules the next
period's start message with `workflow_id="sub-7:2027-02"`; a cancel ends the chain. Under
both runners, sync and async, in memory, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordination import Context, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import UsageError
from coordination.stores import SQLiteStore
from coordination.testing import ENTRY_POINTS, VirtualClock, assert_crash_safe, journal_problems
from examples.subscription import (
    OPENING,
    PERIOD,
    AccountBook,
    CancelRequested,
    CardBilling,
    Charged,
    PeriodEnded,
    PeriodStarted,
    Renewed,
    SubscriptionPeriod,
    period_id,
)
from tests.postgres import Backend
from tests.test_timers import _serving

S = WorkflowStatus
ROOT = Path(__file__).resolve().parent.parent
FIRST = PeriodStarted(subscription_id="sub-7", period="2027-01", cents=900)
JAN, FEB, MAR, APR = (period_id("sub-7", f"2027-0{n}") for n in (1, 2, 3, 4))


class Rig:
    def __init__(self, entry_point: str, store: Any = None, billing: Any = None) -> None:
        self.entry_point = entry_point
        self.clock = VirtualClock()
        self.billing = billing or CardBilling()
        self.accounts = AccountBook()
        if entry_point.startswith("run"):
            self.runner: Any = SubscriptionPeriod(
                self.billing, self.accounts, clock=self.clock, store=store
            )
        else:
            self.runner = Choreography(
                EventBus(clock=self.clock), self.billing, self.accounts,
                flow=SubscriptionPeriod, clock=self.clock, store=store,
            )  # fmt: skip

    def start(self) -> None:
        point, runner = self.entry_point, self.runner
        if point == "run":
            runner.run(FIRST, workflow_id=JAN)
        elif point == "run_async":
            asyncio.run(runner.run_async(FIRST, workflow_id=JAN))
        elif point == "publish":
            runner.publish(FIRST, correlation_id=JAN)
        else:
            asyncio.run(runner.publish_async(FIRST, correlation_id=JAN))

    def cancel(self, workflow_id: str) -> None:
        cancel = CancelRequested(subscription_id="sub-7")
        if self.entry_point.startswith("run"):
            self.runner.send(workflow_id, cancel)
        else:
            self.runner.publish(cancel, correlation_id=workflow_id)

    def view(self, workflow_id: str) -> Any:
        if self.entry_point.startswith("run"):
            return self.runner.get(workflow_id)
        return self.runner.monitor.get(workflow_id)

    def status(self, workflow_id: str) -> WorkflowStatus | None:
        record = self.runner.store.get_run(workflow_id)
        return None if record is None else record.status

    def month(self) -> list[Any]:
        """A period passes (its end fires), then the next one opens."""
        self.clock.advance(PERIOD.total_seconds())
        moved = list(self.runner.resume_due())
        self.clock.advance(OPENING.total_seconds())
        return moved + list(self.runner.resume_due())


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_subscription_renews_monthly_and_a_cancel_ends_the_chain(entry_point: str) -> None:
    rig = Rig(entry_point)
    rig.start()
    assert rig.status(JAN) is S.WAITING  # its own PeriodEnded is scheduled in 30 days
    rig.clock.advance(PERIOD.total_seconds() - 1)
    assert rig.runner.resume_due() == []  # not due yet
    rig.clock.advance(1)
    assert len(rig.runner.resume_due()) == 1  # the period ended: renewed
    assert rig.status(JAN) is S.COMPLETED
    assert rig.status(FEB) is None  # scheduled, an hour later
    rig.clock.advance(OPENING.total_seconds())
    assert len(rig.runner.resume_due()) == 1  # February opens
    assert rig.status(FEB) is S.WAITING
    assert rig.runner.resume_due() == []  # fired once

    rig.month()
    assert rig.status(MAR) is S.WAITING
    rig.cancel(MAR)
    assert rig.status(MAR) is S.COMPLETED
    for _ in range(3):  # months pass: nothing more starts
        assert rig.month() == []
    assert rig.status(APR) is None
    assert sorted(rig.billing.charges) == [f"{JAN}:Billing.charge", f"{FEB}:Billing.charge",
                                            f"{MAR}:Billing.charge"]  # fmt: skip
    assert rig.accounts.closed == ["sub-7"]
    assert rig.billing.refunds == []
    for workflow_id in (JAN, FEB, MAR):
        assert journal_problems(rig.view(workflow_id).journal) == []
        assert not rig.runner.store.get_run(workflow_id).owed  # nothing left owed


def test_the_orchestrated_periods_end_with_their_business_outputs() -> None:
    rig = Rig("run")
    rig.start()
    rig.month()
    rig.cancel(FEB)
    assert rig.runner.get(JAN).output == Renewed(
        subscription_id="sub-7", period="2027-01", next_period="2027-02"
    )
    assert rig.runner.get(FEB).output.reason == "the customer cancelled"


def test_every_entry_point_runs_the_chain_alike() -> None:
    ends = set()
    for entry_point in ENTRY_POINTS:
        rig = Rig(entry_point)
        rig.start()
        rig.month()
        rig.month()
        rig.cancel(MAR)
        ends.add(
            (tuple(rig.status(w) for w in (JAN, FEB, MAR, APR)), repr(sorted(rig.billing.charges)))
        )
    assert len(ends) == 1, ends


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_scheduled_start_waits_in_the_owed_work_index_once_its_instance_ended(
    runner: str,
) -> None:
    rig = Rig(runner)
    rig.start()
    rig.clock.advance(PERIOD.total_seconds())
    rig.runner.resume_due()
    record = rig.runner.store.get_run(JAN)
    assert record.status is S.COMPLETED
    assert record.owed  # owes February's start
    for _ in range(8):  # recovery leaves it alone: nothing to take over, nothing to park
        rig.clock.advance(60.0)
        assert rig.runner.recover() == []
    again = rig.runner.store.get_run(JAN)
    assert again.owed
    assert again.owner is None
    assert again.steps == record.steps  # no takeover journaled
    rig.clock.advance(OPENING.total_seconds())
    rig.runner.resume_due()
    assert not rig.runner.store.get_run(JAN).owed
    assert rig.status(FEB) is S.WAITING


class FlakyBilling(CardBilling):
    """Schedules, then fails, on its first attempt: that attempt's schedule is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def charge(self, started: PeriodStarted, ctx: Context) -> Charged:
        self.calls += 1
        ctx.schedule(
            PeriodEnded(subscription_id=started.subscription_id, period="early"),
            after=1.0,
        )
        if self.calls == 1:
            raise ConnectionError("the card network is down")
        return super().charge(started, ctx)


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_failed_attempts_schedule_is_dropped(runner: str) -> None:
    rig = Rig(runner, billing=FlakyBilling())
    rig.start()
    record = rig.runner.store.get_run(JAN)
    keys = [step.key for step in record.steps if ":schedule" in step.key]
    assert keys == ["Billing.charge:schedule1", "Billing.charge:schedule2"]  # attempt 2's
    rig.clock.advance(1.0)
    assert len(rig.runner.resume_due()) == 1  # the early PeriodEnded of the good attempt
    assert rig.status(JAN) is S.COMPLETED
    rig.clock.advance(PERIOD.total_seconds())
    rig.runner.resume_due()  # the other PeriodEnded is moot: its wait took one already


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_scheduled_start_is_durable_and_fires_once_across_processes(
    runner: str, durable_backend: Backend
) -> None:
    with durable_backend.open() as store:
        rig = Rig(runner, store)
        rig.start()
        rig.clock.advance(PERIOD.total_seconds())
        rig.runner.resume_due()  # January renewed: February is scheduled, durably
    with durable_backend.open() as one, durable_backend.open() as other:
        first, second = Rig(runner, one), Rig(runner, other)
        for rig in (first, second):
            rig.clock.advance(PERIOD.total_seconds() + OPENING.total_seconds())
        assert len(first.runner.resume_due()) == 1
        assert second.runner.resume_due() == []  # the other process started it: once
        assert first.status(FEB) is S.WAITING
        assert second.billing.charges == {}
        assert list(first.billing.charges) == [f"{FEB}:Billing.charge"]


def test_a_scheduled_start_on_postgresql(postgres: Any) -> None:
    rig = Rig("run", postgres.store())
    rig.start()
    rig.month()
    assert rig.status(JAN) is S.COMPLETED
    assert rig.status(FEB) is S.WAITING
    assert rig.runner.resume_due() == []


# -- what may be scheduled ---------------------------------------------------------------------


class Misusing(CardBilling):
    def __init__(self, what: Any) -> None:
        super().__init__()
        self.what = what

    def charge(self, started: PeriodStarted, ctx: Context) -> Charged:
        try:
            self.what(ctx, started)
        except UsageError as error:
            self.error = str(error)
        return super().charge(started, ctx)


@pytest.mark.parametrize(
    ("what", "says"),
    [
        (lambda ctx, s: ctx.schedule(s, after=5), "does not wait for"),
        (lambda ctx, s: ctx.schedule(CancelRequested(subscription_id="x"), after=0), "positive"),
        (lambda ctx, s: ctx.schedule(Renewed(subscription_id="x", period="p", next_period="q"),
                                     after=5, workflow_id="sub-7:x"), "starts with PeriodStarted"),
        (lambda ctx, s: ctx.schedule("PeriodEnded", after=5), "takes a message"),
    ],
)  # fmt: skip
def test_a_schedule_the_flow_cannot_take_is_a_usage_error(what: Any, says: str) -> None:
    billing = Misusing(what)
    rig = Rig("run", billing=billing)
    rig.start()
    assert says in billing.error


def test_the_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.subscription"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.count("COMPLETED") == 6
    assert "closed ['sub-7']" in done.stdout


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_crash_at_any_write_keeps_a_schedule_with_its_step(runner: str) -> None:
    assert assert_crash_safe(
        SubscriptionPeriod, lambda: (CardBilling(), AccountBook()), FIRST, entry_points=(runner,)
    )


# -- workers -----------------------------------------------------------------------------------


def _served_chain(store: Any) -> Rig:
    """January ends and February opens under `serve()` alone (a worker's idle loop)."""
    rig = Rig("run", store)
    rig.start()
    rig.clock.advance(PERIOD.total_seconds())
    _serving(rig.runner, lambda: rig.status(JAN) is S.COMPLETED)
    assert rig.status(JAN) is S.COMPLETED
    record = rig.runner.store.get_run(JAN)
    assert record.owed  # February's start, not due yet: the worker leaves it be
    _serving(rig.runner, lambda: True, then=lambda: None)  # idle a while: nothing happens
    again = rig.runner.store.get_run(JAN)
    assert again.status is S.COMPLETED  # never taken over, never parked
    assert [s.key for s in again.steps] == [s.key for s in record.steps]
    rig.clock.advance(OPENING.total_seconds())
    _serving(rig.runner, lambda: rig.status(FEB) is S.WAITING)
    assert rig.status(FEB) is S.WAITING
    assert not rig.runner.store.get_run(JAN).owed
    return rig


def test_a_worker_fires_scheduled_messages_and_starts(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "subs.db") as store:
        _served_chain(store)


def test_a_postgresql_worker_fires_scheduled_messages_and_starts(postgres: Any) -> None:
    _served_chain(postgres.store())


def test_any_workflow_id_can_be_scheduled_to_start() -> None:
    """An id that looks like another record kind's marker (`:late1`, `:parked1`, `>`) is
    kept apart from the schedule's own key."""
    clock = VirtualClock()
    subscriptions = SubscriptionPeriod(CardBilling(), AccountBook(), clock=clock)
    odd = "x:late1:parked1>y"
    subscriptions.run(
        PeriodStarted(subscription_id=odd, period="2027-01", cents=1),
        workflow_id=period_id(odd, "2027-01"),
    )
    clock.advance((PERIOD + OPENING).total_seconds())
    subscriptions.resume_due()
    clock.advance(OPENING.total_seconds())
    (started,) = subscriptions.resume_due()
    assert started.workflow_id == f"{odd}:2027-02"
    assert subscriptions.get(period_id(odd, "2027-01")).status is S.COMPLETED


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_scheduled_start_whose_id_is_taken_is_not_made_and_says_so(
    runner: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(runner)
    rig.start()
    other = PeriodStarted(subscription_id="sub-7", period="2027-02", cents=1)
    if runner == "run":  # someone started February by hand, with another price
        rig.runner.run(other, workflow_id=FEB)
    else:
        rig.runner.publish(other, correlation_id=FEB)
    with caplog.at_level("WARNING", logger="coordination.engine"):
        rig.month()
    assert "a scheduled start was not made: WorkflowConflict" in caplog.text
    record = rig.runner.store.get_run(JAN)
    assert record.status is S.COMPLETED
    assert not record.owed  # marked made: it is never tried again
    (marker,) = [step for step in record.steps if step.key.endswith(":started")]
    assert marker.error is not None
    assert marker.error.startswith("WorkflowConflict")
    assert rig.runner.store.get_run(FEB).start == other  # the one already there stays
    rig.month()  # resume_due() goes on: the February there has its own chain
    assert rig.status(MAR) is S.COMPLETED
