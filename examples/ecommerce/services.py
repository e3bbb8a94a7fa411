"""In-memory implementations of the four services: they really keep state, and can fail.

Every effect is keyed by `ctx.idempotency_key`, so a retried or recovered attempt returns
the first result instead of charging (reserving, emailing) twice. `fail(action, *errors)`
queues errors an action raises on its next calls, for demos and tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from coordination import Context

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

__all__ = [
    "InMemoryLogistics",
    "InMemoryNotifications",
    "InMemoryPayments",
    "InMemorySellers",
]


class _Failures:
    """A queue of errors per action name, raised before the action does anything."""

    def __init__(self) -> None:
        self._failures: dict[str, list[BaseException]] = {}

    def fail(self, action: str, *errors: BaseException) -> None:
        """Make the next `len(errors)` calls of `action` raise these errors, in order."""
        self._failures.setdefault(action, []).extend(errors)

    def _maybe_fail(self, action: str) -> None:
        queued = self._failures.get(action)
        if queued:
            raise queued.pop(0)


class InMemoryPayments(_Failures, Payments):
    """Customer balances in cents; charges and refunds keyed by idempotency key."""

    def __init__(self, balances: Mapping[str, int]) -> None:
        super().__init__()
        self.balances = dict(balances)
        self.payments: dict[str, PaymentCaptured] = {}
        self.refunds: dict[str, PaymentRefunded] = {}

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        self._maybe_fail("charge")
        done = self.payments.get(ctx.idempotency_key)
        if done is not None:
            return done
        balance = self.balances.get(order.customer_id, 0)
        if balance < order.amount_cents:
            raise CardDeclined(
                f"customer {order.customer_id} has {balance} cents, needs {order.amount_cents}"
            )
        self.balances[order.customer_id] = balance - order.amount_cents
        payment = PaymentCaptured(
            order_id=order.order_id,
            payment_id=f"pay-{len(self.payments) + 1}",
            customer_id=order.customer_id,
            amount_cents=order.amount_cents,
        )
        self.payments[ctx.idempotency_key] = payment
        return payment

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
        self._maybe_fail("refund")
        done = self.refunds.get(payment.payment_id)
        if done is not None:
            return done
        self.balances[payment.customer_id] = (
            self.balances.get(payment.customer_id, 0) + payment.amount_cents
        )
        refunded = PaymentRefunded(
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            amount_cents=payment.amount_cents,
        )
        self.refunds[payment.payment_id] = refunded
        return refunded

    def snapshot(self) -> dict[str, Any]:
        """Balances and which payments stand (charged and not refunded)."""
        standing = sorted(
            p.order_id for p in self.payments.values() if p.payment_id not in self.refunds
        )
        return {"balances": dict(sorted(self.balances.items())), "charged": standing}


class InMemorySellers(_Failures, Sellers):
    """Stock per SKU; reservations keyed by idempotency key."""

    def __init__(self, stock: Mapping[str, int]) -> None:
        super().__init__()
        self.stock = dict(stock)
        self.reservations: dict[str, StockReserved] = {}
        self.released: set[str] = set()

    def reserve_stock(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> StockReserved:
        self._maybe_fail("reserve_stock")
        done = self.reservations.get(ctx.idempotency_key)
        if done is not None:
            return done
        available = self.stock.get(order.sku, 0)
        if available < order.quantity:
            raise OutOfStock(f"{order.sku}: {available} left, {order.quantity} ordered")
        self.stock[order.sku] = available - order.quantity
        reservation = StockReserved(
            order_id=order.order_id,
            reservation_id=f"res-{len(self.reservations) + 1}",
            sku=order.sku,
            quantity=order.quantity,
        )
        self.reservations[ctx.idempotency_key] = reservation
        return reservation

    def release_stock(self, reservation: StockReserved, ctx: Context) -> StockReleased:
        self._maybe_fail("release_stock")
        if reservation.reservation_id not in self.released:
            self.released.add(reservation.reservation_id)
            self.stock[reservation.sku] = self.stock.get(reservation.sku, 0) + reservation.quantity
        return StockReleased(
            order_id=reservation.order_id, reservation_id=reservation.reservation_id
        )

    def snapshot(self) -> dict[str, Any]:
        held = sorted(
            r.order_id for r in self.reservations.values() if r.reservation_id not in self.released
        )
        return {"stock": dict(sorted(self.stock.items())), "reserved": held}


class InMemoryLogistics(_Failures, Logistics):
    """A pool of couriers; each assignment takes one until it is released."""

    def __init__(self, couriers: Iterable[str]) -> None:
        super().__init__()
        self.free = deque(couriers)
        self.assignments: dict[str, CourierAssigned] = {}
        self.released: set[str] = set()

    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned:
        self._maybe_fail("assign_courier")
        done = self.assignments.get(ctx.idempotency_key)
        if done is not None:
            return done
        if not self.free:
            raise NoCourierAvailable(f"no courier free for order {order.order_id}")
        courier = self.free.popleft()
        assignment = CourierAssigned(
            order_id=order.order_id,
            courier_id=courier,
            tracking_number=f"TRK-{order.order_id}-{len(self.assignments) + 1:04d}",
        )
        self.assignments[ctx.idempotency_key] = assignment
        return assignment

    def release_courier(self, assignment: CourierAssigned, ctx: Context) -> CourierReleased:
        self._maybe_fail("release_courier")
        if assignment.tracking_number not in self.released:
            self.released.add(assignment.tracking_number)
            self.free.append(assignment.courier_id)
        return CourierReleased(
            order_id=assignment.order_id,
            courier_id=assignment.courier_id,
            tracking_number=assignment.tracking_number,
        )

    def snapshot(self) -> dict[str, Any]:
        active = sorted(
            a.order_id for a in self.assignments.values() if a.tracking_number not in self.released
        )
        return {"free": sorted(self.free), "assigned": active}


class InMemoryNotifications(_Failures, Notifications):
    """An outbox of sent emails, one per order however often it is retried."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: dict[str, ConfirmationSent] = {}

    def send_confirmation(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent:
        self._maybe_fail("send_confirmation")
        done = self.outbox.get(ctx.idempotency_key)
        if done is not None:
            return done
        sent = ConfirmationSent(
            order_id=order.order_id, email=order.email, tracking_number=courier.tracking_number
        )
        self.outbox[ctx.idempotency_key] = sent
        return sent

    def snapshot(self) -> dict[str, Any]:
        return {"sent": sorted((s.order_id, s.tracking_number) for s in self.outbox.values())}
