"""The bundled e-commerce flow, run by the orchestrator against its in-memory services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordination import EntryKind, WorkflowStatus
from examples.ecommerce import (
    ConfirmationSent,
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    NoCourierAvailable,
    OrderPlaced,
    PlaceOrder,
)
from tests.orchestration.flows import FakeClock

ORDER = OrderPlaced(
    order_id="o-1",
    customer_id="ada",
    email="ada@example.com",
    sku="book",
    quantity=2,
    amount_cents=3_000,
    address="1 Analytical Way",
)


@dataclass
class Shop:
    payments: InMemoryPayments
    sellers: InMemorySellers
    logistics: InMemoryLogistics
    notifications: InMemoryNotifications
    orders: PlaceOrder
    clock: FakeClock

    def snapshot(self) -> dict[str, Any]:
        return {
            "payments": self.payments.snapshot(),
            "sellers": self.sellers.snapshot(),
            "logistics": self.logistics.snapshot(),
            "notifications": self.notifications.snapshot(),
        }


def shop(balance: int = 10_000, stock: int = 5) -> Shop:
    payments = InMemoryPayments({"ada": balance})
    sellers = InMemorySellers({"book": stock})
    logistics = InMemoryLogistics(["courier-1", "courier-2"])
    notifications = InMemoryNotifications()
    clock = FakeClock()
    orders = PlaceOrder(
        notifications, logistics, sellers, payments, clock=clock, random=lambda: 0.5
    )
    return Shop(payments, sellers, logistics, notifications, orders, clock)


def test_a_good_order_completes_with_all_effects() -> None:
    s = shop()
    run = s.orders.run(ORDER, workflow_id="order-42")
    assert run.status is WorkflowStatus.COMPLETED
    assert isinstance(run.output, ConfirmationSent)
    tracking = run.output.tracking_number
    assert run.output == ConfirmationSent(
        order_id="o-1", email="ada@example.com", tracking_number=tracking
    )
    assert s.snapshot() == {
        "payments": {"balances": {"ada": 7_000}, "charged": ["o-1"]},
        "sellers": {"stock": {"book": 3}, "reserved": ["o-1"]},
        "logistics": {"free": ["courier-2"], "assigned": ["o-1"]},
        "notifications": {"sent": [("o-1", tracking)]},
    }
    assert run.journal.names(EntryKind.COMPLETED) == [
        "Payments.charge",
        "Logistics.assign_courier",
        "Sellers.reserve_stock",
        "Notifications.send_confirmation",
    ]
    assert run.flow == "place-order"


def test_out_of_stock_refunds_the_payment_and_releases_the_courier() -> None:
    s = shop(stock=1)
    before = s.snapshot()
    run = s.orders.run(ORDER)
    assert run.status is WorkflowStatus.COMPENSATED
    assert s.snapshot() == before
    assert s.payments.refunds  # refunded, not just never charged
    assert s.logistics.released
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "Logistics.release_courier",
        "Payments.refund",
    ]
    assert run.error is not None
    assert "Sellers.reserve_stock" in str(run.error)
    assert s.notifications.outbox == {}


def test_a_declined_card_has_nothing_to_undo() -> None:
    s = shop(balance=100)
    before = s.snapshot()
    run = s.orders.run(ORDER)
    assert run.status is WorkflowStatus.COMPENSATED
    assert s.snapshot() == before
    assert (
        run.journal.of_kind(EntryKind.COMPENSATED, EntryKind.COMPENSATION_FAILED)
        == (run.journal[:0])
    )
    assert run.journal.names(EntryKind.FAILED) == ["Payments.charge"]  # NonRetryable: once
    assert s.logistics.assignments == {}


def test_a_busy_courier_pool_is_retried_then_the_order_goes_through() -> None:
    s = shop()
    s.logistics.fail("assign_courier", NoCourierAvailable("busy"), NoCourierAvailable("busy"))
    run = s.orders.run(ORDER)
    assert run.status is WorkflowStatus.COMPLETED
    assert s.clock.sleeps == [0.05, 0.1]
    assert len(s.logistics.assignments) == 1


def test_the_same_order_twice_charges_once() -> None:
    s = shop()
    s.orders.run(ORDER, workflow_id="order-42")
    s.orders.run(ORDER, workflow_id="order-42")
    assert s.payments.balances == {"ada": 7_000}
    assert len(s.notifications.outbox) == 1
