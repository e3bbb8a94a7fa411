"""Shared test flows and participants for the orchestration tests.

Every interface has one action (so a flow's participants are easy to build from its
interfaces) and one scripted implementation. An implementation records every call and can
be told what its next calls do: raise an error, return a given value, or run a hook first.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step
from coordination.stores import MemoryStore

# -- messages ------------------------------------------------------------------------------


class Start(Event):
    n: int


class A(Event):
    n: int


class B(Event):
    n: int


class C(Event):
    n: int


class D(Event):
    n: int


class P(Event):
    n: int


class T(Event):
    n: int


class L(Event):
    n: int


class R(Event):
    n: int


class J(Event):
    n: int


class AUndone(Event):
    n: int


class BUndone(Event):
    n: int


class LUndone(Event):
    n: int


class RUndone(Event):
    n: int


class Other(Event):
    """A message no flow starts with."""

    n: int


# -- errors ----------------------------------------------------------------------------------


class Boom(Exception):
    """A transient failure: retried."""


class Refused(NonRetryable):
    """A business refusal: never retried."""


# -- scripting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Returns:
    """Script item: return this value instead of the normal result."""

    value: Any


@dataclass(frozen=True)
class Hook:
    """Script item: call `function(message, ctx)` (awaited if async); a non-None result is
    returned instead of the normal one."""

    function: Callable[[Any, Context | None], Any]


@dataclass(frozen=True)
class Call:
    """One call an implementation received."""

    name: str
    message: Any
    key: str | None
    attempt: int | None
    deadline: float | None
    thread: threading.Thread


class Scripted:
    """Records calls; `script(name, *items)` decides what the next calls of `name` do.

    An item is an exception (raised), `Returns(value)` or `Hook(function)`; once a name's
    items are used up its calls behave normally.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._script: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def script(self, name: str, *items: Any) -> None:
        with self._lock:
            self._script.setdefault(name, []).extend(items)

    def fail(self, name: str, *errors: BaseException) -> None:
        self.script(name, *errors)

    def named(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def count(self, name: str) -> int:
        return len(self.named(name))

    def _next(self, name: str, message: Any, ctx: Context | None) -> Any:
        with self._lock:
            self.calls.append(
                Call(
                    name,
                    message,
                    ctx.idempotency_key if ctx is not None else None,
                    ctx.attempt if ctx is not None else None,
                    ctx.deadline if ctx is not None else None,
                    threading.current_thread(),
                )
            )
            queued = self._script.get(name)
            return queued.pop(0) if queued else None

    def _do(self, name: str, message: Any, ctx: Context | None, result: Callable[[], Any]) -> Any:
        item = self._next(name, message, ctx)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Returns):
            return item.value
        if isinstance(item, Hook):
            outcome = item.function(message, ctx)
            if outcome is not None:
                return outcome
        return result()

    async def _ado(
        self, name: str, message: Any, ctx: Context | None, result: Callable[[], Any]
    ) -> Any:
        item = self._next(name, message, ctx)
        await asyncio.sleep(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Returns):
            return item.value
        if isinstance(item, Hook):
            outcome = item.function(message, ctx)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome is not None:
                return outcome
        return result()


# -- interfaces ------------------------------------------------------------------------------


class Alpha(Participant):
    """The usual first step: retried with backoff, undone by its output."""

    @action(retry=Retry(attempts=3, backoff=1.0))
    @abstractmethod
    def first(self, start: Start, ctx: Context) -> A: ...

    @first.compensation
    @abstractmethod
    def undo_first(self, a: A, ctx: Context) -> AUndone: ...


class Beta(Participant):
    @action
    @abstractmethod
    def second(self, a: A, ctx: Context) -> B: ...

    @second.compensation
    @abstractmethod
    def undo_second(self, b: B, ctx: Context) -> BUndone: ...


class Gamma(Participant):
    """Undone by its input: the undo runs for every started step, failed ones included."""

    @action
    @abstractmethod
    def third(self, b: B, ctx: Context) -> C: ...

    @third.compensation
    @abstractmethod
    def cancel_third(self, b: B, ctx: Context) -> None: ...


