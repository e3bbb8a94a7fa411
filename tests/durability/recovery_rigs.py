"""Rigs for the recovery defect tests: flows whose effects land in a ledger that survives kill -9.

A child process (`main(["SCENARIO", STORE, LEDGER, VARIANT])`, see `child()`) runs a flow against
a SQLite store and is SIGKILLed at a chosen point; the test process then recovers it as the
fresh process it is, and reads what was applied and undone from the ledger, another SQLite
file the participants write in their own transactions:

- `fork MODE`: a charge, then a parallel generation where one branch (`Stock.reserve`) is
  refused at once while its sibling (`Couriers.hold`) applied its effect and still runs; the
  child prints `ready` once the refusal is recorded, and blocks until it is killed. `MODE` is
  `sync` (run(): the generation runs on worker threads, as one branch has a timeout) or
  `async` (run_async()).
- `late POINT`: a charge whose only attempt times out; the run compensates and ends
  COMPENSATED; then the abandoned attempt charges after all, and the late result's refund
  kills its process (`POINT`: `before` or `after` the refund is applied).
- `choreography POINT`: the e-commerce choreography (tests.crash.shop), killed at its last
  action: `inside` it, `returned` (after it returned, before its record is committed) or
  `committed` (right after that commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.choreography import Choreography, EventBus
from coordination.orchestration import Orchestrator, parallel, step
from coordination.stores import SQLiteStore, StepOutcome
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)

if TYPE_CHECKING:
    from coordination.stores import Write

WORKFLOW = "o-1"
LAST_ACTION = "Notifications.send_confirmation"

# -- the ledger ------------------------------------------------------------------------------

_LEDGER = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    workflow TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS undos (
    key TEXT PRIMARY KEY,
    effect TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    action TEXT NOT NULL
);
"""


class Ledger:
    """Effects applied once per idempotency key; undone once per undo key, counted.

    `undone` counts the distinct undo keys that undid an effect: an effect undone twice
    (say by a late result's undo and again by its step's) shows 2. Every call is counted in
    `executions`, re-runs after a kill included.
    """

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA busy_timeout = 5000")
        self.connection.executescript(_LEDGER)
        self.lock = threading.Lock()

    def apply(self, ctx: Context, action_name: str) -> None:
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "INSERT INTO executions (key, action) VALUES (?, ?)",
                (ctx.idempotency_key, action_name),
            )
            self.connection.execute(
                "INSERT OR IGNORE INTO effects (key, action, workflow) VALUES (?, ?, ?)",
                (ctx.idempotency_key, action_name, ctx.correlation_id),
            )
            self.connection.execute("COMMIT")

    def undo(self, ctx: Context, effect: str, action_name: str) -> None:
        """Undo `effect` (a forward key) under the undo's own key, once per key."""
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "INSERT INTO executions (key, action) VALUES (?, ?)",
                (ctx.idempotency_key, action_name),
            )
            new = self.connection.execute(
                "INSERT OR IGNORE INTO undos (key, effect, action) VALUES (?, ?, ?)",
                (ctx.idempotency_key, effect, action_name),
            ).rowcount
            if new:
                self.connection.execute(
                    "UPDATE effects SET undone = undone + 1 WHERE key = ?", (effect,)
                )
            self.connection.execute("COMMIT")

    def effects(self) -> dict[str, int]:
        """Forward key -> how many undo keys undid it."""
        rows = self.connection.execute("SELECT key, undone FROM effects ORDER BY key")
        return dict(rows.fetchall())

    def undos(self) -> dict[str, str]:
        """Undo key -> the forward key it undid."""
        rows = self.connection.execute("SELECT key, effect FROM undos ORDER BY key")
        return dict(rows.fetchall())

    def executions(self, key: str) -> int:
        (count,) = self.connection.execute(
            "SELECT COUNT(*) FROM executions WHERE key = ?", (key,)
        ).fetchone()
        assert isinstance(count, int)
        return count

    def close(self) -> None:
        self.connection.close()


