"""Flows with one defect each: what lint must find, and nothing else."""

from __future__ import annotations

from abc import abstractmethod

from coordination import Command, Context, Event, Participant, action
from coordination.orchestration import Orchestrator, step
from examples.ecommerce import OrderPlaced, PaymentCaptured, Payments


class Tick(Event, type_name="tests.observe.broken:Tick"):
    n: int


class Tock(Event, type_name="tests.observe.broken:Tock"):
    n: int


class Clock(Participant):
    @action
    @abstractmethod
    def tick(self, tick: Tick) -> Tock: ...


class Pendulum(Participant):
    @action
    @abstractmethod
    def swing(self, tock: Tock) -> Tick: ...


#: `cycle`: Clock.tick and Pendulum.swing feed each other.
CYCLE = [Clock, Pendulum]


class LabelPrinted(Event, type_name="tests.observe.broken:LabelPrinted"):
    order_id: str


class Shipped(Event, type_name="tests.observe.broken:Shipped"):
    order_id: str


class Shipping(Participant):
    @action
    @abstractmethod
    def ship(self, payment: PaymentCaptured, label: LabelPrinted) -> Shipped: ...

    @ship.compensation
    @abstractmethod
    def recall(self, shipped: Shipped) -> LabelPrinted: ...


#: `unproduced-input`: nobody prints the label Shipping.ship needs.
UNPRODUCED = [Payments, Shipping]


class AuditOpened(Event, type_name="tests.observe.broken:AuditOpened"):
    order_id: str


class Audits(Participant):
    @action
    @abstractmethod
    def open_audit(self, order: LabelPrinted) -> AuditOpened: ...


class Reconcile(Participant):
    @action
    @abstractmethod
    def reconcile(self, payment: PaymentCaptured, audit: AuditOpened) -> Shipped: ...


#: `incomplete-join`: PaymentCaptured comes in flows started by OrderPlaced, AuditOpened in
#: flows started by LabelPrinted; no instance ever has both.
INCOMPLETE_JOIN = [Payments, Audits, Reconcile]


class Reserve(Command, type_name="tests.observe.broken:Reserve"):
    order_id: str


class Reserved(Event, type_name="tests.observe.broken:Reserved"):
    order_id: str


class Orders(Participant):
    @action
    @abstractmethod
    def ask(self, order: OrderPlaced) -> Reserve: ...

    @ask.compensation
    @abstractmethod
    def withdraw(self, order: OrderPlaced) -> None: ...


class Warehouse(Participant):
    @action
    @abstractmethod
    def reserve(self, command: Reserve) -> Reserved: ...


class Backup(Participant):
    @action
    @abstractmethod
    def reserve_too(self, command: Reserve) -> None: ...


#: `command-handlers`: Reserve is handled twice; or, without the warehouses, by nobody.
TWO_HANDLERS = [Orders, Warehouse, Backup]
NO_HANDLER = [Orders]


class FraudScored(Event, type_name="tests.observe.broken:FraudScored"):
    order_id: str
    score: int


class Receipted(Event, type_name="tests.observe.broken:Receipted"):
    order_id: str


class ScoringPayments(Participant):
    @action
    @abstractmethod
    def charge(self, order: OrderPlaced) -> tuple[PaymentCaptured, FraudScored]: ...

    @charge.compensation
    @abstractmethod
    def refund(self, order: OrderPlaced) -> None: ...


class Receipts(Participant):
    @action
    @abstractmethod
    def receipt(self, payment: PaymentCaptured) -> Receipted: ...

    @receipt.compensation
    @abstractmethod
    def void(self, receipt: Receipted) -> None: ...


class Archive(Participant):
    @action
    @abstractmethod
    def archive(self, receipt: Receipted) -> None: ...


#: `unconsumed-event`: the fraud score is produced mid-flow and nobody reads it.
UNCONSUMED = [ScoringPayments, Receipts, Archive]


class WelcomeSent(Event, type_name="tests.observe.broken:WelcomeSent"):
    order_id: str
    customer_id: str
    amount_cents: int


class Emails(Participant):
    @action
    @abstractmethod
    def welcome(self, order: OrderPlaced, ctx: Context) -> WelcomeSent: ...


class LatePayments(Participant):
    @action
    @abstractmethod
    def charge(self, welcome: WelcomeSent) -> PaymentCaptured: ...

    @charge.compensation
    @abstractmethod
    def refund(self, payment: PaymentCaptured) -> None: ...


#: `irreversible-before-failure`: the email cannot be unsent, and the charge after it may fail.
IRREVERSIBLE = [Emails, LatePayments]


class EmailFirst(Orchestrator[OrderPlaced, PaymentCaptured], name="tests-email-first"):
    steps = (step(Emails.welcome), step(LatePayments.charge))


class FraudChecked(Event, type_name="tests.observe.broken:FraudChecked"):
    order_id: str


class Capture(Participant):
    @action(pivot=True)
    @abstractmethod
    def capture(self, order: OrderPlaced) -> PaymentCaptured: ...


class Fraud(Participant):
    @action
    @abstractmethod
    def check(self, order: OrderPlaced) -> FraudChecked: ...

    @check.compensation
    @abstractmethod
    def clear(self, checked: FraudChecked) -> None: ...


#: `pivot-in-parallel`: the capture is the point of no return, yet the fraud check runs
#: beside it, so whether the check is undone would depend on which finished first.
PIVOT_BESIDE = [Capture, Fraud]


class Counted(Event, type_name="tests.observe.broken:Counted"):
    order_id: str


class Counters(Participant):
    @action
    @abstractmethod
    def count(self, order: OrderPlaced) -> Counted: ...

    @count.compensation
    @abstractmethod
    def uncount(self, order: OrderPlaced) -> None: ...


class Totals(Participant):
    @action
    @abstractmethod
    def total(self, counted: tuple[Counted, ...]) -> None: ...


#: `unfanned-gather`: Totals.total gathers every Counted, but Counted comes one at a time.
UNFANNED_GATHER = [Counters, Totals]
