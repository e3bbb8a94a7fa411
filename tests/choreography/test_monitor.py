"""ProcessMonitor: each correlation's instance, as the engine knows it (never parsed text)."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import Context, EntryKind, NonRetryable, WorkflowStatus
from coordination.choreography import HandlerFailed, ProcessMonitor
from coordination.errors import WorkflowNotFound
from examples.ecommerce import ConfirmationSent, PaymentCaptured
from tests.choreography.helpers import Lagging, Pair, Shop, an_order, rig_of
from tests.orchestration.flows import Alpha, Beta, Boom, Delta, Gamma, Hook, L, Refused, Start

COMPLETED = WorkflowStatus.COMPLETED
COMPENSATED = WorkflowStatus.COMPENSATED
COMPENSATION_FAILED = WorkflowStatus.COMPENSATION_FAILED
RUNNING = WorkflowStatus.RUNNING


def test_a_running_flow_waiting_on_a_join() -> None:
    rig = rig_of(Pair, Lagging)
    seen: list[Any] = []
    rig[Lagging].script("lag", Hook(lambda message, ctx: seen.append(rig.monitor.get("c"))))
    rig.flow.publish(L(n=1), correlation_id="c")
    [view] = seen
    assert view.correlation_id == "c"
    assert view.status is RUNNING
    assert not view.status.finished
    assert view.start == "L"
    assert view.done == ()
    assert view.pending == ("Lagging.lag", "Pair.pair")
    assert view.waiting == {"Pair.pair": ("R",)}
    assert view.failed == ()
    assert view.compensated == ()
    assert view.failure is None
    assert view.started_at == rig.clock.now()
    assert "c: RUNNING (started by L)" in view.render()


def test_a_completed_flow() -> None:
    shop = Shop()
    envelope = shop.flow.publish(an_order())
    view = shop.monitor.get(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.start == "OrderPlaced"
    assert view.done == (
        "Payments.charge",
        "Sellers.reserve_stock",
        "Logistics.assign_courier",
        "Notifications.send_confirmation",
    )
    assert view.pending == view.failed == view.compensated == ()
    assert view.failure is None
    kinds = [entry.kind for entry in view.journal]
    assert kinds[0] is EntryKind.WORKFLOW_STARTED
    assert kinds[-1] is EntryKind.WORKFLOW_FINISHED
    for entry in view.journal.of_kind(EntryKind.STARTED, EntryKind.COMPLETED):
        assert f"{entry.participant}.{entry.action}" in str(entry)
        assert entry.correlation_id == envelope.correlation_id
    started = view.journal.of_kind(EntryKind.STARTED)
    assert str(started[0]).split() == ["started", "Payments.charge", "attempt", "1"]
    assert view.journal.names(EntryKind.COMPLETED) == list(view.done)
    lines = view.render().splitlines()
    assert lines[0] == f"{envelope.correlation_id}: COMPLETED (started by OrderPlaced)"
    assert len(lines) == 5 + len(view.journal)


def test_a_compensated_flow() -> None:
    shop = Shop()
    envelope = shop.flow.publish(an_order(quantity=5))
    view = shop.monitor.get(envelope.correlation_id)
    assert view.status is COMPENSATED
    assert view.done == ("Payments.charge", "Logistics.assign_courier")  # the sibling ran on
    assert view.pending == ()
    assert view.failed == ("Sellers.reserve_stock",)
    assert view.compensated == ("Logistics.assign_courier", "Payments.charge")
    assert view.failure == (
        "step Sellers.reserve_stock failed after 1 attempt(s): OutOfStock: book: 3 left, 5 ordered"
    )
    [refund] = [e for e in view.journal.of_kind(EntryKind.COMPENSATED) if e.action == "refund"]
    assert str(refund).startswith("compensated")
    assert "Payments.refund (undoes Payments.charge)" in str(refund)
    assert "failure:     step Sellers.reserve_stock failed" in view.render()


def test_a_compensation_failed_flow() -> None:
    rig = rig_of(Alpha, Beta, Gamma, Delta)
    rig[Delta].fail("fourth", Refused("no"))
    rig[Beta].fail("undo_second", *(Boom("ledger down") for _ in range(5)))
    envelope = rig.flow.publish(Start(n=1))
    view = rig.monitor.get(envelope.correlation_id)
    assert view.status is COMPENSATION_FAILED
    assert view.done == ("Alpha.first", "Beta.second", "Gamma.third")
    assert view.failed == ("Delta.fourth",)
    assert view.compensated == ("Gamma.third",)
    assert view.pending == ()
    assert view.failure is not None
    assert "still applied: Beta.second, Alpha.first" in view.failure
    failed_undos = view.journal.of_kind(EntryKind.COMPENSATION_FAILED)
    assert {str(e).split()[1] for e in failed_undos} == {"Beta.undo_second"}
    assert all("(undoes Beta.second)" in str(e) for e in failed_undos)


def test_a_flow_being_compensated() -> None:
    rig = rig_of(Alpha, Beta)
    seen: list[Any] = []

    def look(message: Any, ctx: Context | None) -> None:
        assert ctx is not None
        seen.append(rig.monitor.get(ctx.correlation_id))

    rig[Beta].fail("second", Refused("no"))
    rig[Alpha].script("undo_first", Hook(look))
    envelope = rig.flow.publish(Start(n=1))
    [during] = seen
    assert during.status is WorkflowStatus.COMPENSATING
    assert during.failed == ("Beta.second",)
    assert during.compensated == ()
    assert during.failure == "step Beta.second failed after 1 attempt(s): Refused: no"
    after = rig.monitor.get(envelope.correlation_id)
    assert after.status is COMPENSATED
    assert after.compensated == ("Alpha.first",)


def test_all_filters_by_status() -> None:
    shop = Shop()
    good = shop.flow.publish(an_order("o-1")).correlation_id
    bad = shop.flow.publish(an_order("o-2", quantity=5)).correlation_id
    also_good = shop.flow.publish(an_order("o-3")).correlation_id
    assert [v.correlation_id for v in shop.monitor.all()] == [good, bad, also_good]
    assert [v.correlation_id for v in shop.monitor.all(status=COMPLETED)] == [good, also_good]
    assert [v.correlation_id for v in shop.monitor.all(status=COMPENSATED)] == [bad]
    assert shop.monitor.all(status=RUNNING) == []


def test_running_flows_come_first_in_all() -> None:
    rig = rig_of(Pair, Lagging)
    rig.flow.publish(L(n=1), correlation_id="done")
    seen: list[Any] = []
    rig[Lagging].script("lag", Hook(lambda message, ctx: seen.append(rig.monitor.all())))
    rig.flow.publish(L(n=2), correlation_id="running")
    [views] = seen
    assert [(v.correlation_id, v.status) for v in views] == [
        ("running", RUNNING),
        ("done", COMPLETED),
    ]


def _interrupted(rig: Any, correlation_id: str) -> None:
    """Start an instance whose process "dies" half way: it stays RUNNING in the store."""
    rig[Lagging].script("lag", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        rig.flow.publish(L(n=len(correlation_id)), correlation_id=correlation_id)


def test_stalled_flows_by_the_clock() -> None:
    rig = rig_of(Pair, Lagging)
    rig.flow.publish(L(n=1), correlation_id="done")
    _interrupted(rig, "stuck")
    assert rig.monitor.stalled(after=30) == []
    rig.clock.advance(60)
    _interrupted(rig, "recent")
    stalled = rig.monitor.stalled(after=30)
    assert [v.correlation_id for v in stalled] == ["stuck"]
    assert stalled[0].updated_at == rig.clock.now() - 60
    assert rig.monitor.stalled(after=120) == []
    rig.clock.advance(60)
    assert [v.correlation_id for v in rig.monitor.stalled(after=30)] == ["stuck", "recent"]


def test_get_of_an_unknown_flow_raises_workflow_not_found() -> None:
    rig = rig_of(Alpha)
    with pytest.raises(WorkflowNotFound, match="'nope'") as raised:
        rig.monitor.get("nope")
    assert raised.value.workflow_id == "nope"


def test_the_monitor_belongs_to_its_choreography() -> None:
    rig = rig_of(Alpha)
    assert isinstance(rig.flow.monitor, ProcessMonitor)
    other = rig_of(Alpha)
    envelope = rig.flow.publish(Start(n=1))
    with pytest.raises(WorkflowNotFound):
        other.monitor.get(envelope.correlation_id)


def test_a_free_form_subscriber_failing_never_fails_the_flow() -> None:
    shop = Shop()
    failures = shop.record(HandlerFailed)

    def audit(message: PaymentCaptured) -> None:
        raise RuntimeError("audit log full")

    def mailer(message: ConfirmationSent) -> None:
        raise NonRetryable("no smtp")

    shop.bus.subscribe(PaymentCaptured, audit)
    shop.bus.subscribe(ConfirmationSent, mailer)
    envelope = shop.flow.publish(an_order())
    view = shop.monitor.get(envelope.correlation_id)
    assert view.status is COMPLETED
    assert view.failed == ()
    assert view.failure is None
    assert len(failures.envelopes) == 2
    assert {e.correlation_id for e in failures.envelopes} == {envelope.correlation_id}
    journaled = [e for e in view.journal if e.participant == "subscriber"]
    assert [(e.kind, e.error) for e in journaled] == [
        (EntryKind.FAILED, "RuntimeError: audit log full"),
        (EntryKind.FAILED, "NonRetryable: no smtp"),
    ]
    assert journaled[0].action.endswith("audit")
    assert "a subscriber failed on" in (journaled[0].detail or "")
    assert "audit" in str(journaled[0])
    assert shop.notifications.outbox  # the flow went on past the failing audit


def test_a_view_is_a_snapshot() -> None:
    rig = rig_of(Pair, Lagging)
    seen: list[Any] = []
    rig[Lagging].script("lag", Hook(lambda message, ctx: seen.append(rig.monitor.get("c"))))
    rig.flow.publish(L(n=1), correlation_id="c")
    [before] = seen
    assert before.status is RUNNING
    assert rig.monitor.get("c").status is COMPLETED
    assert len(rig.monitor.get("c").journal) > len(before.journal)


def test_instances_finished_by_an_earlier_process_are_shown(durable_backend: Any) -> None:
    """On a SQLite file and on a PostgreSQL schema alike."""
    from coordination.choreography import Choreography, EventBus
    from tests.choreography.helpers import fakes

    with durable_backend.open() as store:
        Choreography(EventBus(), *fakes(Pair, Lagging), store=store).publish(
            L(n=1), correlation_id="earlier"
        )
    with durable_backend.open() as store:
        later = Choreography(EventBus(), *fakes(Pair, Lagging), store=store)
        view = later.monitor.get("earlier")
        assert view.status is COMPLETED
        assert view.done == ("Lagging.lag", "Pair.pair")
        assert [v.correlation_id for v in later.monitor.all()] == ["earlier"]
