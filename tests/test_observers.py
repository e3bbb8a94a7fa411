"""Observers see each journal entry as it is recorded, the same way under both runners."""

from __future__ import annotations

import logging

import pytest

from coordination import EntryKind, JournalEntry, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import UsageError
from coordination.testing import Fault, FaultKind, FaultPlan
from examples.ecommerce import PlaceOrder
from tests.testing.test_fakes import ORDER, shop


def refused() -> list[object]:
    return shop(FaultPlan.of(Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL)))


def test_an_orchestrators_observer_sees_the_journal_as_it_is_stored() -> None:
    seen: list[JournalEntry] = []
    orders = PlaceOrder(*refused(), observers=[seen.append])
    run = orders.run(ORDER, workflow_id="w")
    assert run.status is WorkflowStatus.COMPENSATED
    assert seen == list(run.journal)[1:]  # all but workflow_started, in store order
    assert seen[-1].kind is EntryKind.WORKFLOW_FINISHED


def test_a_choreographys_observer_sees_the_journal_as_it_is_stored() -> None:
    seen: list[JournalEntry] = []
    flow = Choreography(EventBus(), *refused(), flow=PlaceOrder, observers=[seen.append])
    flow.publish(ORDER, correlation_id="w")
    view = flow.monitor.get("w")
    assert view.status is WorkflowStatus.COMPENSATED
    assert seen == list(view.journal)[1:]


def test_an_observer_that_raises_is_logged_and_never_stops_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(entry: JournalEntry) -> None:
        raise RuntimeError("dashboard down")

    with caplog.at_level(logging.WARNING, logger="coordination"):
        run = PlaceOrder(*shop(), observers=[broken]).run(ORDER)
    assert run.status is WorkflowStatus.COMPLETED
    assert "dashboard down" in caplog.text


@pytest.mark.parametrize("observers", [print, ["not callable"], "abc", 3])
def test_observers_must_be_a_list_of_callables(observers: object) -> None:
    with pytest.raises(UsageError, match="observers"):
        PlaceOrder(*shop(), observers=observers)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="observers"):
        Choreography(EventBus(), *shop(), observers=observers)  # type: ignore[arg-type]
