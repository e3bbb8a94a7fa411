"""A three-step order flow for the process tests: charge, pack, ship, each effect a keyed row.

Every effect goes through `tests.crash.shop.Effects` (an SQLite ledger keyed by
`ctx.idempotency_key`, with a count of executions), so a test can tell how often each
action ran and whether an effect was undone. A `Gate` makes a named action wait inside
itself until the test says go, so a process can be stopped, killed or read from while it
holds a run.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.orchestration import Orchestrator, step
from tests.crash.shop import Effects, step_key


class Ordered(Event, type_name="durability.Ordered"):
    order_id: str


class Charged(Event, type_name="durability.Charged"):
    order_id: str


class Refunded(Event, type_name="durability.Refunded"):
    order_id: str


class Packed(Event, type_name="durability.Packed"):
    order_id: str
    note: str = ""  # made bulky (pages of it) where a test needs a write to need space


class Unpacked(Event, type_name="durability.Unpacked"):
    order_id: str


class Shipped(Event, type_name="durability.Shipped"):
    order_id: str


class KeyInFlight(NonRetryable):
    """The provider saw this idempotency key from another request: it refuses this one."""


class Refused(NonRetryable):
    """A business refusal (the flow compensates)."""


ONCE = Retry(attempts=1)


class Bank(Participant):
    @action
    @abstractmethod
    def charge(self, order: Ordered, ctx: Context) -> Charged: ...

    @charge.compensation(retry=ONCE)
    @abstractmethod
    def refund(self, charged: Charged, ctx: Context) -> Refunded: ...


class Depot(Participant):
    @action
    @abstractmethod
    def pack(self, charged: Charged, ctx: Context) -> Packed: ...

    @pack.compensation(retry=ONCE)
    @abstractmethod
    def unpack(self, packed: Packed, ctx: Context) -> Unpacked: ...


class Courier(Participant):
    @action
    @abstractmethod
    def ship(self, packed: Packed, ctx: Context) -> Shipped: ...


class Checkout(Orchestrator[Ordered, Shipped], name="durability-checkout"):
    steps = (step(Bank.charge), step(Depot.pack), step(Courier.ship))


class Gate:
    """Where the participants of one process wait, misbehave, or fill the disk.

    `block`: actions that, once entered, touch `<folder>/entered-<action>-<correlation>`
    and wait for `<folder>/<go>`; `after`: actions that do so once their effect is applied
    (`applied-...`), before they return. `refuse_seen`: blocked actions refuse
    (`KeyInFlight`) a key another execution applied meanwhile, as payment providers do.
    `fail`: actions (or undos) that raise once; `refuse`: forward actions that always
    refuse. `pause`: seconds each forward action takes (to widen races).
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        block: frozenset[str] = frozenset(),
        after: frozenset[str] = frozenset(),
        go: str = "go",
        refuse_seen: bool = False,
        fail: frozenset[str] = frozenset(),
        refuse: frozenset[str] = frozenset(),
        pause: float = 0.0,
    ) -> None:
        self.folder = folder
        self.block = block
        self.after = after
        self.go = go
        self.refuse_seen = refuse_seen
        self.fail = set(fail)
        self.refuse = refuse
        self.pause = pause

    def wait_here(self, name: str, ctx: Context, waiting: frozenset[str], mark: str) -> None:
        if name not in waiting:
            return
        assert self.folder is not None
        (self.folder / f"{mark}-{name}-{ctx.correlation_id}").touch()
        deadline = time.monotonic() + 60
        while not (self.folder / self.go).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: nobody said go")
            time.sleep(0.005)

    def failing(self, name: str) -> None:
        if name in self.fail:
            self.fail.discard(name)
            raise RuntimeError(f"{name} failed")


class Shop:
    """The three participants of one process, over one effects ledger and one gate."""

    def __init__(
        self,
        effects: Effects,
        gate: Gate | None = None,
        *,
        hook: Callable[[str, Context], None] | None = None,
        bulky: bool = False,
    ) -> None:
        """`hook(action, ctx)` runs inside each forward action, before its effect; `bulky`:
        `pack` returns a 20 kB note, so recording it needs new pages."""
        self.effects = effects
        self.gate = gate or Gate()
        self.hook = hook
        self.bulky = bulky

    def applied(self, key: str) -> bool:
        with self.effects.lock:
            row = self.effects.connection.execute(
                "SELECT 1 FROM effects WHERE key = ?", (key,)
            ).fetchone()
        return row is not None

    def forward(self, name: str, ctx: Context) -> None:
        gate = self.gate
        if gate.pause:
            time.sleep(gate.pause)
        gate.wait_here(name, ctx, gate.block, "entered")
        if name in gate.refuse:
            raise Refused(f"{name} refused")
        gate.failing(name)
        if self.hook is not None:
            self.hook(name, ctx)
        if gate.refuse_seen and name in gate.block and self.applied(ctx.idempotency_key):
            raise KeyInFlight(f"{ctx.idempotency_key} was applied by another request")
        self.effects.apply(ctx, name)
        gate.wait_here(name, ctx, gate.after, "applied")

    def backward(self, name: str, ctx: Context) -> None:
        self.gate.failing(name)
        self.effects.undo(step_key(ctx), name)

    def participants(self) -> tuple[Participant, ...]:
        return (LedgerBank(self), LedgerDepot(self), LedgerCourier(self))


class LedgerBank(Bank):
    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    def charge(self, order: Ordered, ctx: Context) -> Charged:
        self.shop.forward("charge", ctx)
        return Charged(order_id=order.order_id)

    def refund(self, charged: Charged, ctx: Context) -> Refunded:
        self.shop.backward("refund", ctx)
        return Refunded(order_id=charged.order_id)


class LedgerDepot(Depot):
    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    def pack(self, charged: Charged, ctx: Context) -> Packed:
        self.shop.forward("pack", ctx)
        return Packed(order_id=charged.order_id, note="n" * 20_000 if self.shop.bulky else "")

    def unpack(self, packed: Packed, ctx: Context) -> Unpacked:
        self.shop.backward("unpack", ctx)
        return Unpacked(order_id=packed.order_id)


class LedgerCourier(Courier):
    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    def ship(self, packed: Packed, ctx: Context) -> Shipped:
        self.shop.forward("ship", ctx)
        return Shipped(order_id=packed.order_id)
