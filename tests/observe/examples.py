"""Every bundled example's flow, as each target `graph()` and `lint()` take."""

from __future__ import annotations

from coordination.choreography import Choreography, EventBus
from examples.ecommerce import (
    Logistics,
    LoyaltyProgram,
    Notifications,
    Payments,
    PlaceOrder,
    Sellers,
)
from examples.otp_login import CodeStore, OtpLogin, SessionBook, SmsGateway
from examples.recommendations import Recommend, services
from examples.subscription import SubscriptionPeriod
from tests.testing.test_fakes import shop


def shop_choreography() -> Choreography:
    """The order as a choreography derived from the signatures, loyalty points listening."""
    bus = EventBus()
    LoyaltyProgram().subscribe(bus)
    return Choreography(bus, *shop())


def adopted_choreography() -> Choreography:
    """The order as a choreography adopting PlaceOrder's declarations."""
    return Choreography(EventBus(), *shop(), flow=PlaceOrder)


def otp_choreography() -> Choreography:
    """The OTP login as a choreography adopting OtpLogin's declarations."""
    return Choreography(EventBus(), CodeStore(), SmsGateway(), SessionBook(), flow=OtpLogin)


#: name -> a zero-argument factory of what graph()/lint() take.
EXAMPLES = {
    "ecommerce-flow": lambda: PlaceOrder,
    "ecommerce-choreography": shop_choreography,
    "ecommerce-adopted": adopted_choreography,
    "ecommerce-interfaces": lambda: [Payments, Sellers, Logistics, Notifications],
    "otp-login-flow": lambda: OtpLogin,
    "otp-login-choreography": otp_choreography,
    "subscription-flow": lambda: SubscriptionPeriod,
    "recommendations-flow": lambda: Recommend,
    "recommendations-choreography": lambda: Choreography(EventBus(), *services()),
}
