"""The bundled demo: two orders through `PlaceOrder`, with in-memory services.

The first order goes through although the payment gateway times out once (the orchestrator
retries the charge); the second asks for more than the seller has, so the orchestrator undoes
what was already done: it releases the courier and refunds the payment. Everything printed
is read from the runs and from the services' own state, nothing is canned.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any, Protocol

from coordination import EntryKind, Journal
from coordination.errors import StepFailed
from coordination.orchestration import WorkflowRun
from coordination.stores import StepOutcome

from .flow import PlaceOrder
from .messages import ConfirmationSent, OrderPlaced
from .participants import Payments
from .services import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
)

__all__ = ["main"]

WIDTH = 88
Snapshot = dict[str, dict[str, Any]]


class _Service(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


# -- printing helpers ------------------------------------------------------------------------


def _heading(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def _subheading(title: str) -> None:
    print()
    print(f"-- {title} " + "-" * max(WIDTH - len(title) - 4, 3))


def _say(text: str) -> None:
    """Explanatory prose for the reader, wrapped."""
    print(textwrap.fill(text, WIDTH))


def _value(value: Any) -> str:
    """A snapshot value in a few words: `alice=7500`, `o-1, o-2` or `none`."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={_value(item)}" for key, item in value.items()) or "none"
    if isinstance(value, tuple) and value:
        head, *rest = value
        return f"{head} ({', '.join(str(item) for item in rest)})" if rest else str(head)
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value) or "none"
    return str(value)


# -- the shop --------------------------------------------------------------------------------


class Shop:
    """The four in-memory services and the orchestrator that runs orders across them."""

    def __init__(self) -> None:
        self.payments = InMemoryPayments({"alice": 10_000})
        self.sellers = InMemorySellers({"book": 3})
        self.logistics = InMemoryLogistics(["courier-1", "courier-2"])
        self.notifications = InMemoryNotifications()
        self.orders = PlaceOrder(self.payments, self.sellers, self.logistics, self.notifications)

    @property
    def services(self) -> dict[str, _Service]:
        return {
            "Payments": self.payments,
            "Sellers": self.sellers,
            "Logistics": self.logistics,
            "Notifications": self.notifications,
        }

    def snapshot(self) -> Snapshot:
        return {name: service.snapshot() for name, service in self.services.items()}


def _print_state(after: Snapshot, before: Snapshot | None = None) -> None:
    """Each service's state; with `before`, what changed (`was ...`) or `unchanged`."""
    for service, state in after.items():
        label = service
        for key, value in state.items():
            line = f"    {label:<14} {key:<9} {_value(value)}"
            if before is not None:
                old = before[service][key]
                line = f"{line:<58} " + ("(unchanged)" if old == value else f"(was {_value(old)})")
            print(line.rstrip())
            label = ""


def _print_timeline(journal: Journal) -> None:
    for entry in journal:
        print(f"    {entry}")


def _flow_outline() -> list[str]:
    """One line per group of steps, read off the compiled flow."""
    lines = []
    for number, group in enumerate(PlaceOrder.flow.groups, start=1):
        names = " + ".join(member.key for member in group)
        lines.append(f"    {number}. {names}" + ("   (side by side)" if len(group) > 1 else ""))
    return lines


def _retried(run: WorkflowRun[Any]) -> list[str]:
    """`Payments.charge after TimeoutError` for each retry in the run."""
    failures = {
        (entry.name, entry.attempt): entry.error for entry in run.journal.of_kind(EntryKind.FAILED)
    }
    retried = []
    for entry in run.journal.of_kind(EntryKind.RETRIED):
        cause = failures.get((entry.name, entry.attempt - 1)) or "an error"
        retried.append(f"{entry.name} after {cause.partition(':')[0]}")
    return retried


def _undone(run: WorkflowRun[Any]) -> list[str]:
    """`Payments.charge (by refund)` for each completed undo, in the order they ran."""
    return [
        f"{entry.undoes} (by {entry.action})"
        for entry in run.journal.of_kind(EntryKind.COMPENSATED)
    ]


def _summary(run: WorkflowRun[Any]) -> str:
    """One line: status, the outcome, what was retried, what was undone."""
    parts = [run.status.name]
    output = run.output
    if isinstance(output, ConfirmationSent):
        parts.append(f"tracking number {output.tracking_number}")
    error = run.error
    if isinstance(error, StepFailed):
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else "error"
        parts.append(f"{error.step} failed ({cause})")
    retried = _retried(run)
    if retried:
        parts.append("retried " + ", ".join(retried))
    undone = _undone(run)
    parts.append("undone: " + ", ".join(undone) if undone else "nothing undone")
    return f"{run.workflow_id}: " + "; ".join(parts)


