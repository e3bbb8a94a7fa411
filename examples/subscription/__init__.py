"""A monthly subscription: a timer per period, a cancel message, one instance per period.

Each period is its own flow instance (`sub-7:2027-01`, `sub-7:2027-02`, ...): it charges,
waits for its end (a message it scheduled for itself 30 days later) or a cancel, then
renews (scheduling the next period's start message) or closes. `python -m
examples.subscription` runs three periods and a cancel under both runners on the virtual
clock.
"""

from .flow import (
    OPENING,
    PERIOD,
    AccountBook,
    Accounts,
    Billing,
    CancelRequested,
    CardBilling,
    Charged,
    Closed,
    PeriodEnded,
    PeriodStarted,
    Renewed,
    SubscriptionPeriod,
    next_period,
    period_id,
)

__all__ = [
    "OPENING",
    "PERIOD",
    "AccountBook",
    "Accounts",
    "Billing",
    "CancelRequested",
    "CardBilling",
    "Charged",
    "Closed",
    "PeriodEnded",
    "PeriodStarted",
    "Renewed",
    "SubscriptionPeriod",
    "next_period",
    "period_id",
]
