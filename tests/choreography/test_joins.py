"""Joins: an action with several inputs runs once, when all came for the same correlation."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from coordination import Context, EntryKind, WorkflowStatus
from coordination.choreography import ActionFailed
from coordination.testing import FaultPlan
from tests.choreography.helpers import (
    Lagging,
    Pair,
    Shop,
    Slow,
    Stalling,
    an_order,
    in_thread,
    rig_of,
)
from tests.orchestration.flows import (
    Alpha,
    Boom,
    Hook,
    J,
    Join,
    L,
    Left,
    R,
    Refused,
    Right,
    Start,
)

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
COMPENSATION_FAILED = WorkflowStatus.COMPENSATION_FAILED
RUNNING = WorkflowStatus.RUNNING


@pytest.fixture
def slow() -> Iterator[Slow]:
    holder = Slow()
    yield holder
    holder.finish()


def test_a_join_runs_once_when_all_its_inputs_arrived() -> None:
    rig = rig_of(Alpha, Left, Right, Join)
    joined = rig.record(J)
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.done == ("Alpha.first", "Left.left", "Right.right", "Join.join")
    assert [c.message for c in rig[Join].named("join")] == [(L(n=12), R(n=22))]
    assert joined.messages() == [J(n=34)]


def test_the_order_confirmation_joins_three_inputs_once() -> None:
    shop = Shop()
    plan = FaultPlan()
    plan.install(shop.notifications)
    shop.flow.publish(an_order())
    calls = [c for c in plan.calls if c.target == "Notifications.send_confirmation"]
    assert len(calls) == 1
    assert len(shop.notifications.outbox) == 1


def test_a_join_waits_for_its_other_inputs() -> None:
    rig = rig_of(Pair)
    rig.flow.publish(L(n=1), correlation_id="c")
    assert rig[Pair].count("pair") == 0
    process = rig.flow.process("c")
    assert process is not None
    assert process.joins == {"Pair.pair": {0: L(n=1)}}
    assert rig.view("c").status is RUNNING
    rig.flow.publish(R(n=2), correlation_id="c")
    assert [c.message for c in rig[Pair].named("pair")] == [(L(n=1), R(n=2), "c")]
    assert rig.view("c").status is COMPLETED
    assert process.joins == {}


def test_both_inputs_published_by_the_caller_are_in_the_journal() -> None:
    rig = rig_of(Pair)
    rig.flow.publish(L(n=1), correlation_id="c")
    rig.flow.publish(R(n=2), correlation_id="c")
    published = rig.view("c").journal.of_kind(EntryKind.PUBLISHED)
    assert [(e.participant, e.action) for e in published] == [
        ("caller", "L"),
        ("caller", "R"),
        ("Pair", "J"),
    ]


def test_inputs_of_different_correlations_never_mix() -> None:
    rig = rig_of(Pair)
    rig.flow.publish(L(n=1), correlation_id="c1")
    rig.flow.publish(R(n=2), correlation_id="c2")
    assert rig[Pair].count("pair") == 0
    rig.flow.publish(R(n=3), correlation_id="c1")
    rig.flow.publish(L(n=4), correlation_id="c2")
    assert [c.message for c in rig[Pair].named("pair")] == [
        (L(n=1), R(n=3), "c1"),
        (L(n=4), R(n=2), "c2"),
    ]
    assert rig.view("c1").status is COMPLETED
    assert rig.view("c2").status is COMPLETED


def test_a_repeated_input_neither_replaces_the_first_nor_runs_the_join_again() -> None:
    rig = rig_of(Pair)
    rig.flow.publish(L(n=1), correlation_id="c")
    rig.flow.publish(L(n=5), correlation_id="c")
    rig.flow.publish(R(n=2), correlation_id="c")
    rig.flow.publish(L(n=7), correlation_id="c")
    rig.flow.publish(R(n=8), correlation_id="c")
    assert [c.message for c in rig[Pair].named("pair")] == [(L(n=1), R(n=2), "c")]


def test_a_join_is_guarded_when_its_inputs_arrive_on_two_threads() -> None:
    rig = rig_of(Pair)
    ids = [f"c{n}" for n in range(200)]
    barrier = threading.Barrier(2, timeout=5)

    def publish_all(kind: type[L] | type[R]) -> None:
        for n, correlation in enumerate(ids):
            barrier.wait()
            rig.flow.publish(kind(n=n), correlation_id=correlation)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings per run
    try:
        left, left_errors = in_thread(lambda: publish_all(L))
        right, right_errors = in_thread(lambda: publish_all(R))
        left.join(10)
        right.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert not left.is_alive()
    assert not right.is_alive()
    assert left_errors == right_errors == []
    runs = Counter(c.message[2] for c in rig[Pair].named("pair"))
    assert runs == dict.fromkeys(ids, 1)
    for n, call in enumerate(sorted(rig[Pair].named("pair"), key=lambda c: int(c.message[2][1:]))):
        assert call.message[:2] == (L(n=n), R(n=n))
    assert len(rig.monitor.all(status=COMPLETED)) == len(ids)
    assert len(rig.monitor.all()) == len(ids)


def test_a_join_past_its_deadline_fails_the_flow_on_a_later_delivery() -> None:
    # Lagging.lag fails once and is due again 20 s later; the join waits only 10 s for R.
    rig = rig_of(Alpha, Left, Join, Lagging, join_timeout=10.0)
    failures = rig.record(ActionFailed)
    rig[Lagging].fail("lag", Boom("slow"))
    envelope = rig.flow.publish(Start(n=1))
    correlation = envelope.correlation_id
    assert rig.clock.sleeps == [pytest.approx(20.0)]
    assert rig[Join].count("join") == 0
    [failure] = failures.messages()
    assert failure.action == "Join.join"
    assert failure.attempts == 0
    assert failure.error == f"JoinTimeout: Join.join waited 10s for R of correlation {correlation}"
    view = rig.view(correlation)
    assert view.status is COMPENSATED
    assert view.failed == ("Join.join",)
    assert view.compensated == ("Lagging.lag", "Left.left", "Alpha.first")
    assert view.failure is not None
    assert view.failure.startswith("Join.join: JoinTimeout")
    assert [c.message for c in rig[Lagging].named("unlag")] == [R(n=32)]
    assert [c.message for c in rig[Left].named("undo_left")] == [L(n=12)]


def test_check_deadlines_fails_a_flow_whose_join_waits_too_long(slow: Slow) -> None:
    rig = rig_of(Alpha, Left, Join, Lagging, join_timeout=10.0)
    failures = rig.record(ActionFailed)
    rig[Lagging].script("lag", Hook(slow.hook))
    thread, errors = in_thread(lambda: rig.flow.publish(Start(n=1), correlation_id="c"))
    assert slow.entered.wait(5)
    view = rig.view("c")
    assert view.status is RUNNING
    assert view.done == ("Alpha.first", "Left.left")
    assert view.pending == ("Join.join", "Lagging.lag")
    assert rig.flow.check_deadlines() == []  # not due yet
    rig.clock.advance(10.5)
    assert rig.monitor.stalled(after=10.0) == [rig.view("c")]
    assert rig.flow.check_deadlines() == ["c"]
    assert rig.flow.check_deadlines() == []
    assert [f.action for f in failures.messages()] == ["Join.join"]
    view = rig.view("c")
    assert view.status is COMPENSATED
    assert view.compensated == ("Left.left", "Alpha.first")
    assert view.failed == ("Join.join",)
    assert view.pending == ()
    slow.finish()
    thread.join(5)
    assert errors == []
    assert rig[Join].count("join") == 0
    # Lagging.lag completed after everything else was undone: it is undone too.
    assert [c.message for c in rig[Lagging].named("unlag")] == [R(n=32)]
    view = rig.view("c")
    assert view.status is COMPENSATED
    assert view.compensated == ("Left.left", "Alpha.first", "Lagging.lag")


def test_an_action_failing_after_a_join_timeout_compensated_the_flow_is_undone(
    slow: Slow,
) -> None:
    # Stalling.stall is undone by its input: the undo is owed although it failed.
    rig = rig_of(Alpha, Left, Join, Stalling, join_timeout=10.0)
    slow.result = Refused("too late")
    rig[Stalling].script("stall", Hook(raising(slow)))
    thread, errors = in_thread(lambda: rig.flow.publish(Start(n=1), correlation_id="c"))
    assert slow.entered.wait(5)
    rig.clock.advance(11)
    assert rig.flow.check_deadlines() == ["c"]
    slow.finish()
    thread.join(5)
    assert errors == []
    assert [c.message for c in rig[Stalling].named("unstall")] == [L(n=12)]
    view = rig.view("c")
    assert view.status is COMPENSATED
    assert view.compensated == ("Left.left", "Alpha.first", "Stalling.stall")
    assert view.failed == ("Join.join", "Stalling.stall")


def test_an_undo_failing_after_the_flow_ended_leaves_compensation_failed(slow: Slow) -> None:
    rig = rig_of(Alpha, Left, Join, Lagging, join_timeout=10.0)
    rig[Lagging].script("lag", Hook(slow.hook))
    rig[Lagging].fail("unlag", *(Boom("ledger down") for _ in range(5)))
    thread, errors = in_thread(lambda: rig.flow.publish(Start(n=1), correlation_id="c"))
    assert slow.entered.wait(5)
    rig.clock.advance(11)
    assert rig.flow.check_deadlines() == ["c"]
    assert rig.view("c").status is COMPENSATED
    slow.finish()
    thread.join(5)
    assert errors == []
    assert rig[Lagging].count("unlag") == 5
    view = rig.view("c")
    assert view.status is COMPENSATION_FAILED
    assert view.failure is not None
    assert view.failure.endswith("still applied: Lagging.lag")
    assert rig.monitor.all(status=COMPENSATION_FAILED) == [view]
    process = rig.flow.process("c")
    assert process is not None
    assert process.status is COMPENSATION_FAILED


def raising(slow: Slow) -> Any:
    """A hook that waits like `slow.hook`, then raises what `slow.result` holds."""

    def hook(message: Any, ctx: Context | None) -> Any:
        raise slow.hook(message, ctx)

    return hook


def test_a_completed_join_leaves_no_deadline_behind() -> None:
    rig = rig_of(Alpha, Left, Right, Join, join_timeout=10.0)
    envelope = rig.flow.publish(Start(n=1))
    rig.clock.advance(100)
    assert rig.flow.check_deadlines() == []
    second = rig.flow.publish(Start(n=2))
    assert rig.view(envelope.correlation_id).status is COMPLETED
    assert rig.view(second.correlation_id).status is COMPLETED


def test_a_join_of_a_running_flow_times_out_only_for_its_own_correlation() -> None:
    rig = rig_of(Pair, join_timeout=5.0)
    rig.flow.publish(L(n=1), correlation_id="late")
    rig.clock.advance(3)
    rig.flow.publish(L(n=2), correlation_id="fresh")
    rig.clock.advance(3)
    assert rig.flow.check_deadlines() == ["late"]
    assert rig.view("late").status is COMPENSATED
    assert rig.view("fresh").status is RUNNING
    rig.flow.publish(R(n=3), correlation_id="fresh")
    rig.flow.publish(R(n=4), correlation_id="late")  # too late: never reopens it
    assert [c.message for c in rig[Pair].named("pair")] == [(L(n=2), R(n=3), "fresh")]
    assert rig.view("fresh").status is COMPLETED


def test_completed_joins_leave_no_deadline_behind() -> None:
    """A join's deadline is dropped once it completes, so deadlines never pile up."""
    from coordination.choreography import Choreography, EventBus
    from coordination.testing import VirtualClock
    from examples.ecommerce import (
        InMemoryLogistics,
        InMemoryNotifications,
        InMemoryPayments,
        InMemorySellers,
        OrderPlaced,
    )

    clock = VirtualClock()
    flow = Choreography(
        EventBus(clock=clock),
        InMemoryPayments({"c1": 10**9}),
        InMemoryLogistics(f"c{i}" for i in range(50)),
        InMemorySellers({"sku-1": 10**6}),
        InMemoryNotifications(),
        clock=clock,
    )
    for index in range(50):
        flow.publish(
            OrderPlaced(
                order_id=f"o{index}",
                customer_id="c1",
                email="a@b.c",
                sku="sku-1",
                quantity=1,
                amount_cents=10,
                address="x",
            )
        )
    assert flow._deadlines == {}  # three joins per order, all completed
