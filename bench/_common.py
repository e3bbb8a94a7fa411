"""What the e-commerce benchmarks share: services, orders, the hand-written saga, BenchOrder.

Imported as `bench._common` (run the scripts with `PYTHONPATH=.`, as `make bench` does).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Protocol

from coordination import Context
from coordination.orchestration import Orchestrator, parallel, step
from examples.ecommerce import (
    ConfirmationSent,
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    Logistics,
    Notifications,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    Payments,
    Sellers,
)

__all__ = [
    "BenchOrder",
    "Charges",
    "Services",
    "hand_written",
    "measure",
    "orders",
    "services",
]


class BenchOrder(Orchestrator[OrderPlaced, ConfirmationSent], name="bench-order"):
    """PlaceOrder without its payment timeout: a sync run on the calling thread only."""

    steps = (
        step(Payments.charge, timeout=None),
        parallel(step(Logistics.assign_courier), step(Sellers.reserve_stock)),
        step(Notifications.send_confirmation),
    )


Services = tuple[InMemoryPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications]


class Charges(Protocol):
    """What the hand-written saga needs of a payments service."""

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured: ...

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


def services(workflows: int) -> Services:
    """Fresh in-memory services with enough money, stock and couriers for `workflows`."""
    return (
        InMemoryPayments({"c1": 10**15}),
        InMemorySellers({"sku-1": 10**12}),
        InMemoryLogistics(f"courier-{i}" for i in range(workflows)),
        InMemoryNotifications(),
    )


def orders(workflows: int) -> list[OrderPlaced]:
    return [
        OrderPlaced(
            order_id=f"o{i}",
            customer_id="c1",
            email="buyer@example.org",
            sku="sku-1",
            quantity=1,
            amount_cents=1_000,
            address="1 Main St",
        )
        for i in range(workflows)
    ]


def hand_written(
    parts: tuple[Charges, InMemorySellers, InMemoryLogistics, InMemoryNotifications],
    order: OrderPlaced,
    workflow_id: str,
) -> ConfirmationSent:
    """The same calls as BenchOrder, as a hand-written saga with try/except."""
    payments, sellers, logistics, notifications = parts
    payment = payments.charge(order, Context(workflow_id, f"{workflow_id}:Payments.charge"))
    try:
        courier = logistics.assign_courier(
            order, payment, Context(workflow_id, f"{workflow_id}:Logistics.assign_courier")
        )
        try:
            stock = sellers.reserve_stock(
                order, payment, Context(workflow_id, f"{workflow_id}:Sellers.reserve_stock")
            )
            try:
                return notifications.send_confirmation(
                    order,
                    courier,
                    stock,
                    Context(workflow_id, f"{workflow_id}:Notifications.send_confirmation"),
                )
            except Exception:
                sellers.release_stock(stock, Context(workflow_id, f"{workflow_id}:undo"))
                raise
        except Exception:
            logistics.release_courier(courier, Context(workflow_id, f"{workflow_id}:undo"))
            raise
    except Exception:
        payments.refund(payment, Context(workflow_id, f"{workflow_id}:undo"))
        raise


def measure(
    sides: list[tuple[str, Callable[[int], float]]], count: int, rounds: int
) -> dict[str, list[float]]:
    """Per-item seconds of each side, `rounds` times, interleaved so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name, _ in sides}
    for _ in range(rounds):
        for name, side in sides:
            gc.collect()
            samples[name].append(side(count))
    return samples
