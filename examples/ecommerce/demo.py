"""The bundled demo: the same two orders, run as an orchestration and then as a choreography.

The first order goes through although the payment gateway times out once (the charge is
retried); the second asks for more than the seller has, so what was already done is undone:
the courier released, the payment refunded. Each mode runs on a fresh shop built from the
same in-memory service classes, unchanged. Everything printed is read from the runs, the
process monitor and the services' own state; nothing is canned.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coordination import EntryKind, Journal, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import StepFailed
from coordination.stores import StepOutcome

from .flow import PlaceOrder
from .loyalty import LoyaltyProgram
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

#: The two orders, the same in both modes.
GOOD_ORDER = OrderPlaced(
    order_id="o-1",
    customer_id="alice",
    email="alice@example.com",
    sku="book",
    quantity=1,
    amount_cents=2_500,
    address="1 High Street",
)
SHORT_ORDER = GOOD_ORDER.model_copy(
    update={"order_id": "o-2", "quantity": 5, "amount_cents": 7_500}
)


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


def _fill(head: str, parts: list[str]) -> str:
    """`head` then `parts` joined by `; `, wrapped under the first part, never inside an item."""
    pieces: list[str] = []
    for part in parts:
        items = part.split(", ")
        pieces += [item + "," for item in items[:-1]] + [items[-1] + ";"]
    pieces[-1] = pieces[-1].rstrip(";")
    lines, line = [], head + pieces[0]
    for piece in pieces[1:]:
        if len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line = " " * len(head) + piece
        else:
            line += " " + piece
    return "\n".join([*lines, line])


def _label(text: str) -> None:
    """A label over what follows it, after a blank line."""
    print()
    print(text)


def _indented(text: str) -> None:
    for line in text.splitlines():
        print(f"    {line}")


# -- the shop --------------------------------------------------------------------------------


class Shop:
    """The four in-memory services, fresh: each mode starts from the same state."""

    def __init__(self) -> None:
        self.payments = InMemoryPayments({"alice": 10_000})
        self.sellers = InMemorySellers({"book": 3})
        self.logistics = InMemoryLogistics(["courier-1", "courier-2"])
        self.notifications = InMemoryNotifications()

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

    def confirmation(self, order_id: str) -> ConfirmationSent | None:
        """The email Notifications sent for `order_id`, if any."""
        sent = [c for c in self.notifications.outbox.values() if c.order_id == order_id]
        return sent[0] if sent else None


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


def _print_same_state(after: Snapshot, orchestrated: Snapshot) -> None:
    """Each service's state, side by side with what the orchestrated run left."""
    for service, state in after.items():
        now = "; ".join(f"{key} {_value(value)}" for key, value in state.items())
        same = "same" if state == orchestrated[service] else "DIFFERENT from orchestration"
        print(f"    {service:<14} {same}: {now}")


# -- outcomes, read off a run or a process view ----------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one order came to in one mode, for the summary and the checks."""

    mode: str
    correlation_id: str
    status: WorkflowStatus
    journal: Journal
    failure: str | None  #: `Sellers.reserve_stock failed (OutOfStock)`
    confirmation: ConfirmationSent | None
    state: Snapshot  #: the services after the order
    restored: bool  #: every service is as it was before the order
    points: int | None = None  #: loyalty points the order earned (choreography only)

    def retried(self) -> list[str]:
        """`Payments.charge after TimeoutError` for each retry."""
        failures = {
            (entry.name, entry.attempt): entry.error
            for entry in self.journal.of_kind(EntryKind.FAILED)
        }
        return [
            f"{entry.name} after "
            + (failures.get((entry.name, entry.attempt - 1)) or "an error").partition(":")[0]
            for entry in self.journal.of_kind(EntryKind.RETRIED)
        ]

    def undone(self) -> list[str]:
        """`Payments.charge (by refund)` for each completed undo, in the order they ran."""
        return [
            f"{entry.undoes} (by {entry.action})"
            for entry in self.journal.of_kind(EntryKind.COMPENSATED)
        ]

    def summary(self) -> str:
        """A few lines: status, the outcome, what was retried, what was undone."""
        parts = [self.status.name]
        if self.confirmation is not None:
            parts.append(f"tracking number {self.confirmation.tracking_number}")
        if self.failure:
            parts.append(self.failure)
        retried = self.retried()
        if retried:
            parts.append("retried " + ", ".join(retried))
        undone = self.undone()
        parts.append("undone: " + ", ".join(undone) if undone else "nothing undone")
        if self.points:
            parts.append(f"loyalty {self.points:+d} points")
        elif self.points is not None:
            parts.append("no loyalty points")
        return _fill(f"    {self.correlation_id}  {self.mode:<13}  ", parts)


