"""A loyalty programme that joins the order flow without changing any participant.

It is not a `Participant`, and no flow lists it: it subscribes to the bus, awards points
when an order's confirmation is sent, and takes them back if that order's payment is
refunded. This is choreography's extensibility: a new service listens to events the others
already publish. (Under orchestration, `PlaceOrder` would need a new step.) If one of its
handlers raises, the bus publishes `HandlerFailed` and the order goes on.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from coordination.choreography import EventBus

from .messages import ConfirmationSent, PaymentCaptured, PaymentRefunded

__all__ = ["LoyaltyProgram", "PointsMove"]


class PointsMove(NamedTuple):
    """One change to a customer's points, and why."""

    order_id: str
    customer_id: str
    points: int  #: positive when awarded, negative when taken back
    reason: str


class LoyaltyProgram:
    """Points per customer: one per `cents_per_point` paid, once the order is confirmed.

    Every handler is idempotent per order: a redelivered message awards (or takes back)
    nothing more, and a refunded order is never awarded again.
    """

    def __init__(self, cents_per_point: int = 100) -> None:
        if cents_per_point <= 0:
            raise ValueError(f"cents_per_point={cents_per_point} must be > 0")
        self.cents_per_point = cents_per_point
        self.points: dict[str, int] = {}
        #: What each order is worth, learnt from its payment: (customer, points).
        self._paid: dict[str, tuple[str, int]] = {}
        #: Points awarded per order and still standing.
        self.awarded: dict[str, tuple[str, int]] = {}
        #: Orders whose payment was refunded: they never earn points.
        self.refunded: set[str] = set()
        #: Every change to anyone's points, in order.
        self.ledger: list[PointsMove] = []
        # Handlers may run on several publishing threads at once.
        self._lock = threading.Lock()

    def subscribe(self, bus: EventBus) -> None:
        """Listen to the order flow's events on `bus`."""
        bus.subscribe(PaymentCaptured, self.on_payment_captured)
        bus.subscribe(ConfirmationSent, self.on_confirmation_sent)
        bus.subscribe(PaymentRefunded, self.on_payment_refunded)

    def unsubscribe(self, bus: EventBus) -> None:
        """Stop listening to `bus`."""
        bus.unsubscribe(PaymentCaptured, self.on_payment_captured)
        bus.unsubscribe(ConfirmationSent, self.on_confirmation_sent)
        bus.unsubscribe(PaymentRefunded, self.on_payment_refunded)

    def on_payment_captured(self, payment: PaymentCaptured) -> None:
        """Remember who paid how much for the order (the confirmation does not say)."""
        with self._lock:
            self._paid.setdefault(
                payment.order_id,
                (payment.customer_id, payment.amount_cents // self.cents_per_point),
            )

    def on_confirmation_sent(self, confirmation: ConfirmationSent) -> None:
        """The order went through: award its points, once."""
        order_id = confirmation.order_id
        with self._lock:
            if order_id in self.awarded or order_id in self.refunded:
                return
            paid = self._paid.pop(order_id, None)
            if paid is None:
                return  # no payment seen for it on this bus: nothing to award
            customer_id, points = paid
            self.awarded[order_id] = paid
            self._move(PointsMove(order_id, customer_id, points, "order confirmed"))

    def on_payment_refunded(self, refund: PaymentRefunded) -> None:
        """The order was paid back: take back what it earned (nothing if it earned nothing)."""
        order_id = refund.order_id
        with self._lock:
            if order_id in self.refunded:
                return
            self.refunded.add(order_id)
            self._paid.pop(order_id, None)
            awarded = self.awarded.pop(order_id, None)
            if awarded is not None:
                customer_id, points = awarded
                self._move(PointsMove(order_id, customer_id, -points, "payment refunded"))

    def _move(self, move: PointsMove) -> None:
        self.points[move.customer_id] = self.points.get(move.customer_id, 0) + move.points
        self.ledger.append(move)

    def snapshot(self) -> dict[str, Any]:
        """Points per customer and the orders whose points stand."""
        with self._lock:
            return {
                "points": dict(sorted(self.points.items())),
                "awarded": sorted(self.awarded),
            }

    def __repr__(self) -> str:
        return f"<LoyaltyProgram {len(self.points)} customers, {len(self.awarded)} orders>"
