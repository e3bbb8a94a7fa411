"""The order flow wired to fresh in-memory services, for the `coordination` command.

`coordination runs recover|retry|cancel examples.ecommerce.app:place_order --db orders.db`
loads `place_order` and passes it the store `--db` names; `coordination worker
examples.ecommerce.app:place_order --dsn postgresql://...` serves its submitted runs.
"""

from __future__ import annotations

from coordination.choreography import Choreography, EventBus
from coordination.stores import Store

from .flow import PlaceOrder
from .services import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
)

__all__ = ["place_order", "place_order_choreography"]


def _services() -> tuple[
    InMemoryPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications
]:
    return (
        InMemoryPayments({"alice": 10_000}),
        InMemorySellers({"book": 3}),
        InMemoryLogistics(["courier-1", "courier-2"]),
        InMemoryNotifications(),
    )


def place_order(store: Store | None = None) -> PlaceOrder:
    """PlaceOrder on fresh in-memory services, keeping its runs in `store`."""
    return PlaceOrder(*_services(), store=store)


def place_order_choreography(store: Store | None = None) -> Choreography:
    """The same order as a choreography adopting PlaceOrder, keeping instances in `store`."""
    return Choreography(EventBus(), *_services(), flow=PlaceOrder, store=store)
