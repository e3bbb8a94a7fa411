"""A durable choreography: an event log before delivery, one commit per handling, recover().

Every test that needs a durable store runs on a SQLite file and on a PostgreSQL schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from coordination import WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import UsageError
from coordination.stores import MemoryStore, Store
from coordination.testing import VirtualClock
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
)
from tests.postgres import Backend


def services() -> tuple[Any, ...]:
    return (
        InMemoryPayments({"c1": 10_000}),
        InMemoryLogistics(["ann", "bob"]),
        InMemorySellers({"sku-1": 5}),
        InMemoryNotifications(),
    )


def order(order_id: str = "o1", quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c1",
        email="a@b.c",
        sku="sku-1",
        quantity=quantity,
        amount_cents=1_000,
        address="1 Road",
    )


def status_of(store: Store, correlation_id: str) -> WorkflowStatus | None:
    record = store.get_run(correlation_id)
    return None if record is None else record.status


def durable(store: Store, parts: tuple[Any, ...]) -> Choreography:
    clock = VirtualClock()
    return Choreography(EventBus(clock=clock), *parts, clock=clock, store=store)


def test_every_published_message_is_logged_and_every_handling_marked(
    durable_backend: Backend,
) -> None:
    with durable_backend.open() as store:
        flow = durable(store, services())
        envelope = flow.publish(order(), correlation_id="order-1")
        assert status_of(store, "order-1") is WorkflowStatus.COMPLETED
        logged = [type(e.message).__name__ for e in store.events_of("order-1")]
        assert logged == [
            "OrderPlaced",
            "PaymentCaptured",
            "CourierAssigned",
            "StockReserved",
            "ConfirmationSent",
        ]
        assert next(iter(store.events_of("order-1"))).message_id == envelope.message_id
        marked = {subscriber for _, subscriber in store.handled_of("order-1")}
        assert marked == {
            "Payments.charge",
            "Logistics.assign_courier",
            "Sellers.reserve_stock",
            "Notifications.send_confirmation",
        }


def test_an_interrupted_flow_is_recovered_and_each_effect_happens_once(
    durable_backend: Backend,
) -> None:
    first = services()
    first[2].fail("reserve_stock", KeyboardInterrupt())  # the process "dies" here
    with durable_backend.open() as store:
        flow = durable(store, first)
        with pytest.raises(KeyboardInterrupt):
            flow.publish(order(), correlation_id="order-1")
        assert status_of(store, "order-1") is WorkflowStatus.RUNNING

    # A new process with the same services (their state carried over, as a database's would).
    with durable_backend.open() as store:
        flow = durable(store, first)
        (view,) = flow.recover()
        assert view.correlation_id == "order-1"
        assert view.status is WorkflowStatus.COMPLETED
        assert first[0].snapshot()["charged"] == ["o1"]  # charged once, not twice
        assert first[2].snapshot()["reserved"] == ["o1"]
        assert first[3].snapshot()["sent"] == [("o1", "TRK-o1-0001")]
        assert flow.recover() == []  # nothing left to do


def test_a_compensating_flow_goes_on_undoing_after_a_crash(durable_backend: Backend) -> None:
    parts = services()
    parts[0].fail("refund", KeyboardInterrupt())  # dies while undoing the charge
    with durable_backend.open() as store:
        flow = durable(store, parts)
        with pytest.raises(KeyboardInterrupt):
            flow.publish(order(quantity=50), correlation_id="order-1")  # out of stock
        assert status_of(store, "order-1") is WorkflowStatus.COMPENSATING
    with durable_backend.open() as store:
        flow = durable(store, parts)
        (view,) = flow.recover()
        assert view.status is WorkflowStatus.COMPENSATED
        assert parts[0].snapshot() == {"balances": {"c1": 10_000}, "charged": []}
        assert parts[1].snapshot()["assigned"] == []


def test_a_finished_flow_is_never_reopened_by_a_later_process(durable_backend: Backend) -> None:
    parts = services()
    with durable_backend.open() as store:
        durable(store, parts).publish(order(), correlation_id="order-1")
    with durable_backend.open() as store:
        flow = durable(store, parts)
        flow.publish(order(), correlation_id="order-1")  # the same order again
        assert parts[0].snapshot()["charged"] == ["o1"]
        assert len(parts[0].payments) == 1


def test_output_ids_are_derived_so_work_done_again_logs_nothing_twice(
    durable_backend: Backend,
) -> None:
    parts = services()
    parts[3].fail("send_confirmation", KeyboardInterrupt())
    with durable_backend.open() as store, pytest.raises(KeyboardInterrupt):
        durable(store, parts).publish(order(), correlation_id="order-1")
    with durable_backend.open() as store:
        durable(store, parts).recover()
    with durable_backend.open() as store:
        count = len(store.events_of("order-1"))  # every row logged for the instance
    assert count == 5  # OrderPlaced and one of each output, even though some ran again


def test_a_store_needs_an_event_log() -> None:
    class RunsOnly:  # a Store without the EventLog half
        lease = 30.0

    with pytest.raises(UsageError, match="event log"):
        Choreography(EventBus(), *services(), store=RunsOnly())  # type: ignore[arg-type]


def test_an_in_memory_choreography_keeps_the_same_records() -> None:
    """MemoryStore implements both protocols: the same monitor and idempotency in memory."""
    store = MemoryStore()
    parts = services()
    flow = Choreography(EventBus(), *parts, store=store)
    flow.publish(order(), correlation_id="order-1")
    assert status_of(store, "order-1") is WorkflowStatus.COMPLETED  # type: ignore[arg-type]
    assert len(store.events_of("order-1")) == 5
    flow.publish(order(), correlation_id="order-1")  # idempotent: runs nothing
    assert parts[0].snapshot()["charged"] == ["o1"]
    assert flow.recover() == []


def test_an_action_waiting_for_its_retry_at_the_crash_runs_again_on_recovery(
    durable_backend: Backend,
) -> None:
    parts = services()
    # Attempt 1 fails (a retry is scheduled); meanwhile the seller's action runs and commits
    # the flow state; then the process "dies" during the retry.
    parts[1].fail("assign_courier", RuntimeError("busy"), KeyboardInterrupt())
    with durable_backend.open() as store:
        with pytest.raises(KeyboardInterrupt):
            durable(store, parts).publish(order(), correlation_id="order-1")
        assert status_of(store, "order-1") is WorkflowStatus.RUNNING
    with durable_backend.open() as store:
        (view,) = durable(store, parts).recover()
        assert view.status is WorkflowStatus.COMPLETED, view.render()
        assert parts[1].snapshot()["assigned"] == ["o1"]


def test_publishing_an_interrupted_flow_again_resumes_it_like_run(durable_backend: Backend) -> None:
    parts = services()
    parts[2].fail("reserve_stock", KeyboardInterrupt())
    with durable_backend.open() as store, pytest.raises(KeyboardInterrupt):
        durable(store, parts).publish(order(), correlation_id="order-1")
    with durable_backend.open() as store:
        flow = durable(store, parts)
        envelope = flow.publish(order(), correlation_id="order-1")  # the same start again
        assert envelope.message_id == store.events_of("order-1")[0].message_id
        assert status_of(store, "order-1") is WorkflowStatus.COMPLETED
        assert parts[0].snapshot()["charged"] == ["o1"]  # nothing was done twice
        assert flow.recover() == []


def test_publishing_another_start_under_a_used_correlation_is_a_conflict(
    durable_backend: Backend,
) -> None:
    from coordination.errors import WorkflowConflict

    with durable_backend.open() as store:
        flow = durable(store, services())
        flow.publish(order(), correlation_id="order-1")
        with pytest.raises(WorkflowConflict, match="order-1"):
            flow.publish(order("o2"), correlation_id="order-1")


def test_publishing_into_a_flow_a_live_process_runs_is_busy(durable_backend: Backend) -> None:
    import os
    import socket

    from coordination.engine._ownership import _kernel_start
    from coordination.errors import WorkflowBusy

    parts = services()
    parts[2].fail("reserve_stock", KeyboardInterrupt())
    with durable_backend.open() as store, pytest.raises(KeyboardInterrupt):
        durable(store, parts).publish(order(), correlation_id="order-1")
    parent = os.getppid()
    live = f"{socket.gethostname()}:{parent}:{_kernel_start(parent)}"
    with durable_backend.open() as store:
        assert store.claim_run("order-1", live, now=1e12) is not None
        with pytest.raises(WorkflowBusy, match="order-1"):
            durable(store, parts).publish(order(), correlation_id="order-1")
