"""submit(), serve() and result() of a choreography: instances started by one process,
delivered by the workers of another (as another process would), waited for by the first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import UsageError, WorkflowBusy, WorkflowConflict, WorkflowNotFound
from coordination.stores import MemoryStore
from examples.ecommerce import OrderPlaced, PaymentCaptured
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)
from tests.postgres import Backend


def shop(effects: Effects, store: Any, bus: EventBus | None = None) -> Choreography:
    return Choreography(
        bus or EventBus(),
        DurablePayments(effects),
        DurableLogistics(effects),
        DurableSellers(effects),
        DurableNotifications(effects),
        store=store,
    )


@pytest.fixture
def effects(tmp_path: Path) -> Iterator[Effects]:
    ledger = Effects(tmp_path / "effects.db")
    yield ledger
    ledger.connection.close()


class Serving:
    """`serve()` on a thread of its own, stopped when the test ends."""

    def __init__(self, flow: Choreography, **options: Any) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=flow.serve, kwargs={"stop": self.stop, **options}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "serve() did not return when stopped"


def executions(effects: Effects) -> tuple[int, int]:
    (count,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = effects.connection.execute(
        "SELECT COUNT(DISTINCT key) FROM executions"
    ).fetchone()
    return count, distinct


def test_submitted_instances_are_delivered_by_workers_and_waited_for(
    durable_backend: Backend, effects: Effects
) -> None:
    client = shop(effects, durable_backend.open())
    ids = [client.submit(order_for(i), correlation_id=f"order-{i}") for i in range(10)]
    assert ids == [f"order-{i}" for i in range(10)]
    assert client.monitor.get("order-0").status is WorkflowStatus.RUNNING  # nobody yet
    assert executions(effects) == (0, 0)  # submitting delivers nothing
    seen: list[str] = []
    worker_bus = EventBus()
    worker_bus.subscribe(OrderPlaced, lambda order: seen.append(order.order_id))
    serving = Serving(shop(effects, durable_backend.open(), worker_bus), workers=2, poll=0.05)
    try:
        views = [client.result(correlation_id, timeout=30) for correlation_id in ids]
    finally:
        serving.close()
    expected = [
        WorkflowStatus.COMPENSATED if i % 5 == 4 else WorkflowStatus.COMPLETED for i in range(10)
    ]
    assert [view.status for view in views] == expected
    assert len(views[0].done) == 4
    count, distinct = executions(effects)
    assert count == distinct == 8 * 4 + 2 * 4  # each action (and undo) ran once, somewhere
    # The worker delivered the start messages as publish() would: to free-form subscribers
    # of its own bus too.
    assert sorted(seen) == sorted(f"o{i}" for i in range(10))


def test_a_worker_goes_on_with_what_a_stopped_publisher_left(
    durable_backend: Backend, effects: Effects
) -> None:
    """An instance whose publisher stopped before delivering anything (on another host,
    its lease long run out) is delivered by a worker, from the event log."""
    client = shop(effects, durable_backend.open())
    client.publish(order_for(0), correlation_id="done-here")
    # A publisher whose process stopped after the first delivery: the next ones are owed.
    stopped = shop(effects, durable_backend.open())
    envelope = stopped.bus.envelope(order_for(1), correlation_id="half")
    stopped.store.start_run(
        "half", stopped.name, order_for(1), owner="gone-host:1:k1", now=0.0,
        shape=stopped.instances.bindings[OrderPlaced].plan.shape, events=(envelope,),
    )  # fmt: skip
    serving = Serving(shop(effects, durable_backend.open()), poll=0.05)
    try:
        assert client.result("half", timeout=30).status is WorkflowStatus.COMPLETED
    finally:
        serving.close()
    count, distinct = executions(effects)
    assert count == distinct == 8


def test_submit_is_idempotent_by_correlation_id(effects: Effects) -> None:
    client = shop(effects, MemoryStore())
    assert client.submit(order_for(0), correlation_id="c") == "c"
    assert client.submit(order_for(0), correlation_id="c") == "c"
    assert len(client.processes()) == 1
    with pytest.raises(WorkflowConflict):
        client.submit(order_for(1), correlation_id="c")
    assert client.submit(order_for(2)) != "c"
    with pytest.raises(UsageError, match=r"submit\(\) takes a message"):
        client.submit(object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="does not start a flow"):
        client.submit(
            PaymentCaptured(order_id="o", payment_id="p", customer_id="c", amount_cents=1)
        )


def test_result_waits_at_most_its_timeout(effects: Effects) -> None:
    client = shop(effects, MemoryStore())
    client.submit(order_for(0), correlation_id="c")
    began = time.monotonic()
    with pytest.raises(WorkflowBusy, match=r"still RUNNING after 0\.1"):
        client.result("c", timeout=0.1)
    assert time.monotonic() - began < 2
    with pytest.raises(WorkflowNotFound):
        client.result("nope", timeout=0.1)
    client.publish(order_for(1), correlation_id="d")
    assert client.result("d").status is WorkflowStatus.COMPLETED


def test_without_a_queue_serve_polls_recover(effects: Effects) -> None:
    store = MemoryStore()
    client = shop(effects, store)
    serving = Serving(shop(effects, store), poll=0.02)
    try:
        view = client.result(client.submit(order_for(0), correlation_id="c"), timeout=20)
    finally:
        serving.close()
    assert view.status is WorkflowStatus.COMPLETED


@pytest.mark.parametrize("options", [{"workers": 0}, {"poll": 0}])
def test_serve_checks_its_arguments(effects: Effects, options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        shop(effects, MemoryStore()).serve(**options)
