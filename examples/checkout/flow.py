"""The checkout's messages, participants and flow, with in-memory implementations."""

from __future__ import annotations

from abc import abstractmethod

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step, wait

#: How long the flow waits for the provider's webhook.
WEBHOOK_TIMEOUT = 3600.0


class CheckoutStarted(Event, type_name="examples.checkout.CheckoutStarted"):
    order_id: str
    amount_cents: int


class PaymentAuthorized(Event, type_name="examples.checkout.PaymentAuthorized"):
    order_id: str
    amount_cents: int


class PaymentDeclined(Event, type_name="examples.checkout.PaymentDeclined"):
    order_id: str
    reason: str


class PaymentSettled(Event, type_name="examples.checkout.PaymentSettled"):
    order_id: str


class PaymentFailed(Event, type_name="examples.checkout.PaymentFailed"):
    order_id: str
    reason: str


class OrderConfirmed(Event, type_name="examples.checkout.OrderConfirmed"):
    order_id: str
    amount_cents: int


class OrderDeclined(Event, type_name="examples.checkout.OrderDeclined"):
    order_id: str
    reason: str


class PaymentAbandoned(Event, type_name="examples.checkout.PaymentAbandoned"):
    order_id: str
    reason: str


class Payments(Participant):
    @action(retry=Retry(attempts=3, backoff=0.2))
    @abstractmethod
    def authorize(
        self, checkout: CheckoutStarted, ctx: Context
    ) -> PaymentAuthorized | PaymentDeclined: ...

    @authorize.compensation
    @abstractmethod
    def void(self, authorized: PaymentAuthorized, ctx: Context) -> None: ...


class Orders(Participant):
    @action
    @abstractmethod
    def decline(self, declined: PaymentDeclined) -> OrderDeclined: ...

    @action(retry=Retry(attempts=3, backoff=0.2))
    @abstractmethod
    def confirm(self, authorized: PaymentAuthorized, settled: PaymentSettled) -> OrderConfirmed: ...

    @action(retry=Retry(attempts=3, backoff=0.2))
    @abstractmethod
    def abandon(self, authorized: PaymentAuthorized, failed: PaymentFailed) -> PaymentAbandoned: ...


class WebhookCheckout(
    Orchestrator[CheckoutStarted, OrderConfirmed | OrderDeclined | PaymentAbandoned],
    name="examples.checkout",
):
    steps = (
        step(Payments.authorize),
        step(Orders.decline),  # the declined branch; skipped once authorized
        wait(PaymentSettled | PaymentFailed, timeout=WEBHOOK_TIMEOUT),
        parallel(step(Orders.confirm), step(Orders.abandon)),
    )


class CardPayments(Payments):
    """Authorizes up to a card limit; keeps what stands authorized by idempotency key."""

    def __init__(self, limit_cents: int = 10_000) -> None:
        self.limit_cents = limit_cents
        self.authorized: dict[str, int] = {}

    def authorize(
        self, checkout: CheckoutStarted, ctx: Context
    ) -> PaymentAuthorized | PaymentDeclined:
        if checkout.amount_cents > self.limit_cents:
            return PaymentDeclined(order_id=checkout.order_id, reason="over the card's limit")
        self.authorized.setdefault(ctx.idempotency_key, checkout.amount_cents)
        return PaymentAuthorized(order_id=checkout.order_id, amount_cents=checkout.amount_cents)

    def void(self, authorized: PaymentAuthorized, ctx: Context) -> None:
        self.authorized.pop(ctx.idempotency_key.removesuffix(":undo"), None)


class OrderBook(Orders):
    """Keeps each order's outcome."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def decline(self, declined: PaymentDeclined) -> OrderDeclined:
        self.outcomes[declined.order_id] = "declined"
        return OrderDeclined(order_id=declined.order_id, reason=declined.reason)

    def confirm(self, authorized: PaymentAuthorized, settled: PaymentSettled) -> OrderConfirmed:
        self.outcomes[settled.order_id] = "confirmed"
        return OrderConfirmed(order_id=settled.order_id, amount_cents=authorized.amount_cents)

    def abandon(self, authorized: PaymentAuthorized, failed: PaymentFailed) -> PaymentAbandoned:
        self.outcomes[failed.order_id] = "abandoned"
        return PaymentAbandoned(order_id=failed.order_id, reason=failed.reason)
