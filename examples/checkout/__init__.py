"""A checkout that declines as a business outcome and waits for the payment webhook.

The card is authorized, or declined (`PaymentAuthorized | PaymentDeclined`: a business
outcome, not a failure); an authorized payment then waits for the provider's webhook
(`PaymentSettled | PaymentFailed`, at most an hour) before the order is confirmed. A
declined card skips the wait (nothing after it could use the webhook) and ends COMPLETED
with `OrderDeclined`; a failed settlement ends COMPLETED with `PaymentAbandoned`; a webhook
that never comes times out, and the authorization is voided (COMPENSATED).
`python -m examples.checkout` runs every path under both runners.
"""

from .flow import (
    CardPayments,
    CheckoutStarted,
    OrderBook,
    OrderConfirmed,
    OrderDeclined,
    Orders,
    PaymentAbandoned,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentFailed,
    Payments,
    PaymentSettled,
    WebhookCheckout,
)

__all__ = [
    "CardPayments",
    "CheckoutStarted",
    "OrderBook",
    "OrderConfirmed",
    "OrderDeclined",
    "Orders",
    "PaymentAbandoned",
    "PaymentAuthorized",
    "PaymentDeclined",
    "PaymentFailed",
    "PaymentSettled",
    "Payments",
    "WebhookCheckout",
]
