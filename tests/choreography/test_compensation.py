"""The saga of a choreography: what completed is undone newest first, and forward work stops."""

from __future__ import annotations

import pytest

from coordination import EntryKind, NonRetryable, WorkflowStatus
from coordination.choreography import ActionFailed
from coordination.testing import FaultPlan
from examples.ecommerce import (
    CourierReleased,
    NoCourierAvailable,
    PaymentRefunded,
    StockReleased,
)
from tests.choreography.helpers import (
    Hold,
    Shop,
    an_order,
    kinds_of,
    rig_of,
    started_names,
)
from tests.orchestration.flows import (
    A,
    Alpha,
    AUndone,
    B,
    Beta,
    Boom,
    BUndone,
    Delta,
    Gamma,
    Refused,
    Start,
)

COMPENSATED = WorkflowStatus.COMPENSATED
COMPENSATION_FAILED = WorkflowStatus.COMPENSATION_FAILED


def test_completed_actions_are_undone_newest_first() -> None:
    shop = Shop()
    before = shop.snapshot()
    shop.notifications.fail("send_confirmation", NonRetryable("mailbox closed"))
    envelope = shop.flow.publish(an_order())
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert view.failed == ("Notifications.send_confirmation",)
    assert view.compensated == (
        "Logistics.assign_courier",
        "Sellers.reserve_stock",
        "Payments.charge",
    )
    compensations = view.journal.of_kind(EntryKind.COMPENSATED)
    assert [str(e).split()[1:4] for e in compensations] == [
        ["Logistics.release_courier", "(undoes", "Logistics.assign_courier)"],
        ["Sellers.release_stock", "(undoes", "Sellers.reserve_stock)"],
        ["Payments.refund", "(undoes", "Payments.charge)"],
    ]
    assert shop.snapshot() == before


def test_compensation_outputs_are_published_like_events() -> None:
    shop = Shop()
    refunds = shop.record(PaymentRefunded)
    released = shop.record(StockReleased)
    couriers = shop.record(CourierReleased)
    shop.notifications.fail("send_confirmation", NonRetryable("mailbox closed"))
    envelope = shop.flow.publish(an_order())
    assert refunds.messages() == [
        PaymentRefunded(order_id="o-1", payment_id="pay-1", amount_cents=2_500)
    ]
    assert refunds.envelopes[0].correlation_id == envelope.correlation_id
    assert released.messages() == [StockReleased(order_id="o-1", reservation_id="res-1")]
    assert [m.courier_id for m in couriers.messages()] == ["courier-1"]
    published = shop.view(envelope.correlation_id).journal.of_kind(EntryKind.PUBLISHED)
    assert [e.action for e in published][-3:] == [
        "CourierReleased",
        "StockReleased",
        "PaymentRefunded",
    ]