# -- part 1: orchestration -------------------------------------------------------------------


def _flow_outline() -> list[str]:
    """One line per group of steps, read off the compiled flow."""
    lines = []
    for number, group in enumerate(PlaceOrder.plan.generations, start=1):
        names = " + ".join(member.key for member in group)
        lines.append(f"    {number}. {names}" + ("   (side by side)" if len(group) > 1 else ""))
    return lines


def orchestration(shop: Shop) -> tuple[Outcome, Outcome]:
    """Both orders through `PlaceOrder`, printing what happened."""
    orders = PlaceOrder(shop.payments, shop.sellers, shop.logistics, shop.notifications)
    _heading("Part 1: orchestration - PlaceOrder holds the sequence")
    _say(
        "PlaceOrder is an Orchestrator: a central brain that calls each service in turn, "
        "records every step in a journal, and undoes the completed steps when a later one "
        "fails (a saga). Its steps:"
    )
    for line in _flow_outline():
        print(line)

    policy = Payments.charge.retry
    _subheading("order-1: the payment gateway times out once, and the charge is retried")
    _say(
        f"Alice orders {GOOD_ORDER.quantity} x {GOOD_ORDER.sku} for "
        f"{GOOD_ORDER.amount_cents} cents. We tell the payment service to fail its next "
        f"charge with a TimeoutError. Payments.charge declares Retry(attempts="
        f"{policy.attempts}, backoff={policy.backoff}), so the orchestrator waits a moment and "
        f"charges again with the same idempotency key (a charge that had landed would not be "
        f"repeated). The order then completes. Its timeline (run.journal):"
    )
    shop.payments.fail("charge", TimeoutError("gateway timeout"))
    before = shop.snapshot()
    run = orders.run(GOOD_ORDER, workflow_id="order-1")
    _indented(run.journal.render())
    output = run.output
    _label("What the last step returned (run.output):")
    if output is not None:
        print(f"    {type(output).__name__}: {_value(output.model_dump())}")
    else:
        print(f"    none: {run.error}")
    _label("Services after the order (compared with before it):")
    after = shop.snapshot()
    _print_state(after, before)
    good = Outcome(
        "orchestration", run.workflow_id, run.status, run.journal, None,
        output, after, after == before,
    )  # fmt: skip

    in_stock = shop.sellers.stock.get(SHORT_ORDER.sku, 0)
    _subheading("order-2: out of stock, so the orchestrator undoes what was done")
    _say(
        f"Alice now orders {SHORT_ORDER.quantity} x {SHORT_ORDER.sku}, but the seller has "
        f"{in_stock} left. The charge succeeds and a courier is assigned, then reserving "
        f"stock fails with OutOfStock, a NonRetryable refusal (retrying cannot help). The "
        f"orchestrator runs the compensations of the completed steps, newest first: it "
        f"releases the courier, then refunds the payment. Its timeline:"
    )
    before = shop.snapshot()
    run = orders.run(SHORT_ORDER, workflow_id="order-2")
    _indented(run.journal.render())
    _label("Why it stopped (run.error):")
    print(f"    {run.error}")
    _label("What the compensations returned (run.steps):")
    for record in run.steps:
        if record.outcome is StepOutcome.COMPENSATED:
            message = record.output
            print(f"    {record.key:<30} {type(message).__name__}: {_value(message.model_dump())}")
    _label("Services after the order (compared with before it):")
    after = shop.snapshot()
    _print_state(after, before)
    failure = None
    error = run.error
    if isinstance(error, StepFailed):
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else "error"
        failure = f"{error.step} failed ({cause})"
    short = Outcome(
        "orchestration", run.workflow_id, run.status, run.journal, failure,
        run.output, after, after == before,
    )  # fmt: skip
    _restored(short)
    return good, short


