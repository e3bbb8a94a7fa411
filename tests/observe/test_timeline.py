"""Timelines of one run: text, a rich waterfall and a sequence diagram, alike for both runners."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from coordination import WorkflowStatus
from coordination.errors import UsageError
from coordination.observe import RunView, timeline
from coordination.stores import SQLiteStore
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    PlaceOrder,
)
from examples.ecommerce.demo import GOOD_ORDER
from tests.observe.golden import assert_golden
from tests.observe.renderers import mermaid_errors
from tests.observe.scenarios import PLANS, choreographed, orchestrated


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_an_orchestrated_and_a_choreographed_order_have_the_same_timeline(plan: str) -> None:
    run, view = orchestrated(plan), choreographed(plan)
    assert isinstance(run, RunView)
    assert isinstance(view, RunView)
    ours, theirs = timeline(run), timeline(view)
    assert ours.status is theirs.status
    assert ours.structure() == theirs.structure()
    assert ours.mermaid() == theirs.mermaid()


def test_a_refused_reservation_shows_the_charge_the_failure_and_both_undos() -> None:
    line = timeline(orchestrated("refused"))
    assert [(row.name, row.generation, row.undoes, row.outcome) for row in line.rows] == [
        ("Payments.charge", 1, None, "completed"),
        ("Logistics.assign_courier", 2, None, "completed"),
        ("Sellers.reserve_stock", 2, None, "failed"),
        ("Logistics.release_courier", None, "Logistics.assign_courier", "compensated"),
        ("Payments.refund", None, "Payments.charge", "compensated"),
    ]
    courier = line.rows[1]
    assert [a.outcome for a in courier.attempts] == ["failed", "completed"]
    assert courier.attempts[0].retried_after is not None
    assert courier.attempts[0].error == (
        "InjectedFault: injected fault: Logistics.assign_courier attempt 1"
    )
    text = str(line)
    assert text.splitlines()[0].startswith("order-1: COMPENSATED (")
    assert "  Payments.refund (undo of Payments.charge)" in text
    assert "attempt 1 failed" in text
    assert "error: InjectedRefusal: injected refusal: Sellers.reserve_stock attempt 1" in text


def test_a_late_result_is_shown_on_the_attempt_it_belongs_to() -> None:
    courier = timeline(orchestrated("late")).rows[1]
    assert courier.name == "Logistics.assign_courier"
    assert [(a.number, a.late is not None) for a in courier.attempts] == [(1, True), (2, False)]
    assert "late: timed-out attempt 1 returned late: left alone" in str(
        timeline(choreographed("late"))
    )


def test_the_rich_waterfall_has_a_bar_per_attempt() -> None:
    console = Console(record=True, width=140, color_system=None)
    console.print(timeline(choreographed("refused")))
    text = console.export_text()
    assert "order-1: COMPENSATED" in text
    assert text.count("█") >= 6  # charge, 2 courier attempts, reservation, 2 undos
    for name in ("Payments.charge", "Sellers.reserve_stock", "Payments.refund", "InjectedRefusal"):
        assert name in text


def test_the_sequence_diagram_of_a_refused_order_is_pinned() -> None:
    assert_golden("timeline-refused.mmd", timeline(orchestrated("refused")).mermaid())


def test_every_plans_sequence_diagram_parses_with_mermaid() -> None:
    diagrams = {plan: timeline(orchestrated(plan)).mermaid() for plan in PLANS}
    assert mermaid_errors(diagrams) == {}


def test_a_timeline_needs_a_run() -> None:
    with pytest.raises(UsageError, match="WorkflowRun or a ProcessView"):
        timeline("order-1")  # type: ignore[arg-type]


def test_a_run_stopped_half_way_shows_what_settled_and_what_is_pending(tmp_path: Path) -> None:
    from coordination.observe import graph

    payments, sellers, logistics, notifications = (
        InMemoryPayments({"alice": 10_000}),
        InMemorySellers({"book": 3}),
        InMemoryLogistics(["courier-1"]),
        InMemoryNotifications(),
    )
    sellers.fail("reserve_stock", KeyboardInterrupt())  # the process stops mid-attempt
    store = SQLiteStore(tmp_path / "orders.db")
    orders = PlaceOrder(payments, sellers, logistics, notifications, store=store)
    with pytest.raises(KeyboardInterrupt):
        orders.run(GOOD_ORDER, workflow_id="order-1")
    run = orders.get("order-1")
    line = timeline(run)
    assert line.status is WorkflowStatus.RUNNING
    # An attempt's start is stored with its end: the interrupted one left no row yet.
    assert "Sellers.reserve_stock" not in {row.name for row in line.rows}
    assert {row.name: row.outcome for row in line.rows}["Payments.charge"] == "completed"
    assert mermaid_errors({"stopped": line.mermaid()}) == {}
    states = graph(PlaceOrder, run=run).states
    store.close()
    assert states["Payments.charge"] == "done"
    assert states["Sellers.reserve_stock"] == "pending"
    assert states["Notifications.send_confirmation"] == "pending"
