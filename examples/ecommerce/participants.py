"""The interfaces of the four services: the contract both runners plug implementations into.

Orders is not a participant: it is the caller, which runs `PlaceOrder` or publishes
`OrderPlaced`.
"""

from __future__ import annotations

from abc import abstractmethod

from coordination import Context, NonRetryable, Participant, Retry, action

from .messages import (
    ConfirmationSent,
    CourierAssigned,
    CourierReleased,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    StockReleased,
    StockReserved,
)

__all__ = [
    "CardDeclined",
    "Logistics",
    "NoCourierAvailable",
    "Notifications",
    "OutOfStock",
    "Payments",
    "Sellers",
]


class CardDeclined(NonRetryable):
    """The customer's card was refused: retrying will not change that."""


class OutOfStock(NonRetryable):
    """The seller cannot reserve the quantity ordered."""


class NoCourierAvailable(Exception):
    """Every delivery partner is busy right now (worth retrying)."""


class Payments(Participant):
    """Charges customers, and refunds them when the order cannot go through."""

    @action(retry=Retry(attempts=3, backoff=0.05), timeout=2.0)
    @abstractmethod
    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured: ...

    @charge.compensation
    @abstractmethod
    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


class Sellers(Participant):
    """The seller sets the items aside and keeps the shipment ready."""

    @action(retry=Retry(attempts=2, backoff=0.05))
    @abstractmethod
    def reserve_stock(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> StockReserved: ...

    @reserve_stock.compensation
    @abstractmethod
    def release_stock(self, reservation: StockReserved, ctx: Context) -> StockReleased: ...


class Logistics(Participant):
    """Assigns a delivery partner, who gives the tracking number."""

    @action(retry=Retry(attempts=3, backoff=0.05))
    @abstractmethod
    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned: ...

    @assign_courier.compensation
    @abstractmethod
    def release_courier(self, assignment: CourierAssigned, ctx: Context) -> CourierReleased: ...


class Notifications(Participant):
    """Emails the customer the confirmation with the tracking number."""

    @action(retry=Retry(attempts=3, backoff=0.05))
    @abstractmethod
    def send_confirmation(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent: ...
