"""submit(), serve() and result(): runs enqueued by one orchestrator, run by a worker of
another (as another process would), waited for by the first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import WorkflowStatus
from coordination.errors import UsageError, WorkflowBusy, WorkflowConflict, WorkflowNotFound
from coordination.stores import MemoryStore
from examples.ecommerce import PlaceOrder
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)
from tests.postgres import Backend, DedicatedServer


def shop(effects: Effects, store: Any) -> PlaceOrder:
    return PlaceOrder(
        DurablePayments(effects),
        DurableSellers(effects),
        DurableLogistics(effects),
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

    def __init__(self, orders: PlaceOrder, **options: Any) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=orders.serve, kwargs={"stop": self.stop, **options}, daemon=True
        )
        self.thread.start()

    def close(self) -> float:
        """Stop it; how long it took to return."""
        began = time.monotonic()
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "serve() did not return when stopped"
        return time.monotonic() - began


def test_a_submitted_run_taken_by_a_worker_is_no_takeover(
    durable_backend: Backend, effects: Effects
) -> None:
    """Nobody drove a submitted run before the worker: its journal shows no takeover and
    no recovery is counted (the claim is its first; two bookkeeping commits saved)."""
    client = shop(effects, durable_backend.open())
    client.submit(order_for(0), workflow_id="order-0")
    serving = Serving(shop(effects, durable_backend.open()), poll=0.05)
    try:
        run = client.result("order-0", timeout=30)
    finally:
        serving.close()
    assert run.status is WorkflowStatus.COMPLETED
    assert [e for e in run.journal if e.kind.value == "recovered"] == []
    record = client.store.get_run("order-0")
    assert record is not None
    assert (record.recoveries, record.token) == (0, 2)  # one claim: the worker's


def test_submitted_runs_are_run_by_a_worker_and_waited_for(
    durable_backend: Backend, effects: Effects
) -> None:
    client = shop(effects, durable_backend.open())
    ids = [client.submit(order_for(i), workflow_id=f"order-{i}") for i in range(10)]
    assert ids == [f"order-{i}" for i in range(10)]
    assert client.get("order-0").status is WorkflowStatus.RUNNING  # nobody runs it yet
    serving = Serving(shop(effects, durable_backend.open()), workers=2, poll=0.05)
    try:
        runs = [client.result(workflow_id, timeout=30) for workflow_id in ids]
    finally:
        serving.close()
    expected = [
        WorkflowStatus.COMPENSATED if i % 5 == 4 else WorkflowStatus.COMPLETED for i in range(10)
    ]
    assert [run.status for run in runs] == expected
    (executions,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = effects.connection.execute(
        "SELECT COUNT(DISTINCT key) FROM executions"
    ).fetchone()
    assert executions == distinct  # each step ran once, on one of the two workers


def test_an_idle_worker_wakes_on_a_notification_not_its_poll(
    postgres: Any, effects: Effects
) -> None:
    schema = postgres.new_schema()
    client = shop(effects, postgres.store(schema))
    serving = Serving(shop(effects, postgres.store(schema)), poll=60.0)
    try:
        time.sleep(0.3)  # the worker found nothing and sleeps for up to a minute
        began = time.monotonic()
        run = client.result(client.submit(order_for(0), workflow_id="w-1"), timeout=20)
        waited = time.monotonic() - began
    finally:
        stopped = serving.close()
    assert run.status is WorkflowStatus.COMPLETED
    assert waited < 10, waited
    assert stopped < 5, stopped  # a stop is seen within a fifth of a second, not a poll


def test_workers_go_on_after_the_server_restarts(
    dedicated_postgres: DedicatedServer, effects: Effects
) -> None:
    from coordination.stores import PostgresStore

    stores = [PostgresStore(dedicated_postgres.url, connect_timeout=1, lease=2.0) for _ in range(2)]
    try:
        client = shop(effects, stores[0])
        serving = Serving(shop(effects, stores[1]), poll=0.1)
        try:
            first = client.submit(order_for(0), workflow_id="before")
            assert client.result(first, timeout=20).status is WorkflowStatus.COMPLETED
            dedicated_postgres.down()
            time.sleep(0.5)  # the worker's calls fail meanwhile; it waits and goes on
            dedicated_postgres.up()
            second = client.submit(order_for(1), workflow_id="after")
            assert client.result(second, timeout=30).status is WorkflowStatus.COMPLETED
        finally:
            serving.close()
    finally:
        for store in stores:
            store.close()


def test_submit_is_idempotent_by_workflow_id(effects: Effects) -> None:
    client = shop(effects, MemoryStore())
    assert client.submit(order_for(0), workflow_id="w") == "w"
    assert client.submit(order_for(0), workflow_id="w") == "w"
    assert len(client.runs()) == 1
    with pytest.raises(WorkflowConflict):
        client.submit(order_for(1), workflow_id="w")
    generated = client.submit(order_for(2))
    assert generated != "w"
    with pytest.raises(UsageError):
        client.submit(order_for(3), workflow_id="")


def test_result_waits_at_most_its_timeout(effects: Effects) -> None:
    client = shop(effects, MemoryStore())
    client.submit(order_for(0), workflow_id="w")
    began = time.monotonic()
    with pytest.raises(WorkflowBusy, match=r"still RUNNING after 0\.1"):
        client.result("w", timeout=0.1)
    assert time.monotonic() - began < 2
    with pytest.raises(WorkflowNotFound):
        client.result("nope", timeout=0.1)
    with pytest.raises(UsageError):
        client.result("w", timeout=-1)
    done = client.run(order_for(1), workflow_id="x")
    assert client.result("x").status is done.status  # finished: at once, no timeout needed


@pytest.mark.parametrize("options", [{"workers": 0}, {"workers": True}, {"poll": 0}, {"poll": "1"}])
def test_serve_checks_its_arguments(effects: Effects, options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        shop(effects, MemoryStore()).serve(**options)


def test_without_a_queue_serve_polls_recover(effects: Effects) -> None:
    """A store without the queue capability (memory): serve() polls recover()."""
    store = MemoryStore()
    client = shop(effects, store)
    serving = Serving(shop(effects, store), poll=0.02)
    try:
        run = client.result(client.submit(order_for(0), workflow_id="w"), timeout=20)
    finally:
        serving.close()
    assert run.status is WorkflowStatus.COMPLETED


def test_a_worker_leaves_a_run_this_process_still_holds(tmp_path: Path, effects: Effects) -> None:
    """A claimed run that this process still runs something of (an abandoned attempt, a
    takeover on another thread) is given back, not driven a second time beside it."""
    from coordination.engine import ACTIVE
    from coordination.stores import SQLiteStore

    with SQLiteStore(tmp_path / "s.db") as store:
        orders = shop(effects, store)
        workflow_id = orders.submit(order_for(0), workflow_id="held")
        ACTIVE.enter(workflow_id)
        try:
            assert orders._serve_next(store, 5, None) is False
            record = store.get_run(workflow_id)
            assert record is not None
            assert (record.owner, record.status) == (None, WorkflowStatus.RUNNING)
        finally:
            ACTIVE.leave(workflow_id)
        assert orders._serve_next(store, 5, None) is True
        assert orders.get(workflow_id).status is WorkflowStatus.COMPLETED
    assert executions_of(effects) == 4


def executions_of(effects: Effects) -> int:
    (count,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    return int(count)