# -- the two orders --------------------------------------------------------------------------


def _good_order(shop: Shop) -> tuple[WorkflowRun[ConfirmationSent], bool]:
    order = OrderPlaced(
        order_id="o-1",
        customer_id="alice",
        email="alice@example.com",
        sku="book",
        quantity=1,
        amount_cents=2_500,
        address="1 High Street",
    )
    policy = Payments.charge.retry
    _heading("Order 1: the payment gateway times out once, and the charge is retried")
    _say(
        f"Alice orders {order.quantity} x {order.sku} for {order.amount_cents} cents. We tell "
        f"the payment service to fail its next charge with a TimeoutError. Payments.charge "
        f"declares Retry(attempts={policy.attempts}, backoff={policy.backoff}), so the "
        f"orchestrator waits a moment and charges again with the same idempotency key (a "
        f"charge that had landed would not be repeated). The order then completes."
    )
    shop.payments.fail("charge", TimeoutError("gateway timeout"))
    before = shop.snapshot()
    run = shop.orders.run(order, workflow_id="order-1")

    _subheading("Timeline (run.journal: one line per thing that happened, in order)")
    _print_timeline(run.journal)
    _subheading("Output (run.output: what the last step returned)")
    output = run.output
    if output is not None:
        print(f"    {type(output).__name__}: {_value(output.model_dump())}")
    else:
        print(f"    none: {run.error}")
    _subheading("Services after the order (compared with before it)")
    _print_state(shop.snapshot(), before)
    ok = (
        output is not None
        and output.tracking_number.startswith("TRK-")
        and bool(run.journal.of_kind(EntryKind.RETRIED))
    )
    return run, ok


def _failing_order(shop: Shop) -> tuple[WorkflowRun[ConfirmationSent], bool]:
    in_stock = shop.sellers.stock.get("book", 0)
    order = OrderPlaced(
        order_id="o-2",
        customer_id="alice",
        email="alice@example.com",
        sku="book",
        quantity=in_stock + 3,
        amount_cents=7_500,
        address="1 High Street",
    )
    _heading("Order 2: out of stock, so the orchestrator undoes what was done")
    _say(
        f"Alice now orders {order.quantity} x {order.sku}, but the seller has {in_stock} left. "
        f"The charge succeeds and a courier is assigned, then reserving stock fails with "
        f"OutOfStock, a NonRetryable refusal (retrying cannot help). The orchestrator runs "
        f"the compensations of the completed steps, newest first: it releases the courier, "
        f"then refunds the payment."
    )
    before = shop.snapshot()
    run = shop.orders.run(order, workflow_id="order-2")

    _subheading("Timeline (run.journal)")
    _print_timeline(run.journal)
    _subheading("Why it stopped (run.error)")
    print(f"    {run.error}")
    _subheading("What the compensations returned (run.steps)")
    for record in run.steps:
        if record.outcome is StepOutcome.COMPENSATED:
            message = record.output
            print(f"    {record.key:<30} {type(message).__name__}: {_value(message.model_dump())}")
    _subheading("Services after the order (compared with before it)")
    after = shop.snapshot()
    _print_state(after, before)
    restored = after == before
    print()
    print(
        "    Every service is back where it was before this order."
        if restored
        else "    NOT restored: some effect of this order is still in place."
    )
    ok = restored and len(_undone(run)) == 2
    return run, ok


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 when both orders ended as the demo explains, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.ecommerce",
        description=(
            "Run the bundled e-commerce flow twice with in-memory services: one order that "
            "completes after a retried payment, one that is compensated."
        ),
    )
    parser.parse_args(argv)

    shop = Shop()
    _heading("coordination demo: an order flow run by an orchestrator")
    _say(
        "PlaceOrder is an Orchestrator: a central brain that calls each service in turn, "
        "records every step in a journal, and undoes the completed steps when a later one "
        "fails (a saga). Its steps:"
    )
    for line in _flow_outline():
        print(line)
    print()
    _say("The services are in-memory fakes that really keep state. At the start:")
    _print_state(shop.snapshot())

    good, good_ok = _good_order(shop)
    bad, bad_ok = _failing_order(shop)

    _heading("Summary")
    print(f"    {_summary(good)}")
    print(f"    {_summary(bad)}")
    print()
    if good_ok and bad_ok:
        _say(
            "The code of this flow is in examples/ecommerce/; docs/orchestration.md explains "
            "steps, retries, timeouts, compensations and idempotency."
        )
        return 0
    print("The demo did not end as described above: please report this as a bug.")
    return 1