def test_a_compensation_gets_the_action_key_plus_undo() -> None:
    shop = Shop()
    plan = FaultPlan()
    plan.install(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    envelope = shop.flow.publish(an_order(quantity=5))
    refund = [c for c in plan.calls if c.target == "Payments.refund"]
    assert [c.key for c in refund] == [f"{envelope.correlation_id}:Payments.charge:undo"]


def test_a_failed_action_lets_its_siblings_run_to_their_end_then_undoes_them() -> None:
    # Sellers react to PaymentCaptured before Logistics: reserve_stock fails (OutOfStock);
    # assign_courier, its sibling in the same generation, still runs to its end (the one
    # rule, as under run()), then everything is undone, newest generation first.
    shop = Shop()
    envelope = shop.flow.publish(an_order(quantity=5))
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert "Logistics.assign_courier" in started_names(view)
    assert "Notifications.send_confirmation" not in started_names(view)
    assert shop.logistics.snapshot()["assigned"] == []  # assigned, then released
    assert shop.notifications.outbox == {}
    assert view.compensated == ("Logistics.assign_courier", "Payments.charge")


def test_a_retry_falling_due_after_a_sibling_failed_still_runs_to_its_end() -> None:
    shop = Shop(order=("payments", "logistics", "sellers", "notifications"))
    shop.logistics.fail("assign_courier", NoCourierAvailable("busy"))
    envelope = shop.flow.publish(an_order(quantity=5))
    view = shop.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    # assign_courier failed once and was due again after 0.05 s; by then its sibling had
    # failed: the retry still runs (every action of a generation runs to its end), then undo.
    assert kinds_of(view, "Logistics.assign_courier") == [
        "started",
        "failed",
        "retried",
        "started",
        "completed",
    ]
    assert shop.logistics.snapshot()["assigned"] == []
    assert shop.clock.sleeps[0] == pytest.approx(0.05)
    assert shop.payments.snapshot()["charged"] == []


def test_an_input_typed_compensation_runs_for_a_failed_action() -> None:
    rig = rig_of(Alpha, Beta, Gamma)
    rig[Gamma].fail("third", Refused("no"))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert view.compensated == ("Gamma.third", "Beta.second", "Alpha.first")
    assert [c.message for c in rig[Gamma].named("cancel_third")] == [B(n=3)]
    assert [c.key for c in rig[Gamma].named("cancel_third")] == [
        f"{envelope.correlation_id}:Gamma.third:undo"
    ]
    assert [c.message for c in rig[Beta].named("undo_second")] == [B(n=3)]
    assert [c.message for c in rig[Alpha].named("undo_first")] == [A(n=2)]


def test_an_input_typed_compensation_runs_for_a_completed_action() -> None:
    rig = rig_of(Alpha, Beta, Gamma, Delta)
    rig[Delta].fail("fourth", Refused("no"))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert view.failed == ("Delta.fourth",)
    assert view.compensated == ("Gamma.third", "Beta.second", "Alpha.first")
    assert [c.message for c in rig[Gamma].named("cancel_third")] == [B(n=3)]


def test_an_action_waiting_for_its_retry_when_a_sibling_fails_runs_on_then_is_undone() -> None:
    # Hold.hold's first attempt failed (and may have landed); it waits for its retry when
    # Beta.second fails the flow: the retry runs, and its input-typed undo follows.
    rig = rig_of(Alpha, Hold, Beta)
    rig[Hold].fail("hold", Boom("busy"))
    rig[Beta].fail("second", Refused("no"))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert rig[Hold].count("hold") == 2
    assert [c.message for c in rig[Hold].named("unhold")] == [A(n=2)]
    assert view.compensated == ("Hold.hold", "Alpha.first")


def test_a_compensation_is_retried() -> None:
    rig = rig_of(Alpha, Beta)
    rig[Beta].fail("second", Refused("no"))
    rig[Alpha].fail("undo_first", Boom("ledger busy"))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert [c.attempt for c in rig[Alpha].named("undo_first")] == [1, 2]
    assert rig.clock.sleeps == [pytest.approx(0.1)]  # Retry(attempts=5, backoff=0.1)
    assert kinds_of(view, "Alpha.undo_first") == [
        "started",
        "compensation_failed",
        "retried",
        "started",
        "compensated",
    ]


def test_a_compensation_that_keeps_failing_leaves_compensation_failed() -> None:
    rig = rig_of(Alpha, Beta, Gamma, Delta)
    undone = rig.record(AUndone)
    rig[Delta].fail("fourth", Refused("no"))
    rig[Beta].fail("undo_second", *(Boom("ledger down") for _ in range(5)))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.view(envelope.correlation_id)
    assert view.status is COMPENSATION_FAILED
    assert view.compensated == ("Gamma.third",)
    assert rig[Beta].count("undo_second") == 5
    assert rig[Alpha].count("undo_first") == 0  # older actions are left as they are
    assert undone.envelopes == []
    assert view.failure == (
        "compensation Beta.undo_second of Beta.second failed after 5 attempt(s): Boom: ledger "
        "down; still applied: Beta.second, Alpha.first"
    )
    assert rig.clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert len(view.journal.of_kind(EntryKind.COMPENSATION_FAILED)) == 5


def test_compensation_runs_once_per_flow() -> None:
    rig = rig_of(Alpha, Beta)
    failures = rig.record(ActionFailed)
    rig[Beta].fail("second", Refused("no"))
    envelope = rig.flow.publish(Start(n=1))
    # Redeliver the failure and the trigger: nothing is undone twice.
    for old in list(failures.envelopes):
        rig.bus.publish(old)
    rig.bus.publish(A(n=2), correlation_id=envelope.correlation_id)
    assert rig[Alpha].count("undo_first") == 1
    assert rig[Beta].count("second") == 1


def test_compensation_outputs_carry_the_correlation() -> None:
    rig = rig_of(Alpha, Beta)
    undone = rig.record(AUndone)
    also = rig.record(BUndone)
    rig[Beta].fail("second", Refused("no"))
    envelope = rig.flow.publish(Start(n=1), correlation_id="c-1")
    assert envelope.correlation_id == "c-1"
    assert [(e.message, e.correlation_id) for e in undone.envelopes] == [(AUndone(n=2), "c-1")]
    assert also.envelopes == []  # Beta.second never completed: nothing of it to undo


def test_what_the_undos_publish_is_caused_by_the_failure_that_started_them() -> None:
    from coordination.choreography import ActionFailed
    from examples.ecommerce import CourierReleased, PaymentRefunded
    from tests.choreography.helpers import Shop, an_order

    shop = Shop()
    recorder = shop.record()
    envelope = shop.flow.publish(an_order(quantity=99))  # more than the seller has
    assert shop.view(envelope.correlation_id).status.name == "COMPENSATED"
    (failure,) = recorder.of(ActionFailed)
    undone = [*recorder.of(CourierReleased), *recorder.of(PaymentRefunded)]
    assert undone
    assert all(e.causation_id == failure.message_id for e in undone)
    assert all(e.correlation_id == envelope.correlation_id for e in undone)