def _restored(outcome: Outcome) -> None:
    print()
    print(
        "    Every service is back where it was before this order."
        if outcome.restored
        else "    NOT restored: some effect of this order is still in place."
    )


# -- part 2: choreography --------------------------------------------------------------------


def _wiring(flow: Choreography) -> list[str]:
    """What each action reacts to and publishes, read off the participants' signatures."""
    width = max(len(node.key) for node in flow.graph.nodes) + 2
    lines = []
    for node in flow.graph.nodes:
        inputs = " + ".join(t.__name__ for t in node.signature.inputs)
        outputs = " + ".join(t.__name__ for t in node.signature.outputs) or "nothing"
        lines.append(f"    {node.key:<{width}} reacts to  {inputs}")
        lines.append(f"    {'':<{width}} publishes  {outputs}")
    return lines


def _loyalty_moves(loyalty: LoyaltyProgram, order_id: str) -> None:
    moves = [move for move in loyalty.ledger if move.order_id == order_id]
    for move in moves:
        print(f"    {move.points:+d} points for {move.customer_id} ({move.reason})")
    if not moves:
        refund = f"saw the refund of {order_id}; " if order_id in loyalty.refunded else ""
        print(f"    {refund}{order_id} had earned no points, so none were taken back")
    print(f"    points now: {_value(loyalty.snapshot()['points'])}")


def choreography(shop: Shop, orchestrated: tuple[Outcome, Outcome]) -> tuple[Outcome, Outcome]:
    """Both orders through a `Choreography` of the same services, printing what happened."""
    bus = EventBus()
    flow = Choreography(bus, shop.payments, shop.logistics, shop.sellers, shop.notifications)
    loyalty = LoyaltyProgram()
    loyalty.subscribe(bus)
    _heading("Part 2: choreography - nobody holds the sequence")
    _say(
        "Choreography(EventBus(), payments, logistics, sellers, notifications) takes the same "
        "service classes, unchanged, on a fresh shop. It subscribes each action to the "
        "messages its parameters name and publishes what it returns; an action that needs "
        "several messages waits until all have come for the same order. No step list: "
        "the order of work follows from the messages."
    )
    for line in _wiring(flow):
        print(line)
    print()
    _say(
        "A LoyaltyProgram also listens on the bus. It is no participant and no service knows "
        "about it: it awards points on ConfirmationSent and takes them back on "
        "PaymentRefunded. (Under orchestration, PlaceOrder would need a new step.)"
    )

    outcomes = []
    for order, earlier in zip((GOOD_ORDER, SHORT_ORDER), orchestrated, strict=True):
        correlation_id = earlier.correlation_id
        if order is GOOD_ORDER:
            _subheading(f"{correlation_id}: the same order, the same gateway timeout")
            _say(
                "The caller publishes OrderPlaced. Payments.charge fails once and is "
                "retried as a delayed re-delivery: the bus waits out the backoff (it would "
                "deliver anything else queued meanwhile), then delivers OrderPlaced to it "
                "again, with the same idempotency key. flow.publish() returns when everything "
                "the order caused has settled."
            )
            shop.payments.fail("charge", TimeoutError("gateway timeout"))
        else:
            _subheading(f"{correlation_id}: the same order, out of stock")
            _say(
                "Sellers.reserve_stock fails, so the choreography publishes ActionFailed, "
                "stops forward work for this order and undoes what completed, newest first. "
                "Compensations are subscribed to nothing: only the choreography calls them. "
                "Their outputs are published like any event, so the loyalty programme sees "
                "the refund."
            )
        before = shop.snapshot()
        flow.publish(order, correlation_id=correlation_id)
        view = flow.monitor.get(correlation_id)
        _label(f'What the process monitor shows (flow.monitor.get("{correlation_id}").render()):')
        _indented(view.render())
        _label("The loyalty programme (loyalty.ledger):")
        _loyalty_moves(loyalty, order.order_id)
        _label("Services after the order (compared with orchestration after the same order):")
        after = shop.snapshot()
        _print_same_state(after, earlier.state)
        failure = None
        if view.failure and view.failed:
            cause = view.failure.partition(": ")[2].partition(":")[0]
            failure = f"{view.failed[0]} failed ({cause})"
        points = sum(move.points for move in loyalty.ledger if move.order_id == order.order_id)
        outcome = Outcome(
            "choreography", correlation_id, view.status, view.journal, failure,
            shop.confirmation(order.order_id), after, after == before,
            points,
        )  # fmt: skip
        if order is SHORT_ORDER:
            _restored(outcome)
        outcomes.append(outcome)
    return outcomes[0], outcomes[1]