class Delta(Participant):
    """After Gamma.third; no compensation."""

    @action
    @abstractmethod
    def fourth(self, c: C, ctx: Context) -> D: ...


class Plain(Participant):
    """No compensation at all."""

    @action
    @abstractmethod
    def plain(self, a: A, ctx: Context) -> P: ...


class Tail(Participant):
    @action
    @abstractmethod
    def tail(self, p: P, ctx: Context) -> T: ...


class Left(Participant):
    @action
    @abstractmethod
    def left(self, a: A, ctx: Context) -> L: ...

    @left.compensation
    @abstractmethod
    def undo_left(self, produced: L, ctx: Context) -> LUndone: ...


class Right(Participant):
    @action
    @abstractmethod
    def right(self, a: A, ctx: Context) -> R: ...

    @right.compensation
    @abstractmethod
    def undo_right(self, produced: R, ctx: Context) -> RUndone: ...


class Join(Participant):
    @action
    @abstractmethod
    def join(self, left: L, right: R) -> J: ...


class Split(Participant):
    """Returns a tuple; undone by one member of it, with a timeout on each undo attempt."""

    @action
    @abstractmethod
    def split(self, a: A, ctx: Context) -> tuple[L, R]: ...

    @split.compensation(timeout=0.05, retry=Retry(attempts=2))
    @abstractmethod
    def unsplit(self, produced: R, ctx: Context) -> None: ...


class Guarded(Participant):
    """An action with its own timeout (so it runs on a worker thread unless overridden)."""

    @action(timeout=5.0)
    @abstractmethod
    def guarded(self, start: Start, ctx: Context) -> A: ...


class Twin(Participant):
    """Produces L like Left: two of them in one flow is a definition error."""

    @action
    @abstractmethod
    def twin(self, a: A) -> L: ...


class Echo(Participant):
    """Produces A again from B: after Alpha.first that is a definition error."""

    @action
    @abstractmethod
    def echo(self, b: B) -> A: ...


class AsyncAlpha(Participant):
    @action(retry=Retry(attempts=3, backoff=1.0))
    @abstractmethod
    async def afirst(self, start: Start, ctx: Context) -> A: ...

    @afirst.compensation
    @abstractmethod
    async def aundo_first(self, a: A, ctx: Context) -> AUndone: ...


class AsyncLeft(Participant):
    @action
    @abstractmethod
    async def aleft(self, a: A, ctx: Context) -> L: ...

    @aleft.compensation
    @abstractmethod
    async def aundo_left(self, produced: L, ctx: Context) -> LUndone: ...


class AsyncRight(Participant):
    @action
    @abstractmethod
    async def aright(self, a: A, ctx: Context) -> R: ...

    @aright.compensation
    @abstractmethod
    async def aundo_right(self, produced: R, ctx: Context) -> RUndone: ...


# -- implementations -------------------------------------------------------------------------


class FakeAlpha(Scripted, Alpha):
    def first(self, start: Start, ctx: Context) -> A:
        return self._do("first", start, ctx, lambda: A(n=start.n + 1))

    def undo_first(self, a: A, ctx: Context) -> AUndone:
        return self._do("undo_first", a, ctx, lambda: AUndone(n=a.n))


class FakeBeta(Scripted, Beta):
    def second(self, a: A, ctx: Context) -> B:
        return self._do("second", a, ctx, lambda: B(n=a.n + 1))

    def undo_second(self, b: B, ctx: Context) -> BUndone:
        return self._do("undo_second", b, ctx, lambda: BUndone(n=b.n))


class FakeGamma(Scripted, Gamma):
    def third(self, b: B, ctx: Context) -> C:
        return self._do("third", b, ctx, lambda: C(n=b.n + 1))

    def cancel_third(self, b: B, ctx: Context) -> None:
        return self._do("cancel_third", b, ctx, lambda: None)


class FakeDelta(Scripted, Delta):
    def fourth(self, c: C, ctx: Context) -> D:
        return self._do("fourth", c, ctx, lambda: D(n=c.n + 1))


