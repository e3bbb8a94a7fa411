"""The messages of the order flow: what each service tells the others.

Each has an explicit `type_name`, so stored orders stay readable if the module moves (the
wheel ships this example inside the package, a checkout keeps it under `examples/`).
"""

from __future__ import annotations

from pydantic import Field

from coordination import Event


class OrderPlaced(Event, type_name="ecommerce.OrderPlaced"):
    """Orders accepted a purchase: the flow starts here."""

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    amount_cents: int = Field(gt=0)
    address: str = Field(min_length=1)


class PaymentCaptured(Event, type_name="ecommerce.PaymentCaptured"):
    order_id: str
    payment_id: str
    customer_id: str
    amount_cents: int


class PaymentRefunded(Event, type_name="ecommerce.PaymentRefunded"):
    order_id: str
    payment_id: str
    amount_cents: int


class StockReserved(Event, type_name="ecommerce.StockReserved"):
    """The seller set the items aside and keeps the shipment ready."""

    order_id: str
    reservation_id: str
    sku: str
    quantity: int


class StockReleased(Event, type_name="ecommerce.StockReleased"):
    order_id: str
    reservation_id: str


class CourierAssigned(Event, type_name="ecommerce.CourierAssigned"):
    order_id: str
    courier_id: str
    tracking_number: str


class CourierReleased(Event, type_name="ecommerce.CourierReleased"):
    order_id: str
    courier_id: str
    tracking_number: str


class ConfirmationSent(Event, type_name="ecommerce.ConfirmationSent"):
    """The customer got an email with the tracking number."""

    order_id: str
    email: str
    tracking_number: str


__all__ = [
    "ConfirmationSent",
    "CourierAssigned",
    "CourierReleased",
    "OrderPlaced",
    "PaymentCaptured",
    "PaymentRefunded",
    "StockReleased",
    "StockReserved",
]