# -- the whole demo --------------------------------------------------------------------------


def _same_outcome(first: Outcome, second: Outcome) -> bool:
    """One order ended the same way in both modes, leaving the services in the same state."""
    return (
        first.status is second.status
        and first.state == second.state
        and first.confirmation == second.confirmation
        and first.undone() == second.undone()
    )


def _as_described(orchestrated: tuple[Outcome, ...], choreographed: tuple[Outcome, ...]) -> bool:
    """Did both orders end as the text says, in both modes, with the same outcome?"""
    checks = []
    for good, short in (orchestrated, choreographed):
        tracking = good.confirmation.tracking_number if good.confirmation is not None else ""
        checks += [
            good.status is WorkflowStatus.COMPLETED,
            tracking.startswith("TRK-"),
            bool(good.retried()),
            short.status is WorkflowStatus.COMPENSATED,
            short.restored,
            len(short.undone()) == 2,
        ]
    checks += map(_same_outcome, orchestrated, choreographed)
    good_points, short_points = (outcome.points for outcome in choreographed)
    checks += [good_points is not None and good_points > 0, short_points == 0]
    return all(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 when every order ended as the demo explains, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.ecommerce",
        description=(
            "Run the bundled e-commerce flow with in-memory services, as an orchestration "
            "and as a choreography: one order that completes after a retried payment, one "
            "that runs out of stock and is compensated."
        ),
    )
    parser.add_argument(
        "--db",
        type=Path,
        help="store the orders in this SQLite file instead: interrupt and run again to see "
        "unfinished orders recovered",
    )
    parser.add_argument("--orders", type=int, default=8, help="with --db: how many orders")
    parser.add_argument(
        "--pace", type=float, default=0.3, help="with --db: seconds each step takes"
    )
    args = parser.parse_args(argv)
    if args.db is not None:
        from .durable import run_durable

        return run_durable(args.db, orders=args.orders, pace=args.pace)

    _heading("coordination demo: one order flow, run two ways")
    _say(
        "An online shop: for each order, Payments charges the customer, Logistics assigns a "
        "courier, Sellers keep the shipment ready, and Notifications emails a confirmation "
        "with the tracking number. The services are in-memory fakes that really keep state. "
        "We run the same two orders twice, each time on a fresh shop in this state:"
    )
    _print_state(Shop().snapshot())
    print()
    print(
        f"    order-1: {GOOD_ORDER.quantity} x {GOOD_ORDER.sku}; the payment gateway times out once"
    )
    print(f"    order-2: {SHORT_ORDER.quantity} x {SHORT_ORDER.sku}; more than the seller has left")
    print()
    _say(
        "First as an orchestration (a central PlaceOrder calls each service), then as a "
        "choreography (each service reacts to events on a bus)."
    )

    orchestrated = orchestration(Shop())
    choreographed = choreography(Shop(), orchestrated)

    _heading("What differs, and what does not")
    _say(
        "Who holds the sequence. Under orchestration, PlaceOrder knows every step and "
        "calls each service in turn; its run is where you ask how an order stands. Under "
        "choreography, no one does: each service knows only its trigger and its result, "
        "so a new one (the loyalty programme) joins without touching the others, and the "
        "process monitor rebuilds each order's progress from the journal - the unseen "
        "orchestrator, made visible."
    )
    print()
    same = all(map(_same_outcome, orchestrated, choreographed))
    _say(
        "The outcome is the same: in both modes each order reached the same status, the "
        "same work was undone in the same order, and every service ended in the same state."
        if same
        else "The outcomes DIFFER between the two modes (see above)."
    )

    _heading("Summary")
    for first, second in zip(orchestrated, choreographed, strict=True):
        print(first.summary())
        print(second.summary())
    print()
    if _as_described(orchestrated, choreographed):
        _say(
            "The code of this flow is in examples/ecommerce/; docs/orchestration.md and "
            "docs/choreography.md explain both runners."
        )
        return 0
    print("The demo did not end as described above: please report this as a bug.")
    return 1
