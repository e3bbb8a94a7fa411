"""The DESIGN.md example, completed: it must pass `mypy --strict` and run.

`tests/test_typing.py` type-checks this file and runs `main()`.
"""

from __future__ import annotations

from abc import abstractmethod

from pydantic import Field

from coordination import Context, Event, Participant, Retry, WorkflowStatus, action
from coordination.orchestration import Orchestrator, WorkflowRun, step


class OrderPlaced(Event):
    order_id: str
    customer_id: str
    amount_cents: int = Field(gt=0)


class PaymentCaptured(Event):
    order_id: str
    payment_id: str
    amount_cents: int


class PaymentRefunded(Event):
    order_id: str
    payment_id: str
    amount_cents: int


class Payments(Participant):  # an interface: the contract both runners use
    @action(retry=Retry(attempts=3, backoff=0.05), timeout=2.0)
    @abstractmethod
    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured: ...

    @charge.compensation  # the undo of charge, declared like a property setter
    @abstractmethod
    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


class FakePayments(Payments):  # a pluggable implementation (tests, demo)
    def __init__(self) -> None:
        self.captured: dict[str, PaymentCaptured] = {}
        self.refunded: dict[str, PaymentRefunded] = {}

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        known = self.captured.get(ctx.idempotency_key)
        if known is not None:  # a retried or recovered attempt: the same charge
            return known
        captured = PaymentCaptured(
            order_id=order.order_id,
            payment_id=f"pay-{len(self.captured) + 1}",
            amount_cents=order.amount_cents,
        )
        self.captured[ctx.idempotency_key] = captured
        ctx.logger.info("charged %s", captured.payment_id)
        return captured

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
        known = self.refunded.get(ctx.idempotency_key)
        if known is not None:
            return known
        refunded = PaymentRefunded(
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            amount_cents=payment.amount_cents,
        )
        self.refunded[ctx.idempotency_key] = refunded
        return refunded


class ChargeOrder(Orchestrator[OrderPlaced, PaymentCaptured], name="charge-order"):
    steps = (step(Payments.charge),)


def charge_directly(payments: Payments, order: OrderPlaced) -> PaymentCaptured:
    """Call an implementation as plain Python: the action keeps its signature."""
    return payments.charge(order, Context("direct", "direct:charge"))


def main() -> PaymentCaptured:
    payments = FakePayments()
    orders = ChargeOrder(payments)
    order = OrderPlaced(order_id="o-1", customer_id="c-1", amount_cents=1250)
    run: WorkflowRun[PaymentCaptured] = orders.run(order, workflow_id="order-1")
    output: PaymentCaptured | None = run.output
    assert run.status is WorkflowStatus.COMPLETED
    assert output is not None
    assert output.amount_cents == order.amount_cents  # typed: an attribute of PaymentCaptured
    again = orders.run(order, workflow_id="order-1")  # idempotent by workflow_id
    assert again.output == output
    assert len(payments.captured) == 1
    direct = charge_directly(payments, order)
    assert direct.payment_id == "pay-2"
    return output


if __name__ == "__main__":
    print(main())