def kill_me() -> None:
    """SIGKILL this process: no handler, no cleanup, no flush of anything."""
    os.kill(os.getpid(), signal.SIGKILL)


# -- messages and interfaces -----------------------------------------------------------------


class Order(Event, type_name="recovery.Order"):
    order_id: str


class Charged(Event, type_name="recovery.Charged"):
    order_id: str
    #: The charge's idempotency key: what a refund undoes, whichever key the refund runs under.
    charge_key: str


class Refunded(Event, type_name="recovery.Refunded"):
    order_id: str


class Reserved(Event, type_name="recovery.Reserved"):
    order_id: str


class Held(Event, type_name="recovery.Held"):
    order_id: str


class OutOfStock(NonRetryable):
    """A refusal: never retried."""


class Cards(Participant):
    @action
    @abstractmethod
    def charge(self, order: Order, ctx: Context) -> Charged: ...

    @charge.compensation
    @abstractmethod
    def refund(self, charged: Charged, ctx: Context) -> Refunded: ...


class Stock(Participant):
    @action
    @abstractmethod
    def reserve(self, charged: Charged, ctx: Context) -> Reserved: ...


class Couriers(Participant):
    """Undone by its input: `release` runs for every hold that started, failed or not."""

    @action
    @abstractmethod
    def hold(self, charged: Charged, ctx: Context) -> Held: ...

    @hold.compensation
    @abstractmethod
    def release(self, charged: Charged, ctx: Context) -> None: ...


class LedgerCards(Cards):
    """Charges into the ledger. `late`: block each charge until it is set (then charge);
    `die`: kill the process inside the refund, `before` or `after` it is applied."""

    def __init__(
        self, ledger: Ledger, *, late: threading.Event | None = None, die: str | None = None
    ) -> None:
        self.ledger = ledger
        self.late = late
        self.die = die

    def charge(self, order: Order, ctx: Context) -> Charged:
        if self.late is not None:
            assert self.late.wait(30), "never let go"
        self.ledger.apply(ctx, "charge")
        return Charged(order_id=order.order_id, charge_key=ctx.idempotency_key)

    def refund(self, charged: Charged, ctx: Context) -> Refunded:
        if self.die == "before":
            kill_me()
        self.ledger.undo(ctx, charged.charge_key, "refund")
        if self.die == "after":
            kill_me()
        return Refunded(order_id=charged.order_id)


class RefusingStock(Stock):
    def reserve(self, charged: Charged, ctx: Context) -> Reserved:
        raise OutOfStock(f"nothing left for {charged.order_id}")


class LedgerCouriers(Couriers):
    """Holds a courier in the ledger. `stall`: the store file whose run to watch; the hold
    then waits, its effect applied, until its sibling's refusal is recorded there, says
    `ready` on stdout and blocks (its process is killed meanwhile)."""

    def __init__(self, ledger: Ledger, *, stall: Path | None = None) -> None:
        self.ledger = ledger
        self.stall = stall

    def hold(self, charged: Charged, ctx: Context) -> Held:
        self.ledger.apply(ctx, "hold")
        if self.stall is not None:
            wait_for_step(self.stall, ctx.correlation_id, "Stock.reserve")
            print("ready", flush=True)
            threading.Event().wait()
        return Held(order_id=charged.order_id)

    def release(self, charged: Charged, ctx: Context) -> None:
        self.ledger.undo(ctx, ctx.idempotency_key.removesuffix(":undo"), "release")


def wait_for_step(store: Path, workflow_id: str, key: str) -> None:
    """Poll the store file (read-only, raw SQL) until `key`'s record of the run is committed."""
    reader = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                found = reader.execute(
                    "SELECT 1 FROM steps WHERE workflow_id = ? AND key = ?", (workflow_id, key)
                ).fetchone()
            except sqlite3.OperationalError:  # not created yet, or busy: look again
                found = None
            if found:
                return
            time.sleep(0.005)
        raise AssertionError(f"{key} of {workflow_id} was never recorded")
    finally:
        reader.close()


