"""A wait that names a timeout outcome: past its timeout it completes with that outcome.

`wait(PaymentSettled | PaymentLapsed, timeout=60, on_timeout=PaymentLapsed)`: when the
timer fires, the engine builds `PaymentLapsed()` and the wait completes with it, a business
outcome like any other: the steps that needed `PaymentSettled` are skipped, the branch for
the lapse runs, and the run ends COMPLETED, nothing undone. Under both runners, sync and
async, in memory and on SQLite (and on PostgreSQL with the durable suites' fixture).
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from typing import Any

import pytest

from coordination import Context, EntryKind, Event, Participant, WorkflowStatus, action
from coordination.errors import DefinitionError
from coordination.orchestration import Orchestrator, parallel, step, wait
from coordination.testing import ENTRY_POINTS, assert_crash_safe, journal_problems, journal_shape
from tests.equivalence_shapes import Ledger
from tests.postgres import Backend
from tests.test_timers import Confirmations, Confirmed, LedgerConfirmations, Rig
from tests.waiting_flow import (
    Authorized,
    OrderPlaced,
    Payments,
    PaymentSettled,
    webhook_services,
)

S = WorkflowStatus


class PaymentLapsed(Event, type_name="tests.timeout_outcomes.PaymentLapsed"):
    """Built by the engine when nobody settled in time: no required fields."""

    note: str = "the provider never answered"


class OrderLapsed(Event, type_name="tests.timeout_outcomes.OrderLapsed"):
    order_id: str


class Lapses(Participant):
    @action
    @abstractmethod
    def lapse(self, authorized: Authorized, lapsed: PaymentLapsed, ctx: Context) -> OrderLapsed: ...


class LedgerLapses(Ledger, Lapses):
    def lapse(self, authorized: Authorized, lapsed: PaymentLapsed, ctx: Context) -> OrderLapsed:
        self.apply(ctx, 1)
        return OrderLapsed(order_id=authorized.order_id)


class Patient(Orchestrator[OrderPlaced, Confirmed | OrderLapsed], name="tests.patient"):
    """Authorize, wait a minute for the provider; a lapse is an outcome, not a failure."""

    steps = (
        step(Payments.authorize),
        wait(PaymentSettled | PaymentLapsed, timeout=60.0, on_timeout=PaymentLapsed),
        parallel(step(Confirmations.confirm), step(Lapses.lapse)),
    )


def patient_services() -> tuple[Participant, ...]:
    return (webhook_services()[0], LedgerConfirmations(), LedgerLapses())


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_past_its_timeout_the_wait_completes_with_the_timeout_outcome(entry_point: str) -> None:
    rig = Rig(Patient, patient_services, entry_point)
    rig.start()
    assert rig.get().status is S.WAITING
    rig.clock.advance(59)
    assert rig.runner.resume_due() == []
    rig.clock.advance(1)
    (moved,) = rig.runner.resume_due()

    assert moved.status is S.COMPLETED  # not COMPENSATED: nothing failed
    ended = rig.get()
    assert ended.journal.names(EntryKind.FAILED) == []
    assert ended.journal.names(EntryKind.COMPENSATED) == []
    assert ended.journal.names(EntryKind.SKIPPED) == ["Confirmations.confirm"]
    assert journal_problems(ended.journal) == []
    assert rig.state()[2] == [("wf:Lapses.lapse", 1)]
    assert rig.state()[1] == []
    arrived = [e for e in ended.journal if e.detail and "timed out after 60s" in e.detail]
    assert len(arrived) == 1
    assert rig.runner.resume_due() == []  # fired once


def test_every_entry_point_takes_the_timeout_branch_alike() -> None:
    ends = []
    for entry_point in ENTRY_POINTS:
        rig = Rig(Patient, patient_services, entry_point)
        rig.start()
        rig.clock.advance(60)
        rig.runner.resume_due()
        ended = rig.get()
        ends.append((ended.status, journal_shape(ended.journal), repr(rig.state())))
    assert len(set(ends)) == 1, ends
    assert ends[0][0] is S.COMPLETED


def test_the_run_output_is_the_timeout_branch() -> None:
    rig = Rig(Patient, patient_services, "run")
    rig.start()
    rig.clock.advance(60)
    (run,) = rig.runner.resume_due()
    assert run.output == OrderLapsed(order_id="o-1")
    assert run.output_of(PaymentLapsed) == PaymentLapsed()


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_the_message_before_the_timeout_wins_and_no_outcome_is_built(runner: str) -> None:
    rig = Rig(Patient, patient_services, runner)
    rig.start()
    rig.clock.advance(30)
    if runner == "run":
        rig.runner.send("wf", PaymentSettled(order_id="o-1"))
    else:
        rig.runner.publish(PaymentSettled(order_id="o-1"), correlation_id="wf")
    rig.clock.advance(60)
    assert rig.runner.resume_due() == []
    ended = rig.get()
    assert ended.status is S.COMPLETED
    assert ended.journal.names(EntryKind.SKIPPED) == ["Lapses.lapse"]


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_the_timeout_outcome_is_durable_and_fires_once_across_processes(
    runner: str, durable_backend: Backend
) -> None:
    with durable_backend.open() as store:
        Rig(Patient, patient_services, runner, store).start()
    with durable_backend.open() as one, durable_backend.open() as other:
        first = Rig(Patient, patient_services, runner, one)
        second = Rig(Patient, patient_services, runner, other)
        for rig in (first, second):
            rig.clock.advance(61)
        assert len(first.runner.resume_due()) == 1
        assert second.runner.resume_due() == []
        assert first.get().status is S.COMPLETED
        assert second.state()[2] == []
        assert first.state()[2] == [("wf:Lapses.lapse", 1)]
    with durable_backend.open() as store:  # read back by a fresh process: the same end
        again = Rig(Patient, patient_services, runner, store)
        assert again.get().status is S.COMPLETED
        assert again.runner.resume_due() == []


def test_the_timeout_outcome_on_postgresql(postgres: Any) -> None:
    store = postgres.store()
    rig = Rig(Patient, patient_services, "run", store)
    rig.start()
    rig.clock.advance(60)
    (moved,) = rig.runner.resume_due()
    assert moved.status is S.COMPLETED
    assert moved.output == OrderLapsed(order_id="o-1")


# -- declarations ------------------------------------------------------------------------------


class Needy(Event, type_name="tests.timeout_outcomes.Needy"):
    order_id: str


def test_a_timeout_outcome_needs_a_timeout() -> None:
    with pytest.raises(DefinitionError, match="needs a timeout="):
        wait(PaymentSettled | PaymentLapsed, on_timeout=PaymentLapsed)


def test_the_timeout_outcome_is_a_member_of_the_union() -> None:
    with pytest.raises(DefinitionError, match="add it to the union"):
        wait(PaymentSettled, timeout=5, on_timeout=PaymentLapsed)


def test_a_timeout_outcome_alone_is_a_sleep() -> None:
    with pytest.raises(DefinitionError, match="is a sleep"):
        wait(PaymentLapsed, timeout=5, on_timeout=PaymentLapsed)


def test_the_engine_builds_the_timeout_outcome_with_no_arguments() -> None:
    with pytest.raises(DefinitionError, match="requires order_id; give those fields defaults"):
        wait(PaymentSettled | Needy, timeout=dt.timedelta(minutes=5), on_timeout=Needy)


def test_the_declaration_reads_back() -> None:
    declared = wait(PaymentSettled | PaymentLapsed, timeout=60, on_timeout=PaymentLapsed)
    assert repr(declared) == (
        "wait(PaymentSettled | PaymentLapsed, timeout=60, on_timeout=PaymentLapsed)"
    )


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_crash_at_any_write_before_the_wait_recovers_to_it(runner: str) -> None:
    assert assert_crash_safe(
        Patient, patient_services, OrderPlaced(order_id="o-1", cents=500), entry_points=(runner,)
    )


def test_a_wait_with_a_timeout_outcome_may_follow_the_pivot() -> None:
    class Pivoted(Orchestrator[OrderPlaced, Confirmed | OrderLapsed], name="tests.pivoted"):
        steps = (
            step(Payments.authorize, pivot=True),
            wait(PaymentSettled | PaymentLapsed, timeout=60.0, on_timeout=PaymentLapsed),
            parallel(step(Confirmations.confirm), step(Lapses.lapse)),
        )

    rig = Rig(Pivoted, patient_services, "run")
    rig.start()
    rig.clock.advance(60)
    (moved,) = rig.runner.resume_due()
    assert moved.status is S.COMPLETED  # the timeout undoes nothing: it is an outcome


def test_a_wait_that_can_fail_may_not_follow_the_pivot() -> None:
    with pytest.raises(DefinitionError, match="name a timeout outcome"):

        class Failing(Orchestrator[OrderPlaced, Confirmed], name="tests.failing-after-pivot"):
            steps = (
                step(Payments.authorize, pivot=True),
                wait(PaymentSettled, timeout=60.0),
                step(Confirmations.confirm),
            )