class FakePlain(Scripted, Plain):
    def plain(self, a: A, ctx: Context) -> P:
        return self._do("plain", a, ctx, lambda: P(n=a.n + 1))


class FakeTail(Scripted, Tail):
    def tail(self, p: P, ctx: Context) -> T:
        return self._do("tail", p, ctx, lambda: T(n=p.n + 1))


class FakeLeft(Scripted, Left):
    def left(self, a: A, ctx: Context) -> L:
        return self._do("left", a, ctx, lambda: L(n=a.n + 10))

    def undo_left(self, produced: L, ctx: Context) -> LUndone:
        return self._do("undo_left", produced, ctx, lambda: LUndone(n=produced.n))


class FakeRight(Scripted, Right):
    def right(self, a: A, ctx: Context) -> R:
        return self._do("right", a, ctx, lambda: R(n=a.n + 20))

    def undo_right(self, produced: R, ctx: Context) -> RUndone:
        return self._do("undo_right", produced, ctx, lambda: RUndone(n=produced.n))


class FakeJoin(Scripted, Join):
    def join(self, left: L, right: R) -> J:
        return self._do("join", (left, right), None, lambda: J(n=left.n + right.n))


class FakeSplit(Scripted, Split):
    def split(self, a: A, ctx: Context) -> tuple[L, R]:
        return self._do("split", a, ctx, lambda: (L(n=a.n + 10), R(n=a.n + 20)))

    def unsplit(self, produced: R, ctx: Context) -> None:
        return self._do("unsplit", produced, ctx, lambda: None)


class FakeGuarded(Scripted, Guarded):
    def guarded(self, start: Start, ctx: Context) -> A:
        return self._do("guarded", start, ctx, lambda: A(n=start.n + 1))


class FakeAsyncAlpha(Scripted, AsyncAlpha):
    async def afirst(self, start: Start, ctx: Context) -> A:
        return await self._ado("afirst", start, ctx, lambda: A(n=start.n + 1))

    async def aundo_first(self, a: A, ctx: Context) -> AUndone:
        return await self._ado("aundo_first", a, ctx, lambda: AUndone(n=a.n))


class FakeAsyncLeft(Scripted, AsyncLeft):
    async def aleft(self, a: A, ctx: Context) -> L:
        return await self._ado("aleft", a, ctx, lambda: L(n=a.n + 10))

    async def aundo_left(self, produced: L, ctx: Context) -> LUndone:
        return await self._ado("aundo_left", produced, ctx, lambda: LUndone(n=produced.n))


class FakeAsyncRight(Scripted, AsyncRight):
    async def aright(self, a: A, ctx: Context) -> R:
        return await self._ado("aright", a, ctx, lambda: R(n=a.n + 20))

    async def aundo_right(self, produced: R, ctx: Context) -> RUndone:
        return await self._ado("aundo_right", produced, ctx, lambda: RUndone(n=produced.n))


FAKES: dict[type[Participant], type[Scripted]] = {
    Alpha: FakeAlpha,
    Beta: FakeBeta,
    Gamma: FakeGamma,
    Delta: FakeDelta,
    Plain: FakePlain,
    Tail: FakeTail,
    Left: FakeLeft,
    Right: FakeRight,
    Join: FakeJoin,
    Split: FakeSplit,
    Guarded: FakeGuarded,
    AsyncAlpha: FakeAsyncAlpha,
    AsyncLeft: FakeAsyncLeft,
    AsyncRight: FakeAsyncRight,
}

# -- flows -----------------------------------------------------------------------------------


class Linear(Orchestrator[Start, C]):
    """first -> second -> third; third is undone by its input."""

    steps = (step(Alpha.first), step(Beta.second), step(Gamma.third))


class Longer(Orchestrator[Start, D]):
    """Linear plus a fourth step, so the input-undone Gamma.third can complete and be undone."""

    steps = (step(Alpha.first), step(Beta.second), step(Gamma.third), step(Delta.fourth))


class WithPlain(Orchestrator[Start, T]):
    """first -> plain (no compensation) -> tail (no compensation)."""

    steps = (step(Alpha.first), step(Plain.plain), step(Tail.tail))


