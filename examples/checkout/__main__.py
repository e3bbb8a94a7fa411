"""`python -m examples.checkout`: every path of the checkout, under both runners."""

from __future__ import annotations

from typing import Any

from coordination.choreography import Choreography, EventBus
from coordination.testing import VirtualClock

from .flow import (
    WEBHOOK_TIMEOUT,
    CardPayments,
    CheckoutStarted,
    OrderBook,
    PaymentFailed,
    PaymentSettled,
    WebhookCheckout,
)

#: (order, amount, what the provider says later: a message, or None for no webhook)
PATHS: list[tuple[str, int, Any]] = [
    ("o-settled", 2_500, PaymentSettled(order_id="o-settled")),
    ("o-failed", 2_500, PaymentFailed(order_id="o-failed", reason="3-D Secure refused")),
    ("o-declined", 25_000, None),
    ("o-silent", 2_500, None),  # the webhook never comes: the wait times out
]


def main() -> int:
    for mode in ("orchestration", "choreography"):
        clock = VirtualClock()
        payments, orders = CardPayments(), OrderBook()
        runner: Any
        if mode == "orchestration":
            runner = WebhookCheckout(payments, orders, clock=clock)
        else:
            runner = Choreography(
                EventBus(clock=clock), payments, orders, flow=WebhookCheckout, clock=clock
            )
        for order_id, amount, later in PATHS:
            start = CheckoutStarted(order_id=order_id, amount_cents=amount)
            if mode == "orchestration":
                runner.run(start, workflow_id=order_id)
                if later is not None:
                    runner.send(order_id, later)
            else:
                runner.publish(start, correlation_id=order_id)
                if later is not None:
                    runner.publish(later, correlation_id=order_id)
        clock.advance(WEBHOOK_TIMEOUT)
        runner.resume_due()
        for order_id, _, _ in PATHS:
            ended = (
                runner.get(order_id) if mode == "orchestration" else runner.monitor.get(order_id)
            )
            outcome = orders.outcomes.get(order_id, "voided")
            print(f"{mode:13} {order_id:11} {ended.status.name:11} {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
