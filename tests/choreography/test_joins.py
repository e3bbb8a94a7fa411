"""Joins: an action with several inputs runs once, when all came for the same correlation.

Under the one rule a join's inputs are all produced by the time its generation opens; it
runs once they were delivered. What arrives early is held; a message someone else
publishes into the instance is not an input; a join whose produced inputs are never
delivered (a lost delivery) fails the instance at its deadline.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

import pytest

from coordination import Context, EntryKind, WorkflowStatus
from coordination.choreography import ActionFailed
from coordination.testing import FaultPlan
from tests.choreography.helpers import Lagging, Pair, Rig, Shop, an_order, in_thread, rig_of
from tests.orchestration.flows import Alpha, Boom, Hook, J, Join, L, Left, R, Right, Start

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
RUNNING = WorkflowStatus.RUNNING


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


def test_a_join_holds_what_came_early_and_says_what_it_waits_for() -> None:
    # Pair.pair takes the start message L (delivered at once) and R, which Lagging.lag
    # produces after a retry: meanwhile the monitor shows the join waiting for R.
    rig = rig_of(Pair, Lagging)
    seen: list[Any] = []

    def look(message: Any, ctx: Context | None) -> None:
        assert ctx is not None
        seen.append(rig.view(ctx.correlation_id))

    rig[Lagging].script("lag", Boom("slow"), Hook(look))
    rig.flow.publish(L(n=1), correlation_id="c")
    [during] = seen
    assert during.status is RUNNING
    assert during.waiting == {"Pair.pair": ("R",)}
    assert during.pending == ("Lagging.lag", "Pair.pair")
    assert "waiting:     Pair.pair for R" in during.render()
    assert [c.message for c in rig[Pair].named("pair")] == [(L(n=1), R(n=21), "c")]
    after = rig.view("c")
    assert after.status is COMPLETED
    assert after.waiting == {}


def test_what_the_join_and_its_producer_published_is_in_the_journal() -> None:
    rig = rig_of(Pair, Lagging)
    rig.flow.publish(L(n=1), correlation_id="c")
    published = rig.view("c").journal.of_kind(EntryKind.PUBLISHED)
    assert [(e.participant, e.action) for e in published] == [("Lagging", "R"), ("Pair", "J")]


def test_inputs_of_different_correlations_never_mix() -> None:
    rig = rig_of(Pair, Lagging)
    rig.flow.publish(L(n=1), correlation_id="c1")
    rig.flow.publish(L(n=4), correlation_id="c2")
    assert [c.message for c in rig[Pair].named("pair")] == [
        (L(n=1), R(n=21), "c1"),
        (L(n=4), R(n=24), "c2"),
    ]
    assert rig.view("c1").status is COMPLETED
    assert rig.view("c2").status is COMPLETED


def test_a_message_someone_else_publishes_into_the_instance_is_no_input() -> None:
    rig = rig_of(Pair, Lagging)

    def meddle(message: Any, ctx: Context | None) -> None:
        assert ctx is not None  # a free-form publisher sends an L and an R into "c"
        rig.bus.publish(L(n=99), correlation_id=ctx.correlation_id)
        rig.bus.publish(R(n=98), correlation_id=ctx.correlation_id)

    rig[Lagging].script("lag", Hook(meddle))
    rig.flow.publish(L(n=1), correlation_id="c")
    assert [c.message for c in rig[Pair].named("pair")] == [(L(n=1), R(n=21), "c")]
    assert rig[Lagging].count("lag") == 1


def test_joins_are_guarded_when_instances_run_on_two_threads() -> None:
    rig = rig_of(Pair, Lagging)
    barrier = threading.Barrier(2, timeout=5)

    def publish_all(offset: int) -> None:
        for n in range(100):
            barrier.wait()
            rig.flow.publish(L(n=n + offset), correlation_id=f"c{n + offset}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings per run
    try:
        left, left_errors = in_thread(lambda: publish_all(0))
        right, right_errors = in_thread(lambda: publish_all(1000))
        left.join(10)
        right.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert not left.is_alive()
    assert not right.is_alive()
    assert left_errors == right_errors == []
    runs = Counter(c.message[2] for c in rig[Pair].named("pair"))
    assert len(runs) == 200
    assert set(runs.values()) == {1}
    for call in rig[Pair].named("pair"):
        left_input, right_input, correlation = call.message
        assert correlation == f"c{left_input.n}"
        assert right_input == R(n=left_input.n + 20)
    assert len(rig.monitor.all(status=COMPLETED)) == 200


def _lose_deliveries_of(rig: Rig, message_type: type[Any], action: str) -> None:
    """Unsubscribe `action`'s handler of `message_type`: its deliveries are lost."""
    for handler in rig.bus.handlers_for(message_type):
        if getattr(handler, "__qualname__", "") == f"Choreography[{action}]":
            rig.bus.unsubscribe(message_type, handler)
            return
    raise AssertionError(f"no handler of {action} for {message_type.__name__}")


def test_a_join_whose_produced_input_is_never_delivered_fails_at_its_deadline() -> None:
    rig = rig_of(Pair, Lagging, join_timeout=10.0)
    failures = rig.record(ActionFailed)
    _lose_deliveries_of(rig, R, "Pair.pair")
    rig.flow.publish(L(n=1), correlation_id="c")
    view = rig.view("c")
    assert view.status is RUNNING
    assert view.waiting == {"Pair.pair": ("R",)}
    assert rig.flow.check_deadlines() == []  # not due yet
    rig.clock.advance(10.5)
    assert rig.monitor.stalled(after=10.0) == [rig.view("c")]
    assert rig.flow.check_deadlines() == ["c"]
    assert rig.flow.check_deadlines() == []
    [failure] = failures.messages()
    assert failure.action == "Pair.pair"
    assert failure.attempts == 0
    assert failure.error == "JoinTimeout: Pair.pair waited 10s for R of correlation c"
    view = rig.view("c")
    assert view.status is COMPENSATED
    assert view.failed == ("Pair.pair",)
    assert view.compensated == ("Lagging.lag",)
    assert [c.message for c in rig[Lagging].named("unlag")] == [R(n=21)]
    assert rig[Pair].count("pair") == 0


def test_a_join_deadline_concerns_only_its_own_correlation() -> None:
    rig = rig_of(Pair, Lagging, join_timeout=5.0)
    _lose_deliveries_of(rig, R, "Pair.pair")
    rig.flow.publish(L(n=1), correlation_id="late")
    rig.clock.advance(3)
    rig.flow.publish(L(n=2), correlation_id="fresh")
    rig.clock.advance(3)
    assert rig.flow.check_deadlines() == ["late"]
    assert rig.view("late").status is COMPENSATED
    assert rig.view("fresh").status is RUNNING


def test_completed_joins_leave_nothing_behind() -> None:
    rig = rig_of(Alpha, Left, Right, Join, join_timeout=10.0)
    envelope = rig.flow.publish(Start(n=1))
    rig.clock.advance(100)
    assert rig.flow.check_deadlines() == []
    second = rig.flow.publish(Start(n=2))
    assert rig.view(envelope.correlation_id).status is COMPLETED
    assert rig.view(second.correlation_id).status is COMPLETED
    assert len(rig.flow.instances) == 0  # no live saga, no deadline kept


@pytest.mark.parametrize("count", [50])
def test_many_completed_orders_leave_no_live_instance(count: int) -> None:
    shop = Shop()
    for index in range(count):
        shop.flow.publish(an_order(f"o{index}", amount_cents=10), correlation_id=f"o{index}")
    assert len(shop.flow.instances) == 0