# -- flows -----------------------------------------------------------------------------------


class ForkRelease(Orchestrator[Order, tuple[Reserved, Held]], name="recovery-fork"):
    """A charge, then a refused reserve beside a hold undone by its input. The reserve's
    timeout puts the generation on worker threads under run()."""

    steps = (
        step(Cards.charge),
        parallel(step(Stock.reserve, timeout=10.0), step(Couriers.hold)),
    )


class LateCharge(Orchestrator[Order, Charged], name="recovery-late"):
    """One charge whose only attempt may run 0.1 s: a slow one fails the step."""

    steps = (step(Cards.charge, timeout=0.1, retry=Retry(attempts=1)),)


def fork(store: SQLiteStore, ledger: Ledger) -> ForkRelease:
    return ForkRelease(LedgerCards(ledger), RefusingStock(), LedgerCouriers(ledger), store=store)


def shop_choreography(store: SQLiteStore, effects: Effects) -> Choreography:
    """The e-commerce choreography of tests.crash.shop's durable participants."""
    return Choreography(
        EventBus(),
        DurablePayments(effects),
        DurableLogistics(effects),
        DurableSellers(effects),
        DurableNotifications(effects),
        store=store,
    )


class KillingStore(SQLiteStore):
    """A SQLite store that SIGKILLs its process around the commit of the last action's record:
    `returned` just before it (the action returned), `committed` right after it."""

    def __init__(self, path: Path, point: str) -> None:
        super().__init__(path)
        self.point = point

    def write(self, write: Write) -> None:
        last = any(
            record.key == LAST_ACTION and record.outcome is StepOutcome.COMPLETED
            for record in write.records
        )
        if last and self.point == "returned":
            kill_me()
        super().write(write)
        if last and self.point == "committed":
            kill_me()


# -- the child process -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("fork", "late", "choreography"))
    parser.add_argument("store", type=Path)
    parser.add_argument("ledger", type=Path)
    parser.add_argument("variant")
    args = parser.parse_args(argv)
    scenarios = {"fork": _fork, "late": _late, "choreography": _choreography}
    scenarios[args.scenario](args.store, args.ledger, args.variant)
    print("not killed", flush=True)
    return 1


def _fork(store: Path, ledger_path: Path, mode: str) -> None:
    ledger = Ledger(ledger_path)
    couriers = LedgerCouriers(ledger, stall=store)
    flow = ForkRelease(LedgerCards(ledger), RefusingStock(), couriers, store=SQLiteStore(store))
    order = Order(order_id=WORKFLOW)
    if mode == "async":
        asyncio.run(flow.run_async(order, workflow_id=WORKFLOW))
    else:
        flow.run(order, workflow_id=WORKFLOW)


def _late(store: Path, ledger_path: Path, point: str) -> None:
    landed = threading.Event()
    cards = LedgerCards(Ledger(ledger_path), late=landed, die=point)
    run = LateCharge(cards, store=SQLiteStore(store)).run(
        Order(order_id=WORKFLOW), workflow_id=WORKFLOW
    )
    print(run.status.name, flush=True)
    landed.set()  # the abandoned charge lands now; its refund kills this process
    time.sleep(10)


def _choreography(store: Path, effects_path: Path, point: str) -> None:
    inside = point == "inside"
    effects = Effects(effects_path, die_in="send_confirmation" if inside else None)
    kept = SQLiteStore(store) if inside else KillingStore(store, point)
    shop_choreography(kept, effects).publish(order_for(0), correlation_id="order-0")


def child(scenario: str, store: Path, ledger: Path, variant: str) -> list[str]:
    """The command line of a child process running `scenario` (imported, never __main__, so
    its messages and flows are the same classes in every process)."""
    code = "import sys; from tests.durability.recovery_rigs import main; sys.exit(main())"
    return [sys.executable, "-c", code, scenario, str(store), str(ledger), variant]
