"""Crash points: a crash at every store write, then recover(), ends as no crash did."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import pytest
from hypothesis import given, settings

from coordination import Context, Event, Participant, action
from coordination.engine import _attempts, _saga
from coordination.orchestration import Orchestrator, parallel, step
from coordination.stores import SQLiteStore, StepOutcome
from coordination.testing import (
    Crash,
    CrashPoint,
    Fault,
    FaultKind,
    FaultPlan,
    assert_crash_safe,
    crash_points,
    fake,
    fault_plans,
)
from examples.ecommerce import PlaceOrder
from tests.postgres import PostgresServer
from tests.testing.test_fakes import ORDER, shop

ALL = ("run", "run_async", "publish", "publish_async")


def refused_stock() -> list[Any]:
    return shop(FaultPlan.of(Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL)))


def test_every_write_of_both_runners_is_a_point_before_and_after() -> None:
    points = crash_points(PlaceOrder, shop, ORDER, entry_points=ALL)
    assert {p.entry_point for p in points} == set(ALL)
    run = [p for p in points if p.entry_point == "run"]
    assert run[0] == CrashPoint("run", 1, "start_run", after=False)
    assert run[1] == CrashPoint("run", 1, "start_run", after=True)
    assert {p.operation for p in run} == {"start_run", "write"}
    assert len(run) % 2 == 0
    assert str(run[3]) == "run: crash after write 2 (write)"


@pytest.mark.parametrize("participants", [shop, refused_stock], ids=["completes", "compensates"])
def test_the_shop_is_crash_safe_at_every_write(participants: Any) -> None:
    points = assert_crash_safe(PlaceOrder, participants, ORDER, entry_points=ALL)
    assert len(points) >= 40


def test_a_durable_store_is_crash_safe_too(tmp_path: Any) -> None:
    files = iter(range(10_000))
    points = assert_crash_safe(
        PlaceOrder,
        refused_stock,
        ORDER,
        store=lambda: SQLiteStore(tmp_path / f"runs-{next(files)}.db"),
    )
    assert points


def test_a_postgres_store_is_crash_safe_at_every_write_of_both_runners(
    postgres: PostgresServer,
) -> None:
    opened: list[Any] = []

    def fresh() -> Any:
        for done in opened:  # each point is done with its store when it asks for the next
            done.close()
        opened[:] = [postgres.store()]
        return opened[0]

    points = assert_crash_safe(PlaceOrder, refused_stock, ORDER, store=fresh, entry_points=ALL)
    assert {p.entry_point for p in points} == set(ALL)


#: Refusals are answers: the same for the same key, crash or not, so the end must be the
#: crash-free run's. Transient faults (errors, timeouts, late results) a crash cuts short
#: are tried again after recovery and may succeed: those plans are held to the invariants.
REFUSALS = fault_plans(PlaceOrder, kinds=(FaultKind.REFUSAL,), compensations=False)


@settings(max_examples=10, deadline=None)
@given(plan=REFUSALS)
def test_every_refusal_plan_ends_as_without_a_crash(plan: FaultPlan) -> None:
    assert_crash_safe(PlaceOrder, lambda: shop(FaultPlan(plan.faults)), ORDER)


@settings(max_examples=10, deadline=None)
@given(plan=fault_plans(PlaceOrder))
def test_every_fault_plan_keeps_the_invariants_at_every_crash(plan: FaultPlan) -> None:
    assert_crash_safe(PlaceOrder, lambda: shop(FaultPlan(plan.faults)), ORDER, same_end=False)


@pytest.mark.long
@settings(max_examples=200, deadline=None)
@given(plan=REFUSALS)
def test_every_refusal_plan_under_all_four_entry_points(plan: FaultPlan) -> None:
    assert_crash_safe(PlaceOrder, lambda: shop(FaultPlan(plan.faults)), ORDER, entry_points=ALL)


@pytest.mark.long
@settings(max_examples=300, deadline=None)
@given(plan=fault_plans(PlaceOrder))
def test_every_fault_plan_under_all_four_entry_points(plan: FaultPlan) -> None:
    assert_crash_safe(
        PlaceOrder, lambda: shop(FaultPlan(plan.faults)), ORDER, entry_points=ALL, same_end=False
    )


CRASHING = fault_plans(PlaceOrder, crashes=True)
#: Drawn crashes: 40 in `make test`, 400 in `make test-long` (its profile's tenth).
DRAWN = max(40, settings().max_examples // 5)


@settings(max_examples=DRAWN, deadline=None)
@given(plan=CRASHING)
def test_a_drawn_crash_keeps_the_invariants_under_all_four_entry_points(plan: FaultPlan) -> None:
    assert plan.crash is not None
    points = assert_crash_safe(
        PlaceOrder, lambda: shop(plan.fresh()), ORDER, entry_points=ALL, same_end=False,
        crash=plan.crash,
    )  # fmt: skip
    assert [p.entry_point for p in points] == list(ALL)
    assert all(p.after == plan.crash.after for p in points)


@settings(max_examples=DRAWN, deadline=None)
@given(plan=fault_plans(PlaceOrder, kinds=(FaultKind.REFUSAL,), compensations=False, crashes=True))
def test_a_drawn_crash_of_a_refusal_plan_ends_as_without_it(plan: FaultPlan) -> None:
    assert_crash_safe(PlaceOrder, lambda: shop(plan.fresh()), ORDER, crash=plan.crash)


def test_a_drawn_crash_past_the_last_write_wraps_round() -> None:
    every = [p for p in crash_points(PlaceOrder, shop, ORDER) if p.entry_point == "run"]
    before = [p for p in every if not p.after]
    (point,) = assert_crash_safe(
        PlaceOrder, shop, ORDER, entry_points=("run",), crash=Crash(len(before) + 2)
    )
    assert point == before[1]


def test_a_crash_names_where_it_hits() -> None:
    assert str(Crash(3, after=True)) == "crash after store write 3"
    with pytest.raises(ValueError, match="count from 1"):
        Crash(0)
    plan = FaultPlan.of(Fault("Bank.pay", 1), crash=Crash(2))
    again = plan.fresh()
    assert again == plan
    assert again is not plan
    assert again.calls == []


def test_a_step_rerun_under_a_new_key_after_recovery_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The seeded bug: a resumed instance's actions get a fresh idempotency key, so a step
    # whose effect landed before the crash lands again.
    real = _attempts.Attempts.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        if self.first > 1:
            self.idempotency_key += ":resumed"

    monkeypatch.setattr(_attempts.Attempts, "__init__", init)
    with pytest.raises(AssertionError, match="applied 2 times"):
        assert_crash_safe(PlaceOrder, shop, ORDER)


def test_a_transient_fault_cut_short_by_a_crash_may_end_otherwise() -> None:
    # Two timeouts fail the step without a crash; a crash that loses the record of them
    # retries it after recovery, and the retry succeeds: a different, valid end.
    def timing_out() -> list[Any]:
        plan = [Fault("Logistics.assign_courier", n, FaultKind.TIMEOUT) for n in (1, 2, 3)]
        return shop(FaultPlan(tuple(plan)))

    with pytest.raises(AssertionError, match="ended COMPLETED, not COMPENSATED"):
        assert_crash_safe(PlaceOrder, timing_out, ORDER)
    assert assert_crash_safe(PlaceOrder, timing_out, ORDER, same_end=False)


def test_a_late_result_of_a_failed_step_without_compensation_owes_nothing_after_a_crash() -> None:
    # Found by the property above: replaying such a run owed the late result an undo the
    # step has no compensation for, and finishing it failed an assertion.
    def late_confirmations() -> list[Any]:
        faults = (
            Fault("Notifications.send_confirmation", 1, FaultKind.LATE),
            Fault("Notifications.send_confirmation", 2, FaultKind.TIMEOUT),
            Fault("Notifications.send_confirmation", 3, FaultKind.TIMEOUT),
        )
        return shop(FaultPlan(faults))

    assert assert_crash_safe(PlaceOrder, late_confirmations, ORDER, same_end=False)


# -- a branch's effect left applied after a crash ---------------------------------------------


class TripAsked(Event):
    trip_id: str


class SeatHeld(Event):
    trip_id: str


class CarRented(Event):
    trip_id: str


class Airline(Participant):
    @action
    @abstractmethod
    def hold(self, asked: TripAsked, ctx: Context) -> SeatHeld: ...

    @hold.compensation
    @abstractmethod
    def release(self, asked: TripAsked, ctx: Context) -> None: ...


class Cars(Participant):
    @action
    @abstractmethod
    def rent(self, asked: TripAsked, ctx: Context) -> CarRented: ...


class Trip(Orchestrator[TripAsked, tuple[CarRented, SeatHeld]], name="tests.crash.trip"):
    steps = (parallel(step(Cars.rent), step(Airline.hold)),)


TRIP = TripAsked(trip_id="t-1")


def refused_car() -> list[Any]:
    plan = FaultPlan.of(Fault("Cars.rent", 1, FaultKind.REFUSAL))
    return [fake(Airline, faults=plan), fake(Cars, faults=plan)]


def test_a_branch_running_when_its_sibling_failed_is_undone_after_a_crash() -> None:
    assert assert_crash_safe(Trip, refused_car, TRIP, entry_points=ALL)


def test_a_branch_left_applied_after_a_crash_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The seeded bug (issue 9's defect 4): recovery knows only recorded steps, so a branch
    # that was still running when its sibling failed, and had no record when the process
    # died, is taken as never started; its input-typed undo never runs.
    real = _saga.replay

    def replay(plan: Any, record: Any, progress: Any, publishing: Any) -> Any:
        replayed = real(plan, record, progress, publishing)
        failing = progress.failing
        if failing:
            for planned in plan.generations[failing - 1]:
                if planned.key not in progress.outcomes:
                    progress.settle(planned, StepOutcome.SKIPPED, None)
        return replayed

    monkeypatch.setattr(_saga, "replay", replay)
    with pytest.raises(AssertionError, match="Airline"):
        assert_crash_safe(Trip, refused_car, TRIP)
