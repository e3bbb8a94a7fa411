"""A checkout that waits for the payment provider's webhook, on participants with state.

`Payments.authorize` reserves the money; the flow then waits for the provider's outside
message, `PaymentSettled | PaymentFailed`; `Orders.confirm` takes the settled payment (and
the authorization), `Orders.void` the failed one, so the run ends COMPLETED with
`OrderConfirmed` or `OrderVoided`. `Payments.authorize` can be given a hook that runs
inside its attempt: where a test's webhook arrives early.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step, wait
from tests.equivalence_shapes import Ledger


class OrderPlaced(Event, type_name="tests.waiting.OrderPlaced"):
    order_id: str
    cents: int


class Authorized(Event, type_name="tests.waiting.Authorized"):
    order_id: str
    cents: int
    ref: str


class PaymentSettled(Event, type_name="tests.waiting.PaymentSettled"):
    order_id: str


class PaymentFailed(Event, type_name="tests.waiting.PaymentFailed"):
    order_id: str
    reason: str


class OrderConfirmed(Event, type_name="tests.waiting.OrderConfirmed"):
    order_id: str
    cents: int


class OrderVoided(Event, type_name="tests.waiting.OrderVoided"):
    order_id: str
    reason: str


class Payments(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def authorize(self, order: OrderPlaced, ctx: Context) -> Authorized: ...

    @authorize.compensation
    @abstractmethod
    def release(self, authorized: Authorized, ctx: Context) -> None: ...


class Orders(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def confirm(
        self, authorized: Authorized, settled: PaymentSettled, ctx: Context
    ) -> OrderConfirmed: ...

    @action
    @abstractmethod
    def void(self, failed: PaymentFailed, ctx: Context) -> OrderVoided: ...


class WebhookCheckout(
    Orchestrator[OrderPlaced, OrderConfirmed | OrderVoided], name="tests.webhook-checkout"
):
    steps = (
        step(Payments.authorize),
        wait(PaymentSettled | PaymentFailed),
        parallel(step(Orders.confirm), step(Orders.void)),
    )


class LedgerPayments(Ledger, Payments):
    def __init__(self, during: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.during = during

    def authorize(self, order: OrderPlaced, ctx: Context) -> Authorized:
        self.during()
        return Authorized(
            order_id=order.order_id, cents=self.apply(ctx, order.cents), ref=ctx.idempotency_key
        )

    def release(self, authorized: Authorized, ctx: Context) -> None:
        self.revert(authorized.ref)


class LedgerOrders(Ledger, Orders):
    def confirm(
        self, authorized: Authorized, settled: PaymentSettled, ctx: Context
    ) -> OrderConfirmed:
        return OrderConfirmed(order_id=settled.order_id, cents=self.apply(ctx, authorized.cents))

    def void(self, failed: PaymentFailed, ctx: Context) -> OrderVoided:
        self.apply(ctx, 0)
        return OrderVoided(order_id=failed.order_id, reason=failed.reason)


def webhook_services(during: Callable[[], None] = lambda: None) -> tuple[Participant, ...]:
    return (LedgerPayments(during), LedgerOrders())
