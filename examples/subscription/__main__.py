"""`python -m examples.subscription`: three monthly periods, then a cancel, both runners."""

from __future__ import annotations

from typing import Any

from coordination.choreography import Choreography, EventBus
from coordination.testing import VirtualClock

from .flow import (
    OPENING,
    PERIOD,
    AccountBook,
    CancelRequested,
    CardBilling,
    PeriodStarted,
    SubscriptionPeriod,
    period_id,
)


def main() -> int:
    for mode in ("orchestration", "choreography"):
        clock = VirtualClock()
        billing, accounts = CardBilling(), AccountBook()
        runner: Any
        first = PeriodStarted(subscription_id="sub-7", period="2027-01", cents=900)
        if mode == "orchestration":
            runner = SubscriptionPeriod(billing, accounts, clock=clock)
            runner.run(first, workflow_id=period_id("sub-7", "2027-01"))
        else:
            runner = Choreography(
                EventBus(clock=clock), billing, accounts, flow=SubscriptionPeriod, clock=clock
            )
            runner.publish(first, correlation_id=period_id("sub-7", "2027-01"))
        for _ in range(2):  # two months pass: each period ends, renews, opens the next
            clock.advance(PERIOD.total_seconds())
            runner.resume_due()  # the period ends: renew, scheduling the next start
            clock.advance(OPENING.total_seconds())
            runner.resume_due()  # the next period opens
        cancel = CancelRequested(subscription_id="sub-7")
        current = period_id("sub-7", "2027-03")
        if mode == "orchestration":
            runner.send(current, cancel)
        else:
            runner.publish(cancel, correlation_id=current)
        for period in ("2027-01", "2027-02", "2027-03"):
            workflow_id = period_id("sub-7", period)
            ended = (
                runner.get(workflow_id)
                if mode == "orchestration"
                else runner.monitor.get(workflow_id)
            )
            print(f"{mode:13} {workflow_id:14} {ended.status.name}")
        print(f"{mode:13} charged {len(billing.charges)} period(s); closed {accounts.closed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
