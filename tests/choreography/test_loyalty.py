"""The loyalty programme joins the order choreography as a free-form subscriber.

It awards points when an order is confirmed, takes them back when its payment is refunded,
and its failures never fail an order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from coordination import EntryKind, Message, WorkflowStatus
from coordination.choreography import Choreography, EventBus, HandlerFailed
from coordination.testing import VirtualClock
from examples.ecommerce import (
    ConfirmationSent,
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    LoyaltyProgram,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    PointsMove,
)


@dataclass
class Shop:
    payments: InMemoryPayments
    sellers: InMemorySellers
    logistics: InMemoryLogistics
    notifications: InMemoryNotifications
    bus: EventBus
    flow: Choreography


def make_shop(loyalty: LoyaltyProgram | None = None, *, stock: int = 3) -> Shop:
    clock = VirtualClock()
    bus = EventBus(clock=clock)
    payments = InMemoryPayments({"alice": 100_000, "bob": 100_000})
    sellers = InMemorySellers({"book": stock})
    logistics = InMemoryLogistics(["courier-1", "courier-2"])
    notifications = InMemoryNotifications()
    flow = Choreography(bus, payments, logistics, sellers, notifications, random=lambda: 0.5)
    if loyalty is not None:
        loyalty.subscribe(bus)
    return Shop(payments, sellers, logistics, notifications, bus, flow)


def order(order_id: str, *, customer: str = "alice", quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        email=f"{customer}@example.com",
        sku="book",
        quantity=quantity,
        amount_cents=2_500 * quantity,
        address="1 High Street",
    )


def test_a_confirmed_order_earns_points() -> None:
    loyalty = LoyaltyProgram()
    shop = make_shop(loyalty)

    shop.flow.publish(order("o-1"), correlation_id="order-1")

    assert shop.flow.monitor.get("order-1").status is WorkflowStatus.COMPLETED
    assert loyalty.points == {"alice": 25}  # 2500 cents, one point per 100
    assert loyalty.snapshot() == {"points": {"alice": 25}, "awarded": ["o-1"]}
    assert loyalty.ledger == [PointsMove("o-1", "alice", 25, "order confirmed")]


def test_an_order_whose_payment_is_refunded_ends_with_no_points() -> None:
    loyalty = LoyaltyProgram()
    shop = make_shop(loyalty, stock=3)
    refunds: list[PaymentRefunded] = []
    shop.bus.subscribe(PaymentRefunded, refunds.append)

    shop.flow.publish(order("o-1"), correlation_id="order-1")
    shop.flow.publish(order("o-2", customer="bob", quantity=5), correlation_id="order-2")

    view = shop.flow.monitor.get("order-2")
    assert view.status is WorkflowStatus.COMPENSATED
    assert view.compensated == ("Logistics.assign_courier", "Payments.charge")
    assert [refund.order_id for refund in refunds] == ["o-2"]  # loyalty saw the refund
    assert loyalty.refunded == {"o-2"}
    assert loyalty.snapshot() == {"points": {"alice": 25}, "awarded": ["o-1"]}
    assert loyalty.points.get("bob", 0) == 0


def test_a_refund_after_confirmation_takes_back_only_what_that_order_earned() -> None:
    loyalty = LoyaltyProgram()
    bus = EventBus()
    loyalty.subscribe(bus)
    for order_id, amount in (("o-1", 2_500), ("o-2", 1_000)):
        bus.publish(
            PaymentCaptured(
                order_id=order_id, payment_id=f"pay-{order_id}", customer_id="alice",
                amount_cents=amount,
            )
        )  # fmt: skip
        bus.publish(
            ConfirmationSent(order_id=order_id, email="a@example.com", tracking_number="TRK")
        )
    assert loyalty.points == {"alice": 35}

    bus.publish(PaymentRefunded(order_id="o-2", payment_id="pay-o-2", amount_cents=1_000))

    assert loyalty.points == {"alice": 25}
    assert loyalty.snapshot()["awarded"] == ["o-1"]
    assert loyalty.ledger[-1] == PointsMove("o-2", "alice", -10, "payment refunded")


def test_redelivered_messages_change_nothing() -> None:
    loyalty = LoyaltyProgram()
    bus = EventBus()
    loyalty.subscribe(bus)
    payment = PaymentCaptured(
        order_id="o-1", payment_id="pay-1", customer_id="alice", amount_cents=2_500
    )
    confirmation = ConfirmationSent(order_id="o-1", email="a@example.com", tracking_number="T")
    refund = PaymentRefunded(order_id="o-1", payment_id="pay-1", amount_cents=2_500)

    messages: list[Message] = [payment, confirmation, payment, confirmation]
    for message in messages:
        bus.publish(message)
    assert loyalty.points == {"alice": 25}

    messages = [refund, refund, payment, confirmation]
    for message in messages:
        bus.publish(message)  # a refunded order never earns again
    assert loyalty.points == {"alice": 0}
    assert [move.points for move in loyalty.ledger] == [25, -25]


def test_a_confirmation_without_a_payment_awards_nothing() -> None:
    loyalty = LoyaltyProgram()
    loyalty.on_confirmation_sent(
        ConfirmationSent(order_id="o-9", email="a@example.com", tracking_number="T")
    )
    assert loyalty.snapshot() == {"points": {}, "awarded": []}


def test_unsubscribe_stops_listening() -> None:
    loyalty = LoyaltyProgram()
    shop = make_shop(loyalty)
    loyalty.unsubscribe(shop.bus)
    assert shop.bus.handlers_for(ConfirmationSent) == []

    shop.flow.publish(order("o-1"), correlation_id="order-1")

    assert shop.flow.monitor.get("order-1").status is WorkflowStatus.COMPLETED
    assert loyalty.points == {}


def test_cents_per_point_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cents_per_point"):
        LoyaltyProgram(cents_per_point=0)


class BrokenLoyalty(LoyaltyProgram):
    def on_confirmation_sent(self, confirmation: ConfirmationSent) -> None:
        raise ConnectionError("points database is down")


def test_a_failing_loyalty_handler_does_not_fail_the_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loyalty = BrokenLoyalty()
    shop = make_shop(loyalty)
    failures: list[HandlerFailed] = []
    shop.bus.subscribe(HandlerFailed, failures.append)

    with caplog.at_level(logging.WARNING, logger="coordination.bus"):
        shop.flow.publish(order("o-1"), correlation_id="order-1")

    view = shop.flow.monitor.get("order-1")
    assert view.status is WorkflowStatus.COMPLETED
    assert view.failed == ()
    assert view.compensated == ()
    assert shop.payments.snapshot()["charged"] == ["o-1"]
    assert [sent for sent, _ in shop.notifications.snapshot()["sent"]] == ["o-1"]
    # The failure is published, journaled and logged, and the order went on.
    [failure] = failures
    assert failure.handler.endswith("BrokenLoyalty.on_confirmation_sent")
    assert failure.message_type == "ecommerce.ConfirmationSent"
    assert failure.correlation_id == "order-1"
    assert failure.error == "ConnectionError: points database is down"
    [entry] = [e for e in view.journal.of_kind(EntryKind.FAILED) if e.participant == "subscriber"]
    assert entry.action.endswith("BrokenLoyalty.on_confirmation_sent")
    assert "points database is down" in caplog.text
    assert loyalty.points == {}
