"""A flow with a point of no return, on participants that keep real state.

`Payments.charge` (refunded on failure) → `Mailer.send_receipt` (the pivot: a sent email
cannot be unsent) → `Couriers.ship` (after the pivot: retried forward, never undone). The
shipper can be told to fail its next attempts, so a test can fail it, then "fix" it
before an operator's `retry()`.
"""

from __future__ import annotations

from abc import abstractmethod

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, step
from tests.equivalence_shapes import Ledger


class Purchase(Event, type_name="tests.pivot.Purchase"):
    n: int


class Charged(Event, type_name="tests.pivot.Charged"):
    n: int
    ref: str


class ReceiptSent(Event, type_name="tests.pivot.ReceiptSent"):
    n: int


class Shipped(Event, type_name="tests.pivot.Shipped"):
    n: int


class Payments(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    def charge(self, purchase: Purchase, ctx: Context) -> Charged: ...

    @charge.compensation
    @abstractmethod
    def refund(self, charged: Charged, ctx: Context) -> None: ...


class Mailer(Participant):
    @action(retry=Retry(attempts=2), pivot=True)
    @abstractmethod
    def send_receipt(self, charged: Charged, ctx: Context) -> ReceiptSent: ...


class Couriers(Participant):
    @action(retry=Retry(attempts=3, backoff=0.5))
    @abstractmethod
    def ship(self, receipt: ReceiptSent, ctx: Context) -> Shipped: ...


class Checkout(Orchestrator[Purchase, Shipped], name="tests.pivot-checkout"):
    steps = (step(Payments.charge), step(Mailer.send_receipt), step(Couriers.ship))


class LedgerPayments(Ledger, Payments):
    def charge(self, purchase: Purchase, ctx: Context) -> Charged:
        return Charged(n=self.apply(ctx, purchase.n), ref=ctx.idempotency_key)

    def refund(self, charged: Charged, ctx: Context) -> None:
        self.revert(charged.ref)


class LedgerMailer(Ledger, Mailer):
    def send_receipt(self, charged: Charged, ctx: Context) -> ReceiptSent:
        return ReceiptSent(n=self.apply(ctx, charged.n))


class LedgerCouriers(Ledger, Couriers):
    """Fails while `broken` (a shared switch: a test flips it to fix the courier)."""

    def __init__(self, broken: list[bool] | None = None) -> None:
        super().__init__()
        self.broken = broken if broken is not None else [False]

    def ship(self, receipt: ReceiptSent, ctx: Context) -> Shipped:
        if self.broken[0]:
            raise ConnectionError("the courier's API is down")
        return Shipped(n=self.apply(ctx, receipt.n))


def pivot_services(broken: list[bool] | None = None) -> tuple[Participant, ...]:
    return (LedgerPayments(), LedgerMailer(), LedgerCouriers(broken))