class Fork(Orchestrator[Start, tuple[L, R]]):
    """first, then left and right side by side; the output is (L, R)."""

    steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)))


class ForkJoin(Orchestrator[Start, J]):
    steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)), step(Join.join))


class ForkTimed(Orchestrator[Start, tuple[L, R]]):
    """Like Fork, but a branch has a timeout: under run() the group runs on worker threads."""

    steps = (step(Alpha.first), parallel(step(Left.left, timeout=5.0), step(Right.right)))


class Single(Orchestrator[Start, A]):
    steps = (step(Alpha.first),)


class Untyped(Orchestrator):  # type: ignore[type-arg]
    """No type parameters: the start type is the first step's input."""

    steps = (step(Alpha.first), step(Beta.second))


class SplitFlow(Orchestrator[Start, tuple[L, R]]):
    """A last step returning a tuple."""

    steps = (step(Alpha.first), step(Split.split))


class SplitJoin(Orchestrator[Start, J]):
    steps = (step(Alpha.first), step(Split.split), step(Join.join))


class TimedSingle(Orchestrator[Start, A]):
    """One step whose attempts time out after 50 ms; two attempts."""

    steps = (step(Alpha.first, timeout=0.05, retry=Retry(attempts=2)),)


class TimedThenSecond(Orchestrator[Start, B]):
    """A timed first step, then second (which tests make fail)."""

    steps = (step(Alpha.first, timeout=0.05, retry=Retry(attempts=2)), step(Beta.second))


class TimedSecond(Orchestrator[Start, B]):
    """first, then a timed second step (undone by its output B)."""

    steps = (step(Alpha.first), step(Beta.second, timeout=0.05, retry=Retry(attempts=2)))


class GuardedFlow(Orchestrator[Start, A]):
    steps = (step(Guarded.guarded),)


class UnguardedFlow(Orchestrator[Start, A]):
    """The same action with its declared timeout overridden away."""

    steps = (step(Guarded.guarded, timeout=None),)


class AsyncFork(Orchestrator[Start, tuple[L, R]]):
    steps = (step(AsyncAlpha.afirst), parallel(step(AsyncLeft.aleft), step(AsyncRight.aright)))


class MixedFork(Orchestrator[Start, tuple[L, R]]):
    """An async first step, then sync branches."""

    steps = (step(AsyncAlpha.afirst), parallel(step(Left.left), step(Right.right)))


class AsyncTimed(Orchestrator[Start, A]):
    steps = (step(AsyncAlpha.afirst, timeout=0.05, retry=Retry(attempts=2)),)


class Named(Orchestrator[Start, A], name="named-flow"):
    steps = (step(Alpha.first),)


class NamedChild(Named):
    """Inherits the steps but not the name."""


# -- helpers ---------------------------------------------------------------------------------


class FakeClock:
    """A clock whose time moves only when slept on; records every wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self.time

    def monotonic(self) -> float:
        with self._lock:
            return self.time

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.time += max(seconds, 0.0)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


class Harness:
    """An orchestrator of `flow` with fresh fakes, a fake clock and a fixed jitter.

    Its store is a new `default_store()` unless one is given: a `MemoryStore`, or what a
    test module that runs on several stores puts there (a new PostgreSQL schema each).
    """

    default_store: Callable[[], Any] = MemoryStore

    def __init__(
        self,
        flow: type[Orchestrator[Any, Any]],
        *,
        store: Any = None,
        random: Callable[[], float] = lambda: 0.5,
    ) -> None:
        self.clock = FakeClock()
        self.store = store if store is not None else self.default_store()
        self.fakes: dict[type[Participant], Any] = {
            interface: FAKES[interface]() for interface in flow.plan.interfaces
        }
        self.orchestrator = flow(
            *self.fakes.values(), store=self.store, clock=self.clock, random=random
        )

    def __getitem__(self, interface: type[Participant]) -> Any:
        return self.fakes[interface]

    def all_calls(self) -> list[str]:
        """Every call of every fake, as `name`, in no particular cross-fake order."""
        return [call.name for fake in self.fakes.values() for call in fake.calls]
