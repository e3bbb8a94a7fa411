"""Durable participants for crash tests: every effect is a row in their own SQLite file.

Effects are keyed by `ctx.idempotency_key`, so a re-executed attempt finds its effect
already there instead of applying it twice; each execution is also counted, so a test can
bound how many attempts ran again after kills.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

from coordination import Context
from examples.ecommerce import (
    ConfirmationSent,
    CourierAssigned,
    CourierReleased,
    Logistics,
    Notifications,
    OrderPlaced,
    OutOfStock,
    PaymentCaptured,
    PaymentRefunded,
    Payments,
    Sellers,
    StockReleased,
    StockReserved,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    workflow TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    action TEXT NOT NULL
);
"""


class Effects:
    """The shared effects file: apply once per key, undo once, count executions."""

    def __init__(
        self, path: Path, pause: float = 0.0, seed: int = 0, die_in: str | None = None
    ) -> None:
        self.die_in = die_in
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.pause = pause
        self.random = random.Random(seed)

    def _nap(self) -> None:
        if self.pause:
            time.sleep(self.random.uniform(0, self.pause))

    def apply(self, ctx: Context, action: str) -> None:
        if action == self.die_in:
            os.kill(os.getpid(), signal.SIGKILL)  # a step that kills its process, every time
        self._nap()
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "INSERT INTO executions (key, action) VALUES (?, ?)", (ctx.idempotency_key, action)
            )
            self.connection.execute(
                "INSERT OR IGNORE INTO effects (key, action, workflow) VALUES (?, ?, ?)",
                (ctx.idempotency_key, action, ctx.correlation_id),
            )
            self.connection.execute("COMMIT")
        self._nap()

    def undo(self, key: str, action: str) -> None:
        self._nap()
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "INSERT INTO executions (key, action) VALUES (?, ?)", (f"{key}:undo", action)
            )
            self.connection.execute("UPDATE effects SET undone = 1 WHERE key = ?", (key,))
            self.connection.execute("COMMIT")
        self._nap()


def step_key(ctx: Context) -> str:
    """The forward step's key from an undo's `...:undo` idempotency key."""
    return ctx.idempotency_key.removesuffix(":undo")


class DurablePayments(Payments):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        self.effects.apply(ctx, "charge")
        return PaymentCaptured(
            order_id=order.order_id,
            payment_id=f"pay-{order.order_id}",
            customer_id=order.customer_id,
            amount_cents=order.amount_cents,
        )

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
        self.effects.undo(step_key(ctx), "refund")
        return PaymentRefunded(
            order_id=payment.order_id, payment_id=payment.payment_id, amount_cents=1
        )


class DurableSellers(Sellers):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def reserve_stock(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> StockReserved:
        if order.quantity > 3:
            raise OutOfStock(f"{order.sku}: only 3 per order")
        self.effects.apply(ctx, "reserve_stock")
        return StockReserved(
            order_id=order.order_id,
            reservation_id=f"res-{order.order_id}",
            sku=order.sku,
            quantity=order.quantity,
        )

    def release_stock(self, reservation: StockReserved, ctx: Context) -> StockReleased:
        self.effects.undo(step_key(ctx), "release_stock")
        return StockReleased(
            order_id=reservation.order_id, reservation_id=reservation.reservation_id
        )


class DurableLogistics(Logistics):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned:
        self.effects.apply(ctx, "assign_courier")
        return CourierAssigned(
            order_id=order.order_id, courier_id="ann", tracking_number=f"TRK-{order.order_id}"
        )

    def release_courier(self, assignment: CourierAssigned, ctx: Context) -> CourierReleased:
        self.effects.undo(step_key(ctx), "release_courier")
        return CourierReleased(
            order_id=assignment.order_id,
            courier_id=assignment.courier_id,
            tracking_number=assignment.tracking_number,
        )


class DurableNotifications(Notifications):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def send_confirmation(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent:
        self.effects.apply(ctx, "send_confirmation")
        return ConfirmationSent(
            order_id=order.order_id, email=order.email, tracking_number=courier.tracking_number
        )


def order_for(index: int) -> OrderPlaced:
    """Order number `index`: every fifth one orders too much and must be compensated."""
    return OrderPlaced(
        order_id=f"o{index}",
        customer_id="c1",
        email="buyer@example.org",
        sku="sku-1",
        quantity=5 if index % 5 == 4 else 1,
        amount_cents=1000,
        address="1 Main St",
    )
