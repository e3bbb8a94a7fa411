"""A monthly subscription: one flow instance per period, chained by scheduled starts.

An instance is a DAG of generations, never a loop, so a process that repeats is one instance
per period (Temporal's continue-as-new). Period `sub-7:2027-01`:

1. `Billing.charge` charges the month and schedules `PeriodEnded` for its own instance in
   30 days (`ctx.schedule(..., after=PERIOD)`): the monthly timer;
2. the instance waits for `PeriodEnded | CancelRequested` (`WAITING`: no thread, no lease);
3. `PeriodEnded`: `Billing.renew`, the period's last action, schedules the next period's
   start message with `workflow_id="sub-7:2027-02"`, which starts that instance when due;
   `CancelRequested` (the customer, by `send()` or `publish(..., correlation_id=...)`):
   `Accounts.close` runs instead, nothing is scheduled, and the chain ends.

Every period ends COMPLETED with a business output (`Renewed | Closed`).
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step, wait

#: The monthly timer (a month of thirty days, for the example's sake).
PERIOD = dt.timedelta(days=30)
#: How long after a period ended the next one opens (its charge runs then).
OPENING = dt.timedelta(hours=1)


def period_id(subscription_id: str, period: str) -> str:
    """The id of one period's flow instance: `sub-7:2027-02`."""
    return f"{subscription_id}:{period}"


def next_period(period: str) -> str:
    """`2027-12` -> `2028-01`."""
    year, month = (int(part) for part in period.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}"


class PeriodStarted(Event, type_name="examples.subscription.PeriodStarted"):
    subscription_id: str
    period: str
    cents: int


class Charged(Event, type_name="examples.subscription.Charged"):
    subscription_id: str
    period: str
    cents: int


class PeriodEnded(Event, type_name="examples.subscription.PeriodEnded"):
    subscription_id: str
    period: str


class CancelRequested(Event, type_name="examples.subscription.CancelRequested"):
    subscription_id: str
    reason: str = "the customer cancelled"


class Renewed(Event, type_name="examples.subscription.Renewed"):
    subscription_id: str
    period: str
    next_period: str


class Closed(Event, type_name="examples.subscription.Closed"):
    subscription_id: str
    period: str
    reason: str


class Billing(Participant):
    @action(retry=Retry(attempts=3, backoff=60.0))
    @abstractmethod
    def charge(self, started: PeriodStarted, ctx: Context) -> Charged: ...

    @charge.compensation
    @abstractmethod
    def refund(self, charged: Charged, ctx: Context) -> None: ...

    @action(retry=Retry(attempts=3, backoff=60.0))
    @abstractmethod
    def renew(self, charged: Charged, ended: PeriodEnded, ctx: Context) -> Renewed: ...


class Accounts(Participant):
    @action
    @abstractmethod
    def close(self, charged: Charged, cancel: CancelRequested) -> Closed: ...


class SubscriptionPeriod(Orchestrator[PeriodStarted, Renewed | Closed], name="subscription"):
    """One period of a subscription: charge, wait for its end or a cancel, renew or close."""

    steps = (
        step(Billing.charge),
        wait(PeriodEnded | CancelRequested),
        parallel(step(Billing.renew), step(Accounts.close)),
    )


class CardBilling(Billing):
    """Charges a card (kept in memory here), once per idempotency key."""

    def __init__(self) -> None:
        self.charges: dict[str, int] = {}
        self.refunds: list[str] = []

    def charge(self, started: PeriodStarted, ctx: Context) -> Charged:
        self.charges.setdefault(ctx.idempotency_key, started.cents)
        ended = PeriodEnded(subscription_id=started.subscription_id, period=started.period)
        ctx.schedule(ended, after=PERIOD)  # the monthly timer, for this instance
        return Charged(
            subscription_id=started.subscription_id, period=started.period, cents=started.cents
        )

    def refund(self, charged: Charged, ctx: Context) -> None:
        self.refunds.append(ctx.idempotency_key)

    def renew(self, charged: Charged, ended: PeriodEnded, ctx: Context) -> Renewed:
        following = next_period(charged.period)
        ctx.schedule(  # the period's last action starts the next period when due
            PeriodStarted(
                subscription_id=charged.subscription_id, period=following, cents=charged.cents
            ),
            after=OPENING,
            workflow_id=period_id(charged.subscription_id, following),
        )
        return Renewed(
            subscription_id=charged.subscription_id, period=charged.period, next_period=following
        )


class AccountBook(Accounts):
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close(self, charged: Charged, cancel: CancelRequested) -> Closed:
        self.closed.append(charged.subscription_id)
        return Closed(
            subscription_id=charged.subscription_id, period=charged.period, reason=cancel.reason
        )
