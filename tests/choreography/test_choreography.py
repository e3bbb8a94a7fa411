"""Choreography: the same participants react on a bus; retries, wiring, async, timeouts.

Every test runs on a `VirtualClock`, so backoff waits are recorded instead of waited for;
only the timeout tests use real time (50 ms attempts held on a `threading.Event`).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

import pytest

from coordination import (
    Command,
    Context,
    EntryKind,
    Envelope,
    Event,
    NonRetryable,
    Participant,
    WorkflowStatus,
    action,
)
from coordination.choreography import ActionFailed, Choreography, EventBus
from coordination.errors import DefinitionError, UsageError, WorkflowNotFound
from coordination.testing import (
    Fault,
    FaultKind,
    FaultPlan,
    VirtualClock,
    assert_equivalent,
    run_both,
)
from examples.ecommerce import (
    ConfirmationSent,
    NoCourierAvailable,
    OrderPlaced,
    PaymentCaptured,
    PlaceOrder,
)
from tests.choreography.helpers import (
    Hold,
    Rig,
    Shop,
    Slow,
    Timed,
    an_order,
    fakes,
    kinds_of,
    rig_of,
    shop_services,
    started_names,
)
from tests.orchestration.flows import (
    A,
    Alpha,
    AsyncAlpha,
    AsyncLeft,
    AsyncRight,
    B,
    Beta,
    Boom,
    FakeAlpha,
    Gamma,
    Hook,
    Join,
    L,
    Left,
    Plain,
    R,
    Refused,
    Right,
    Start,
    Tail,
)

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
COMPENSATION_FAILED = WorkflowStatus.COMPENSATION_FAILED

SHOP_ACTIONS = (
    "Payments.charge",
    "Sellers.reserve_stock",
    "Logistics.assign_courier",
    "Notifications.send_confirmation",
)

# -- the e-commerce participants, unchanged ------------------------------------------------------


def test_a_good_order_completes_with_every_effect() -> None:
    shop = Shop()
    confirmations = shop.record(ConfirmationSent)
    envelope = shop.flow.publish(an_order())
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.done == SHOP_ACTIONS
    assert view.pending == ()
    assert view.failed == ()
    assert view.compensated == ()
    assert view.failure is None
    assert shop.snapshot() == {
        "payments": {"balances": {"alice": 7_500}, "charged": ["o-1"]},
        "sellers": {"stock": {"book": 2}, "reserved": ["o-1"]},
        "logistics": {"free": ["courier-2"], "assigned": ["o-1"]},
        "notifications": {"sent": [("o-1", "TRK-o-1-0001")]},
    }
    assert confirmations.messages() == [
        ConfirmationSent(order_id="o-1", email="alice@example.com", tracking_number="TRK-o-1-0001")
    ]
    assert confirmations.envelopes[0].correlation_id == envelope.correlation_id


def test_the_same_participants_run_under_the_orchestrator_too() -> None:
    services = shop_services()
    run = PlaceOrder(*services).run(an_order(), workflow_id="o-1")
    shop = Shop()
    shop.flow.publish(an_order(), correlation_id="o-1")
    assert run.status is COMPLETED
    assert [s.snapshot() for s in services] == list(shop.snapshot().values())


def test_every_envelope_of_the_cascade_carries_the_correlation_and_its_cause() -> None:
    shop = Shop()
    seen = shop.record()
    envelope = shop.flow.publish(an_order())
    assert seen.types() == [
        "OrderPlaced",
        "PaymentCaptured",
        "StockReserved",
        "CourierAssigned",
        "ConfirmationSent",
    ]
    assert {e.correlation_id for e in seen.envelopes} == {envelope.correlation_id}
    ids = [e.message_id for e in seen.envelopes]
    assert len(set(ids)) == len(ids)
    placed, captured, reserved, assigned, confirmed = seen.envelopes
    assert placed.message_id == envelope.message_id
    assert placed.causation_id is None
    assert captured.causation_id == placed.message_id
    assert reserved.causation_id == captured.message_id
    assert assigned.causation_id == captured.message_id
    # A join's output is caused by the input that completed it.
    assert confirmed.causation_id == assigned.message_id
    # The journal's `published` entries are the envelopes the actions published, in order
    # (the start message opens the journal as `workflow_started`).
    journal = shop.view(envelope.correlation_id).journal
    assert journal[0].kind is EntryKind.WORKFLOW_STARTED
    assert journal[0].detail == "OrderPlaced"
    published = journal.of_kind(EntryKind.PUBLISHED)
    assert [e.detail for e in published] == ids[1:]
    assert [e.causation_id for e in published] == [e.causation_id for e in seen.envelopes[1:]]
    assert [e.participant for e in published] == [
        "Payments",
        "Sellers",
        "Logistics",
        "Notifications",
    ]


def test_a_given_correlation_id_is_used_throughout() -> None:
    shop = Shop()
    seen = shop.record()
    envelope = shop.flow.publish(an_order(), correlation_id="order-42")
    assert envelope.correlation_id == "order-42"
    assert {e.correlation_id for e in seen.envelopes} == {"order-42"}
    assert shop.view("order-42").status is COMPLETED


def test_idempotency_keys_name_correlation_and_action_and_survive_retries() -> None:
    shop = Shop()
    plan = FaultPlan.of(
        Fault("Payments.charge", 1),
        Fault("Logistics.assign_courier", 1, FaultKind.TIMEOUT, after_effect=True),
        Fault("Logistics.assign_courier", 2),
    )
    plan.install(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    envelope = shop.flow.publish(an_order())
    correlation = envelope.correlation_id
    assert shop.view(correlation).status is COMPLETED
    assert [(c.target, c.attempt) for c in plan.calls] == [
        ("Payments.charge", 1),
        ("Payments.charge", 2),
        ("Sellers.reserve_stock", 1),
        ("Logistics.assign_courier", 1),
        ("Logistics.assign_courier", 2),
        ("Logistics.assign_courier", 3),
        ("Notifications.send_confirmation", 1),
    ]
    for call in plan.calls:
        assert call.key == f"{correlation}:{call.target}"
    # The first attempt landed before its (injected) timeout: the retries found it by key.
    assert shop.logistics.snapshot() == {"free": ["courier-2"], "assigned": ["o-1"]}


def test_two_orders_do_not_share_keys_or_state() -> None:
    shop = Shop()
    first = shop.flow.publish(an_order("o-1"))
    second = shop.flow.publish(an_order("o-2"))
    assert first.correlation_id != second.correlation_id
    assert shop.view(first.correlation_id).status is COMPLETED
    assert shop.view(second.correlation_id).status is COMPLETED
    assert shop.payments.snapshot() == {"balances": {"alice": 5_000}, "charged": ["o-1", "o-2"]}
    assert shop.logistics.snapshot() == {"free": [], "assigned": ["o-1", "o-2"]}


# -- retries ----------------------------------------------------------------------------------


def test_a_transient_failure_is_retried_after_its_backoff_on_the_clock() -> None:
    shop = Shop()
    shop.payments.fail("charge", TimeoutError("gateway timeout"))
    envelope = shop.flow.publish(an_order())
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert kinds_of(view, "Payments.charge") == [
        "started",
        "failed",
        "retried",
        "started",
        "completed",
    ]
    failed = view.journal.of_kind(EntryKind.FAILED)
    assert [(e.attempt, e.error) for e in failed] == [(1, "TimeoutError: gateway timeout")]
    retried = view.journal.of_kind(EntryKind.RETRIED)
    assert [(e.attempt, e.detail) for e in retried] == [(2, "after 0.050s")]
    # Retry(attempts=3, backoff=0.05), jitter 0.5 -> exactly the backoff, on the clock.
    assert shop.clock.sleeps == [pytest.approx(0.05)]
    assert shop.clock.elapsed == pytest.approx(0.05)
    assert shop.payments.snapshot()["charged"] == ["o-1"]


def test_a_retry_waits_as_a_delayed_redelivery_while_other_work_goes_on() -> None:
    rig = rig_of(Alpha, Hold, Plain, Tail)
    rig[Hold].fail("hold", Boom("busy"))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    # Hold.hold failed first; its sibling Plain ran (and settled) before its retry fell due,
    # and Tail (of the next generation) waited until both had settled. The journal is in
    # store order: each action's attempts are recorded when it settles.
    assert started_names(view) == [
        "Alpha.first",
        "Plain.plain",
        "Hold.hold",
        "Hold.hold",
        "Tail.tail",
    ]
    assert rig.clock.sleeps == [pytest.approx(1.0)]
    assert [c.attempt for c in rig[Hold].named("hold")] == [1, 2]


def test_backoff_grows_between_attempts() -> None:
    shop = Shop()
    shop.logistics.fail("assign_courier", NoCourierAvailable("busy"), NoCourierAvailable("busy"))
    envelope = shop.flow.publish(an_order())
    assert shop.view(envelope.correlation_id).status is COMPLETED
    assert shop.clock.sleeps == [pytest.approx(0.05), pytest.approx(0.1)]


def test_a_non_retryable_failure_is_not_retried() -> None:
    shop = Shop()
    envelope = shop.flow.publish(an_order(quantity=5))  # 3 in stock: OutOfStock
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert kinds_of(view, "Sellers.reserve_stock") == ["started", "failed"]
    assert view.journal.of_kind(EntryKind.RETRIED) == view.journal[:0]
    assert shop.clock.sleeps == []


@pytest.mark.parametrize("error", [NonRetryable("no"), TypeError("bad"), Refused("no")])
def test_never_retried_errors_fail_the_action_at_once(error: Exception) -> None:
    rig = rig_of(Alpha, Beta)
    rig[Alpha].fail("first", error)
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert rig[Alpha].count("first") == 1
    assert view.failed == ("Alpha.first",)
    assert rig[Beta].count("second") == 0


def test_exhausted_retries_publish_action_failed_and_the_flow_compensates() -> None:
    shop = Shop()
    before = shop.snapshot()
    failures = shop.record(ActionFailed)
    shop.logistics.fail("assign_courier", *(NoCourierAvailable("all busy") for _ in range(3)))
    envelope = shop.flow.publish(an_order())
    correlation = envelope.correlation_id
    assert failures.messages() == [
        ActionFailed(
            correlation_id=correlation,
            action="Logistics.assign_courier",
            attempts=3,
            error="NoCourierAvailable: all busy",
        )
    ]
    assert failures.envelopes[0].correlation_id == correlation
    view = shop.view(correlation)
    assert view.status is COMPENSATED
    assert view.failed == ("Logistics.assign_courier",)
    assert view.compensated == ("Sellers.reserve_stock", "Payments.charge")
    assert view.failure == (
        "step Logistics.assign_courier failed after 3 attempt(s): NoCourierAvailable: all busy"
    )
    assert kinds_of(view, "Logistics.assign_courier") == [
        "started",
        "failed",
        "retried",
        "started",
        "failed",
        "retried",
        "started",
        "failed",
    ]
    assert shop.clock.sleeps == [pytest.approx(0.05), pytest.approx(0.1)]
    assert shop.snapshot() == before
    assert shop.notifications.outbox == {}


# -- wiring errors -------------------------------------------------------------------------------


class Ship(Command):
    n: int


class Shipper(Participant):
    @action
    @abstractmethod
    def order_ship(self, a: A) -> Ship: ...


class Carrier(Participant):
    @action
    @abstractmethod
    def ship(self, command: Ship) -> B: ...


class OtherCarrier(Participant):
    @action
    @abstractmethod
    def ship_too(self, command: Ship) -> L: ...


class MyShipper(Shipper):
    def order_ship(self, a: A) -> Ship:
        return Ship(n=a.n)


class MyCarrier(Carrier):
    def ship(self, command: Ship) -> B:
        return B(n=command.n)


class MyOtherCarrier(OtherCarrier):
    def ship_too(self, command: Ship) -> L:
        return L(n=command.n)


def test_a_command_with_no_handler_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"Ship is a Command.*handled by: none"):
        Choreography(EventBus(), FakeAlpha(), MyShipper())


def test_a_command_with_two_handlers_is_a_definition_error() -> None:
    with pytest.raises(
        DefinitionError, match=r"Ship is a Command.*Carrier\.ship, OtherCarrier\.ship_too"
    ):
        Choreography(EventBus(), FakeAlpha(), MyShipper(), MyCarrier(), MyOtherCarrier())


def test_a_command_with_one_handler_runs() -> None:
    rig = Rig(FakeAlpha(), MyShipper(), MyCarrier())
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.done == ("Alpha.first", "Shipper.order_ship", "Carrier.ship")


def test_two_implementations_of_one_interface_are_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"Alpha\.first is implemented by both"):
        Choreography(EventBus(), FakeAlpha(), FakeAlpha())


def test_something_that_is_not_a_participant_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not a Participant"):
        Choreography(EventBus(), FakeAlpha(), object())  # type: ignore[arg-type]


def test_publishing_a_message_some_action_produces_is_a_usage_error() -> None:
    rig = rig_of(Alpha, Beta)
    with pytest.raises(UsageError, match=r"A does not start a flow here.*Start"):
        rig.flow.publish(A(n=1))
    assert rig.monitor.all() == []
    assert rig[Beta].count("second") == 0


def test_publishing_something_that_is_not_a_message_is_a_usage_error() -> None:
    rig = rig_of(Alpha)
    with pytest.raises(UsageError, match="takes a message"):
        rig.flow.publish("Start(n=1)")  # type: ignore[arg-type]


def test_the_first_argument_must_be_an_event_bus() -> None:
    with pytest.raises(UsageError, match="takes an EventBus first"):
        Choreography(FakeAlpha())  # type: ignore[arg-type]


def test_a_choreography_needs_participants() -> None:
    with pytest.raises(UsageError, match="at least one participant"):
        Choreography(EventBus())


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_join_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(UsageError, match="join_timeout"):
        Choreography(EventBus(), FakeAlpha(), join_timeout=timeout)


def test_the_clock_defaults_to_the_bus_clock() -> None:
    clock = VirtualClock()
    flow = Choreography(EventBus(clock=clock), FakeAlpha())
    assert flow.clock is clock
    assert "1 actions" in repr(flow)


# -- async participants --------------------------------------------------------------------------


def _run(rig: Rig, message: Any, mode: str) -> Envelope[Any]:
    if mode == "sync":
        return rig.flow.publish(message)

    async def main() -> Envelope[Any]:
        return await rig.flow.publish_async(message)

    return asyncio.run(main())


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_async_participants_run(mode: str) -> None:
    rig = rig_of(AsyncAlpha, AsyncLeft, AsyncRight)
    seen = rig.record()
    envelope = _run(rig, Start(n=1), mode)
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.done == ("AsyncAlpha.afirst", "AsyncLeft.aleft", "AsyncRight.aright")
    assert seen.messages() == [Start(n=1), A(n=2), L(n=12), R(n=22)]
    assert [c.key for c in rig[AsyncLeft].named("aleft")] == [
        f"{envelope.correlation_id}:AsyncLeft.aleft"
    ]


@pytest.mark.parametrize("mode", MODES)
def test_async_participants_are_retried_and_compensated(mode: str) -> None:
    rig = rig_of(AsyncAlpha, AsyncLeft, AsyncRight)
    rig[AsyncAlpha].fail("afirst", Boom("once"))
    rig[AsyncRight].fail("aright", Refused("no"))
    undone = rig.record(Event)
    envelope = _run(rig, Start(n=1), mode)
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert [c.attempt for c in rig[AsyncAlpha].named("afirst")] == [1, 2]
    assert rig.clock.sleeps[0] == pytest.approx(1.0)
    assert view.compensated == ("AsyncLeft.aleft", "AsyncAlpha.afirst")
    assert [c.message for c in rig[AsyncAlpha].named("aundo_first")] == [A(n=2)]
    assert "AUndone" in undone.types()
    assert "LUndone" in undone.types()


def test_sync_publish_inside_a_running_loop_asks_for_publish_async() -> None:
    rig = rig_of(AsyncAlpha)

    async def main() -> None:
        rig.flow.publish(Start(n=1), correlation_id="c")

    with pytest.raises(UsageError, match="publish_async"):
        asyncio.run(main())
    assert rig[AsyncAlpha].count("afirst") == 0
    # Nothing was started: the correlation is not left behind as a running process.
    with pytest.raises(WorkflowNotFound):
        rig.monitor.get("c")


def test_mixed_sync_and_async_participants_under_publish_async() -> None:
    rig = Rig(*fakes(AsyncAlpha), *fakes(Left, Right, Join))
    envelope = _run(rig, Start(n=1), "async")
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.done[-1] == "Join.join"
    assert rig[Join].named("join")[0].message == (L(n=12), R(n=22))


# -- timeouts ------------------------------------------------------------------------------------


@pytest.fixture
def slow() -> Iterator[Slow]:
    holder = Slow(A(n=100))
    yield holder
    holder.finish()  # never leave a thread blocked behind a test


def late_entries(rig: Rig, correlation_id: str) -> list[Any]:
    return list(rig.view(correlation_id).journal.of_kind(EntryKind.LATE_RESULT))


def test_a_sync_attempt_past_its_timeout_is_retried_and_the_flow_completes(slow: Slow) -> None:
    rig = rig_of(Timed, Beta)
    rig[Timed].script("timed", Hook(slow.hook))
    envelope = rig.flow.publish(Start(n=1))
    correlation = envelope.correlation_id
    view = rig.view(correlation)
    assert view.status is COMPLETED
    failed = view.journal.of_kind(EntryKind.FAILED)
    assert [(e.name, e.attempt) for e in failed] == [("Timed.timed", 1)]
    assert (failed[0].error or "").startswith("AttemptTimeout")
    assert [c.message for c in rig[Beta].named("second")] == [A(n=2)]  # attempt 2's output
    assert slow.threads[0].daemon
    slow.finish()
    entries = late_entries(rig, correlation)
    assert [(e.name, e.attempt) for e in entries] == [("Timed.timed", 1)]
    assert "left alone" in (entries[0].detail or "")
    assert rig[Timed].count("untimed") == 0
    assert rig.view(correlation).status is COMPLETED


def test_a_late_result_landing_before_its_step_succeeded_is_left_alone(slow: Slow) -> None:
    # Attempt 2 lets the abandoned attempt 1 return first: the step has not settled yet, and
    # then succeeds under the same key. The late result is the same effect: never undo it.
    rig = rig_of(Timed, Beta)
    rig[Timed].script("timed", Hook(slow.hook), slow.then())
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert rig[Timed].count("untimed") == 0
    entries = late_entries(rig, envelope.correlation_id)
    assert len(entries) == 1
    assert "left alone" in (entries[0].detail or "")


def test_late_results_of_a_step_that_failed_are_undone(slow: Slow) -> None:
    rig = rig_of(Timed, Beta)
    rig[Timed].script("timed", Hook(slow.hook), Hook(slow.hook))
    envelope = rig.flow.publish(Start(n=1))
    correlation = envelope.correlation_id
    view = rig.view(correlation)
    assert view.status is COMPENSATED
    assert view.failed == ("Timed.timed",)
    assert rig[Beta].count("second") == 0
    slow.finish()
    entries = late_entries(rig, correlation)
    assert sorted(e.attempt for e in entries) == [1, 2]
    assert all("undone (the action failed)" in (e.detail or "") for e in entries)
    assert [c.message for c in rig[Timed].named("untimed")] == [A(n=100), A(n=100)]
    view = rig.view(correlation)
    assert view.status is COMPENSATED
    assert view.compensated == ("Timed.timed", "Timed.timed")


def test_a_late_result_landing_before_its_step_failed_is_undone_once_it_failed(
    slow: Slow,
) -> None:
    rig = rig_of(Timed, Beta)
    rig[Timed].script("timed", Hook(slow.hook), slow.then(Boom("down")))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert [c.message for c in rig[Timed].named("untimed")] == [A(n=100)]
    assert len(late_entries(rig, envelope.correlation_id)) == 1


def test_a_late_result_whose_undo_fails_leaves_compensation_failed(slow: Slow) -> None:
    rig = rig_of(Timed)
    rig[Timed].script("timed", Hook(slow.hook), Hook(slow.hook))
    rig[Timed].fail("untimed", *(Boom("ledger down") for _ in range(10)))
    envelope = rig.flow.publish(Start(n=1))
    assert rig.view(envelope.correlation_id).status is COMPENSATED
    slow.finish()
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATION_FAILED
    assert "late" in (view.failure or "")
    assert rig.monitor.all(status=COMPENSATION_FAILED) == [view]


# -- finishing -----------------------------------------------------------------------------------


def test_a_flow_is_finished_only_when_every_reachable_action_ran() -> None:
    rig = rig_of(Alpha, Beta, Plain, Tail)
    seen: list[tuple[WorkflowStatus, tuple[str, ...]]] = []

    def look(message: Any, ctx: Context | None) -> None:
        assert ctx is not None
        view = rig.view(ctx.correlation_id)
        seen.append((view.status, view.pending))

    rig[Tail].script("tail", Hook(look))
    envelope = rig.flow.publish(Start(n=1))
    assert seen == [(WorkflowStatus.RUNNING, ("Tail.tail",))]
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPLETED
    assert set(view.done) == {"Alpha.first", "Beta.second", "Plain.plain", "Tail.tail"}


def test_a_choreography_left_without_a_participant_is_a_definition_error() -> None:
    """Join.join also needs R, which nobody here produces: the flow would finish half done
    (a loan flow built without its appraisal participant), so building it fails."""
    with pytest.raises(DefinitionError, match=r"Join\.join needs R.*never come"):
        rig_of(Alpha, Left, Join)


@pytest.mark.parametrize("fails", [False, True])
def test_a_finished_flow_releases_its_working_state(fails: bool) -> None:
    shop = Shop()
    envelope = shop.flow.publish(an_order(quantity=5 if fails else 1))
    assert shop.flow.instances.get(envelope.correlation_id) is None  # no live saga kept
    assert "0 running" in repr(shop.flow)
    view = shop.monitor.get(envelope.correlation_id)  # the store keeps the record
    assert view.status is (COMPENSATED if fails else COMPLETED)
    assert view.pending == ()
    assert view.waiting == {}
    assert [v.correlation_id for v in shop.flow.processes()] == [envelope.correlation_id]


def test_a_late_redelivery_never_reopens_a_finished_flow() -> None:
    shop = Shop()
    seen = shop.record()
    envelope = shop.flow.publish(an_order())
    correlation = envelope.correlation_id
    before = shop.snapshot()
    journal = shop.view(correlation).journal
    plan = FaultPlan()
    plan.install(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    for old in list(seen.envelopes):
        shop.bus.publish(old)
    shop.flow.publish(an_order(), correlation_id=correlation)
    assert plan.calls == []
    assert shop.snapshot() == before
    assert shop.view(correlation).journal == journal
    assert shop.view(correlation).status is COMPLETED


def test_a_late_redelivery_never_reopens_a_compensated_flow() -> None:
    shop = Shop()
    seen = shop.record()
    envelope = shop.flow.publish(an_order(quantity=5))
    correlation = envelope.correlation_id
    assert shop.view(correlation).status is COMPENSATED
    journal = shop.view(correlation).journal
    plan = FaultPlan()
    plan.install(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    for old in list(seen.envelopes):
        shop.bus.publish(old)
    assert plan.calls == []
    assert shop.view(correlation).journal == journal


def test_forgotten_flows_stay_closed_to_late_redeliveries() -> None:
    shop = Shop(max_finished=2)
    seen = shop.record(OrderPlaced)
    captured = shop.record(PaymentCaptured)
    ids = [shop.flow.publish(an_order(f"o-{n}")).correlation_id for n in (1, 2, 3)]
    with pytest.raises(WorkflowNotFound) as raised:
        shop.monitor.get(ids[0])
    assert raised.value.workflow_id == ids[0]
    assert [v.correlation_id for v in shop.monitor.all()] == ids[1:]
    before = shop.snapshot()
    plan = FaultPlan()
    plan.install(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    shop.bus.publish(seen.envelopes[0])  # mid-flow redeliveries start nothing
    shop.bus.publish(captured.envelopes[0])
    assert plan.calls == []
    assert shop.snapshot() == before


def test_a_second_start_of_a_running_correlation_does_not_run_it_twice() -> None:
    rig = rig_of(Alpha, Beta)
    envelope = rig.flow.publish(Start(n=1), correlation_id="c")
    again = rig.flow.publish(Start(n=1), correlation_id="c")
    assert again == envelope  # idempotent like run(): the envelope that started it
    assert rig[Alpha].count("first") == 1
    assert rig.view("c").status is COMPLETED


def test_a_redelivery_while_the_flow_runs_does_not_run_an_action_twice() -> None:
    rig = rig_of(Alpha, Beta, Gamma)

    def redeliver(message: Any, ctx: Context | None) -> None:
        assert ctx is not None
        # Queued behind this action: delivered while Gamma.third has not run yet.
        rig.bus.publish(Start(n=1), correlation_id=ctx.correlation_id)
        rig.bus.publish(A(n=2), correlation_id=ctx.correlation_id)

    rig[Beta].script("second", Hook(redeliver))
    envelope = rig.flow.publish(Start(n=1))
    assert rig.view(envelope.correlation_id).status is COMPLETED
    assert rig[Alpha].count("first") == 1
    assert rig[Beta].count("second") == 1
    assert rig[Gamma].count("third") == 1


def test_a_mid_flow_message_of_an_unknown_correlation_is_ignored() -> None:
    rig = rig_of(Alpha, Beta, Gamma)
    rig.bus.publish(A(n=1), correlation_id="never-started")
    assert rig[Beta].count("second") == 0
    assert rig.monitor.all() == []


# -- equivalence spot checks ---------------------------------------------------------------------

SPOT_CHECKS = [
    pytest.param(FaultPlan(), COMPLETED, id="no-faults"),
    pytest.param(FaultPlan.of(Fault("Payments.charge", 1)), COMPLETED, id="charge-retried"),
    pytest.param(
        FaultPlan.of(Fault("Payments.charge", 1, FaultKind.TIMEOUT, after_effect=True)),
        COMPLETED,
        id="charge-landed-then-timed-out",
    ),
    pytest.param(
        FaultPlan.of(Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL)),
        COMPENSATED,
        id="stock-refused",
    ),
    pytest.param(
        FaultPlan.of(*(Fault("Logistics.assign_courier", n) for n in (1, 2, 3))),
        COMPENSATED,
        id="courier-retries-exhausted",
    ),
    pytest.param(
        FaultPlan.of(
            Fault("Notifications.send_confirmation", 1, FaultKind.REFUSAL),
            Fault("Payments.refund", 1),
        ),
        COMPENSATED,
        id="email-refused-refund-retried",
    ),
    pytest.param(
        FaultPlan.of(
            Fault("Notifications.send_confirmation", 1, FaultKind.REFUSAL),
            *(Fault("Payments.refund", n) for n in range(1, 6)),
        ),
        COMPENSATION_FAILED,
        id="refund-fails-for-good",
    ),
]


@pytest.mark.parametrize(("plan", "status"), SPOT_CHECKS)
def test_orchestration_and_choreography_agree(plan: FaultPlan, status: WorkflowStatus) -> None:
    both = run_both(PlaceOrder, shop_services, an_order(), plan, correlation_id="order-1")
    assert_equivalent(both)
    assert both.orchestrated.status is status
    assert both.choreographed.status is status
    assert both.choreographed.correlation_id == "order-1"


def test_assert_equivalent_notices_a_difference() -> None:
    both = run_both(PlaceOrder, shop_services, an_order())
    both.choreography_participants[0].balances["alice"] = 0  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="participants differ"):
        assert_equivalent(both)
