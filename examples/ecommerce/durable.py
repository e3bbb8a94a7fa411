"""The order flow against a SQLite file: interrupt it, run it again, and nothing is lost.

    python -m examples.ecommerce --db orders.db

Each order's progress is stored after every step. Kill the demo while it runs (Ctrl-C, or
`kill -9`) and run the same command again: it first recovers the orders a dead process
left unfinished (they finish, or are compensated), then goes on with the rest; orders
already done are not run again. The services here are in-memory, so their own state
starts fresh in each process: what survives is each order's progress, which is what the
orchestrator owns. (Real services make their effects idempotent with `ctx.idempotency_key`;
see docs/durability.md.)
"""

from __future__ import annotations

import time
from pathlib import Path

from coordination import Context, WorkflowStatus
from coordination.orchestration import WorkflowRun
from coordination.stores import SQLiteStore

from .flow import PlaceOrder
from .messages import (
    ConfirmationSent,
    CourierAssigned,
    OrderPlaced,
    PaymentCaptured,
    StockReserved,
)
from .services import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
)

__all__ = ["run_durable"]


class _Paced:
    pace = 0.0

    def _wait(self) -> None:
        if self.pace:
            time.sleep(self.pace)


class PacedPayments(_Paced, InMemoryPayments):
    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        self._wait()
        return super().charge(order, ctx)


class PacedSellers(_Paced, InMemorySellers):
    def reserve_stock(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> StockReserved:
        self._wait()
        return super().reserve_stock(order, payment, ctx)


class PacedLogistics(_Paced, InMemoryLogistics):
    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned:
        self._wait()
        return super().assign_courier(order, payment, ctx)


class PacedNotifications(_Paced, InMemoryNotifications):
    def send_confirmation(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent:
        self._wait()
        return super().send_confirmation(order, courier, stock, ctx)


def _order(index: int) -> OrderPlaced:
    # Every fourth order asks for more than any seller keeps per order: it is compensated.
    return OrderPlaced(
        order_id=f"o-{index}",
        customer_id="alice",
        email="alice@example.com",
        sku="book",
        quantity=50 if index % 4 == 3 else 1,
        amount_cents=1_000,
        address="1 Main St",
    )


def _line(run: WorkflowRun[ConfirmationSent], note: str) -> str:
    done = [s.key for s in run.steps if ":" not in s.key]
    undone = [s.key.removesuffix(":undo") for s in run.steps if s.key.endswith(":undo")]
    detail = f"steps done: {len(done)}"
    if undone:
        detail += f"; undone: {', '.join(undone)}"
    return f"    {run.workflow_id:<9} {run.status.name:<12} {note:<22} {detail}"


def run_durable(db: Path, *, orders: int = 8, pace: float = 0.3) -> int:
    """Recover what a killed run left, then run the remaining orders; 0 if all ended well."""
    pieces = (
        PacedPayments({"alice": 1_000_000}),
        PacedSellers({"book": 40}),
        PacedLogistics(f"courier-{i}" for i in range(orders)),
        PacedNotifications(),
    )
    for piece in pieces:
        piece.pace = pace
    print(f"coordination demo: {orders} orders stored in {db} (a step every ~{pace:g}s)")
    print("Interrupt it at any time (Ctrl-C or kill -9) and run the same command again.\n")
    with SQLiteStore(db) as store:
        place_order = PlaceOrder(*pieces, store=store)
        recovered = place_order.recover()
        if recovered:
            print("Recovered from an earlier, interrupted process:")
            for run in recovered:
                print(_line(run, "(resumed)"), flush=True)
            print()
        print("Orders:")
        ok = True
        for index in range(orders):
            workflow_id = f"order-{index}"
            before = store.get_run(workflow_id)
            finished_before = before is not None and before.status.finished
            run = place_order.run(_order(index), workflow_id=workflow_id)
            note = "(already done earlier)" if finished_before else ""
            print(_line(run, note), flush=True)
            expected = WorkflowStatus.COMPENSATED if index % 4 == 3 else WorkflowStatus.COMPLETED
            ok = ok and run.status is expected
    print("\nRun the same command again: every order comes back as recorded, none runs twice.")
    return 0 if ok else 1
