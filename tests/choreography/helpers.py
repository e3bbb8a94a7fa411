"""Shared helpers for the choreography tests.

`Rig` wires participants to a bus, both on one `VirtualClock` with a fixed jitter, so
retries never wait; `Recorder` keeps every delivery of a message type as an envelope;
`Shop` is the e-commerce example's services under a choreography; `Slow` holds attempts on
a `threading.Event`. A few extra participants (joins with a context, an input-undone action
that retries, an action with a short timeout) complete the ones in tests/orchestration.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from coordination import Context, Envelope, Event, Participant, Retry, action
from coordination.choreography import Choreography, EventBus, ProcessView
from coordination.testing import VirtualClock
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
)
from tests.orchestration.flows import FAKES, A, AUndone, Hook, J, L, R, Scripted, Start

# -- wiring ----------------------------------------------------------------------------------


class Recorder:
    """A free-form subscriber keeping each delivery it gets as an `Envelope`, in order."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope[Any]] = []
        self._lock = threading.Lock()

    def __call__(self, message: Event, ctx: Context) -> None:
        assert ctx.message_id is not None
        with self._lock:
            self.envelopes.append(
                Envelope(message, ctx.correlation_id, ctx.causation_id, ctx.message_id)
            )

    def of(self, kind: type[Any]) -> list[Envelope[Any]]:
        """The envelopes of messages of `kind`, in delivery order."""
        return [e for e in self.envelopes if isinstance(e.message, kind)]

    def messages(self, kind: type[Any] = Event) -> list[Any]:
        return [e.message for e in self.of(kind)]

    def types(self) -> list[str]:
        return [type(e.message).__name__ for e in self.envelopes]


class Rig:
    """A choreography of `participants` on its own bus, on one virtual clock."""

    def __init__(
        self,
        *participants: Participant,
        join_timeout: float = 300.0,
        max_finished: int = 10_000,
    ) -> None:
        self.clock = VirtualClock()
        self.bus = EventBus(clock=self.clock)
        self.participants = participants
        self.flow = Choreography(
            self.bus,
            *participants,
            clock=self.clock,
            random=lambda: 0.5,
            join_timeout=join_timeout,
            max_finished=max_finished,
        )
        self.monitor = self.flow.monitor

    def record(self, kind: type[Event] = Event) -> Recorder:
        recorder = Recorder()
        self.bus.subscribe(kind, recorder)
        return recorder

    def view(self, correlation_id: str) -> ProcessView:
        return self.monitor.get(correlation_id)

    def __getitem__(self, kind: type[Any]) -> Any:
        """The participant that is an instance of `kind`."""
        return next(p for p in self.participants if isinstance(p, kind))


def fakes(*interfaces: type[Participant]) -> list[Any]:
    """Fresh scripted implementations of these interfaces, in order."""
    known = {**FAKES, **EXTRA_FAKES}
    return [known[interface]() for interface in interfaces]


def rig_of(*interfaces: type[Participant], **options: Any) -> Rig:
    return Rig(*fakes(*interfaces), **options)


def started_names(view: ProcessView) -> list[str]:
    """`Interface.action` of each `started` entry of a view's journal, in order."""
    return [e.name for e in view.journal if e.kind.value == "started"]


def kinds_of(view: ProcessView, name: str) -> list[str]:
    """The kinds of the journal entries of one action (by `Interface.method`), in order."""
    return [e.kind.value for e in view.journal if e.name == name]


# -- the e-commerce example --------------------------------------------------------------------


def an_order(order_id: str = "o-1", *, quantity: int = 1, amount_cents: int = 2_500) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="alice",
        email="alice@example.com",
        sku="book",
        quantity=quantity,
        amount_cents=amount_cents,
        address="1 High Street",
    )


def shop_services() -> tuple[
    InMemoryPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications
]:
    """Fresh services: alice has 10,000 cents, 3 books in stock, two couriers."""
    return (
        InMemoryPayments({"alice": 10_000}),
        InMemorySellers({"book": 3}),
        InMemoryLogistics(["courier-1", "courier-2"]),
        InMemoryNotifications(),
    )


SHOP_ORDER = ("payments", "sellers", "logistics", "notifications")


class Shop(Rig):
    """The e-commerce services, unchanged, as a choreography."""

    def __init__(self, *, order: tuple[str, ...] = SHOP_ORDER, **options: Any) -> None:
        """`order`: the order the services subscribe in (who reacts first to a message)."""
        self.payments, self.sellers, self.logistics, self.notifications = shop_services()
        super().__init__(*(getattr(self, name) for name in order), **options)

    def snapshot(self) -> dict[str, Any]:
        return {
            "payments": self.payments.snapshot(),
            "sellers": self.sellers.snapshot(),
            "logistics": self.logistics.snapshot(),
            "notifications": self.notifications.snapshot(),
        }


