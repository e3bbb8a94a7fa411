"""The bundled e-commerce example: charge, reserve stock, assign a courier, confirm by email."""

from .flow import PlaceOrder
from .loyalty import LoyaltyProgram, PointsMove
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
from .participants import (
    CardDeclined,
    Logistics,
    NoCourierAvailable,
    Notifications,
    OutOfStock,
    Payments,
    Sellers,
)
from .services import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
)

__all__ = [
    "CardDeclined",
    "ConfirmationSent",
    "CourierAssigned",
    "CourierReleased",
    "InMemoryLogistics",
    "InMemoryNotifications",
    "InMemoryPayments",
    "InMemorySellers",
    "Logistics",
    "LoyaltyProgram",
    "NoCourierAvailable",
    "Notifications",
    "OrderPlaced",
    "OutOfStock",
    "PaymentCaptured",
    "PaymentRefunded",
    "Payments",
    "PlaceOrder",
    "PointsMove",
    "Sellers",
    "StockReleased",
    "StockReserved",
]
