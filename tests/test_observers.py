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


class _Interrupt:
    """Wraps one participant method so that its first call interrupts the process."""

    def __init__(self, method: object) -> None:
        self.method = method
        self.armed = True

    def __call__(self, *args: object, **kwargs: object) -> object:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return self.method(*args, **kwargs)  # type: ignore[operator]


@pytest.mark.parametrize("runner", ["orchestration", "choreography"])
def test_observers_see_a_takeover_as_it_is_recorded(runner: str, tmp_path: object) -> None:
    from coordination.stores import SQLiteStore

    seen: list[JournalEntry] = []
    parts = shop(FaultPlan.of())
    parts[1].reserve_stock = _Interrupt(parts[1].reserve_stock)  # type: ignore[attr-defined]
    with SQLiteStore(f"{tmp_path}/o.db") as store:
        if runner == "orchestration":
            orders = PlaceOrder(*parts, store=store, observers=[seen.append])
            with pytest.raises(KeyboardInterrupt):
                orders.run(ORDER, workflow_id="w")
            journal = next(run.journal for run in orders.recover())
        else:
            flow = Choreography(
                EventBus(), *parts, flow=PlaceOrder, store=store, observers=[seen.append]
            )
            with pytest.raises(KeyboardInterrupt):
                flow.publish(ORDER, correlation_id="w")
            journal = next(view.journal for view in flow.recover())
    recovered = [entry for entry in journal if entry.kind is EntryKind.RECOVERED]
    assert len(recovered) == 1
    assert [entry for entry in seen if entry.kind is EntryKind.RECOVERED] == recovered
