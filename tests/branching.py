"""A checkout with a business outcome, on participants that keep real state.

`Cashier.charge` returns `PaymentCaptured | PaymentDeclined` (an amount above the card's
limit is declined: a business outcome, not a failure); `Orders.confirm` takes the captured
payment and `Orders.decline` the declined one, so each run takes one branch and skips the
other; `Warehouse.ship` follows a confirmed order only. The run ends COMPLETED either way,
with `Shipped` or `OrderDeclined`.

Effects are kept in a `Ledger` by idempotency key (see `tests.equivalence_shapes`), so the
equivalence tests compare what each entry point left applied.
"""

from __future__ import annotations

from abc import abstractmethod

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step
from tests.equivalence_shapes import Ledger

#: Amounts above this are declined.
LIMIT = 100


class CheckoutStarted(Event, type_name="tests.branching.CheckoutStarted"):
    order_id: str
    amount: int


class PaymentCaptured(Event, type_name="tests.branching.PaymentCaptured"):
    order_id: str
    amount: int
    ref: str


class PaymentDeclined(Event, type_name="tests.branching.PaymentDeclined"):
    order_id: str
    reason: str


class OrderConfirmed(Event, type_name="tests.branching.OrderConfirmed"):
    order_id: str
    ref: str


class OrderDeclined(Event, type_name="tests.branching.OrderDeclined"):
    order_id: str
    reason: str


class Shipped(Event, type_name="tests.branching.Shipped"):
    order_id: str


class Cashier(Participant):
    @action(retry=Retry(attempts=3, backoff=0.01))
    @abstractmethod
    def charge(
        self, checkout: CheckoutStarted, ctx: Context
    ) -> PaymentCaptured | PaymentDeclined: ...

    @charge.compensation
    @abstractmethod
    def refund(self, payment: PaymentCaptured, ctx: Context) -> None: ...


class Orders(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def confirm(self, payment: PaymentCaptured, ctx: Context) -> OrderConfirmed: ...

    @confirm.compensation
    @abstractmethod
    def unconfirm(self, payment: PaymentCaptured, ctx: Context) -> None: ...

    @action(retry=Retry(attempts=2))
    @abstractmethod
    def decline(self, declined: PaymentDeclined, ctx: Context) -> OrderDeclined: ...


class Warehouse(Participant):
    @action(retry=Retry(attempts=2, backoff=0.02))
    @abstractmethod
    def ship(self, confirmed: OrderConfirmed, ctx: Context) -> Shipped: ...


class Checkout(Orchestrator[CheckoutStarted, Shipped | OrderDeclined], name="tests.checkout"):
    steps = (
        step(Cashier.charge),
        parallel(step(Orders.confirm), step(Orders.decline)),
        step(Warehouse.ship),
    )


class LedgerCashier(Ledger, Cashier):
    def charge(self, checkout: CheckoutStarted, ctx: Context) -> PaymentCaptured | PaymentDeclined:
        if checkout.amount > LIMIT:
            return PaymentDeclined(order_id=checkout.order_id, reason="over the limit")
        self.apply(ctx, checkout.amount)
        return PaymentCaptured(
            order_id=checkout.order_id, amount=checkout.amount, ref=ctx.idempotency_key
        )

    def refund(self, payment: PaymentCaptured, ctx: Context) -> None:
        self.revert(payment.ref)


class LedgerOrders(Ledger, Orders):
    def confirm(self, payment: PaymentCaptured, ctx: Context) -> OrderConfirmed:
        self.apply(ctx, payment.amount)
        return OrderConfirmed(order_id=payment.order_id, ref=ctx.idempotency_key)

    def unconfirm(self, payment: PaymentCaptured, ctx: Context) -> None:
        self.revert(ctx.idempotency_key)  # undone by its input: find the effect by key

    def decline(self, declined: PaymentDeclined, ctx: Context) -> OrderDeclined:
        self.apply(ctx, 0)
        return OrderDeclined(order_id=declined.order_id, reason=declined.reason)


class LedgerWarehouse(Ledger, Warehouse):
    def ship(self, confirmed: OrderConfirmed, ctx: Context) -> Shipped:
        self.apply(ctx, 1)
        return Shipped(order_id=confirmed.order_id)


def checkout_services() -> tuple[Participant, ...]:
    return (LedgerCashier(), LedgerOrders(), LedgerWarehouse())