# -- slow attempts -----------------------------------------------------------------------------


class Slow:
    """Blocks attempts until released, then they return `result` (late, if abandoned)."""

    def __init__(self, result: Any = None) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.result = result
        self.threads: list[threading.Thread] = []

    def hook(self, message: Any, ctx: Context | None) -> Any:
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.release.wait(5), "never released"
        return self.result

    def finish(self) -> None:
        """Let every held attempt return, and wait until what they returned was handled."""
        self.release.set()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(5)
                assert not thread.is_alive()

    def then(self, outcome: BaseException | None = None) -> Hook:
        """A hook for a later attempt: let the held ones land first, then go on or raise."""

        def next_attempt(message: Any, ctx: Context | None) -> None:
            self.finish()
            if outcome is not None:
                raise outcome

        return Hook(next_attempt)


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    """Start `target` on a thread; the list receives what it raised, if anything."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


# -- extra participants -------------------------------------------------------------------------


class H(Event):
    n: int


class Pair(Participant):
    """A join that takes a context, so the test sees each run's correlation."""

    @action
    @abstractmethod
    def pair(self, left: L, right: R, ctx: Context) -> J: ...


class Hold(Participant):
    """Retried with backoff and undone by its input: the undo is owed once it started."""

    @action(retry=Retry(attempts=3, backoff=1.0))
    @abstractmethod
    def hold(self, a: A, ctx: Context) -> H: ...

    @hold.compensation
    @abstractmethod
    def unhold(self, a: A, ctx: Context) -> None: ...


class Timed(Participant):
    """Each attempt may run 50 ms; two attempts; undone by its output."""

    @action(timeout=0.05, retry=Retry(attempts=2))
    @abstractmethod
    def timed(self, start: Start, ctx: Context) -> A: ...

    @timed.compensation
    @abstractmethod
    def untimed(self, a: A, ctx: Context) -> AUndone: ...


class Lagging(Participant):
    """Produces R from L (so a join of L and R already holds L) with a long backoff."""

    @action(retry=Retry(attempts=2, backoff=20.0))
    @abstractmethod
    def lag(self, left: L, ctx: Context) -> R: ...

    @lag.compensation
    @abstractmethod
    def unlag(self, right: R, ctx: Context) -> None: ...


class Stalling(Participant):
    """Produces R from L, undone by its input (so its undo is owed even if it fails)."""

    @action
    @abstractmethod
    def stall(self, left: L, ctx: Context) -> R: ...

    @stall.compensation
    @abstractmethod
    def unstall(self, left: L, ctx: Context) -> None: ...


class FakePair(Scripted, Pair):
    def pair(self, left: L, right: R, ctx: Context) -> J:
        return self._do(
            "pair", (left, right, ctx.correlation_id), ctx, lambda: J(n=left.n + right.n)
        )


class FakeHold(Scripted, Hold):
    def hold(self, a: A, ctx: Context) -> H:
        return self._do("hold", a, ctx, lambda: H(n=a.n))

    def unhold(self, a: A, ctx: Context) -> None:
        return self._do("unhold", a, ctx, lambda: None)


class FakeTimed(Scripted, Timed):
    def timed(self, start: Start, ctx: Context) -> A:
        return self._do("timed", start, ctx, lambda: A(n=start.n + 1))

    def untimed(self, a: A, ctx: Context) -> AUndone:
        return self._do("untimed", a, ctx, lambda: AUndone(n=a.n))


class FakeLagging(Scripted, Lagging):
    def lag(self, left: L, ctx: Context) -> R:
        return self._do("lag", left, ctx, lambda: R(n=left.n + 20))

    def unlag(self, right: R, ctx: Context) -> None:
        return self._do("unlag", right, ctx, lambda: None)


class FakeStalling(Scripted, Stalling):
    def stall(self, left: L, ctx: Context) -> R:
        return self._do("stall", left, ctx, lambda: R(n=left.n + 20))

    def unstall(self, left: L, ctx: Context) -> None:
        return self._do("unstall", left, ctx, lambda: None)


EXTRA_FAKES: dict[type[Participant], type[Scripted]] = {
    Pair: FakePair,
    Hold: FakeHold,
    Timed: FakeTimed,
    Lagging: FakeLagging,
    Stalling: FakeStalling,
}
