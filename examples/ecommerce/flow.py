"""The order flow as an orchestration: Orders runs it; the four services take part."""

from __future__ import annotations

from coordination.orchestration import Orchestrator, parallel, step

from .messages import ConfirmationSent, OrderPlaced
from .participants import Logistics, Notifications, Payments, Sellers

__all__ = ["PlaceOrder"]


class PlaceOrder(Orchestrator[OrderPlaced, ConfirmationSent], name="place-order"):
    """Charge, then reserve stock and assign a courier side by side, then confirm by email."""

    steps = (
        step(Payments.charge),
        parallel(step(Logistics.assign_courier), step(Sellers.reserve_stock)),
        step(Notifications.send_confirmation),
    )
