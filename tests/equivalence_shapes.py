"""More flow shapes for the equivalence tests, on participants that keep real state.

- `SplitFlow`: a tuple output (undone by one of its members), its members taken by two
  branches (one undone by its output, one by its input), then a join.
- `ThreeFlow`: a root, a three-branch group (output-, input- and never undone), a gather.
- `AsyncThreeFlow`: the same shape with async participants only.
- `MixedFlow`: the same shape, sync and async participants side by side in one group.

Every effect is kept in a `Ledger` under the forward action's idempotency key; an undo
finds the effect it undoes by that key, from its own key (`...:undo`, or a late result's
`...:late<n>:undo`) or from the output it receives: compensations are idempotent by the
state they undo, as late undos under their own keys require.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step

_UNDO = re.compile(r"(:late\d+)?:undo$")


def forward_key(key: str) -> str:
    """The forward action's idempotency key, from an undo's (plain or a late result's)."""
    return _UNDO.sub("", key)


class Ledger:
    """Effects by forward key; `snapshot()` is what stands."""

    def __init__(self) -> None:
        self.effects: dict[str, int] = {}

    def apply(self, ctx: Context, value: int) -> int:
        if value < 0:
            raise NonRetryable(f"refused {value}")
        return self.effects.setdefault(ctx.idempotency_key, value)

    def revert(self, key: str) -> None:
        self.effects.pop(forward_key(key), None)

    def snapshot(self) -> list[tuple[str, int]]:
        return sorted(self.effects.items())


class Go(Event):
    n: int


class Half(Event):
    n: int
    ref: str


class Other(Event):
    n: int
    ref: str


class HalfDone(Event):
    n: int
    ref: str


class OtherDone(Event):
    n: int
    ref: str


class Whole(Event):
    n: int


class Seed(Event):
    n: int
    ref: str


class One(Event):
    n: int
    ref: str


class Two(Event):
    n: int
    ref: str


class Three(Event):
    n: int


class Final(Event):
    n: int
    ref: str


# -- the split flow ------------------------------------------------------------------------


class Splitter(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    def split(self, go: Go, ctx: Context) -> tuple[Half, Other]: ...

    @split.compensation
    @abstractmethod
    def unsplit(self, half: Half, ctx: Context) -> None: ...


class Lefty(Participant):
    @action(retry=Retry(attempts=3, backoff=0.02))
    @abstractmethod
    def take_half(self, half: Half, ctx: Context) -> HalfDone: ...

    @take_half.compensation
    @abstractmethod
    def drop_half(self, done: HalfDone, ctx: Context) -> None: ...


class Righty(Participant):
    @action(retry=Retry(attempts=2, backoff=0.03))
    @abstractmethod
    def take_other(self, other: Other, ctx: Context) -> OtherDone: ...

    @take_other.compensation
    @abstractmethod
    def drop_other(self, other: Other, ctx: Context) -> None: ...


class Joiner(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def join(self, half: HalfDone, other: OtherDone, ctx: Context) -> Whole: ...


class SplitFlow(Orchestrator[Go, Whole], name="tests.split"):
    steps = (
        step(Splitter.split),
        parallel(step(Lefty.take_half), step(Righty.take_other)),
        step(Joiner.join),
    )


class LedgerSplitter(Ledger, Splitter):
    def split(self, go: Go, ctx: Context) -> tuple[Half, Other]:
        value = self.apply(ctx, go.n)
        return Half(n=value, ref=ctx.idempotency_key), Other(n=value + 1, ref=ctx.idempotency_key)

    def unsplit(self, half: Half, ctx: Context) -> None:
        self.revert(half.ref)


class LedgerLefty(Ledger, Lefty):
    def take_half(self, half: Half, ctx: Context) -> HalfDone:
        return HalfDone(n=self.apply(ctx, half.n * 2), ref=ctx.idempotency_key)

    def drop_half(self, done: HalfDone, ctx: Context) -> None:
        self.revert(done.ref)


class LedgerRighty(Ledger, Righty):
    def take_other(self, other: Other, ctx: Context) -> OtherDone:
        return OtherDone(n=self.apply(ctx, other.n * 3), ref=ctx.idempotency_key)

    def drop_other(self, other: Other, ctx: Context) -> None:
        self.revert(ctx.idempotency_key)  # undone by its input: find the effect by key


class LedgerJoiner(Ledger, Joiner):
    def join(self, half: HalfDone, other: OtherDone, ctx: Context) -> Whole:
        return Whole(n=self.apply(ctx, half.n + other.n))


def split_services() -> tuple[Participant, ...]:
    return (LedgerSplitter(), LedgerLefty(), LedgerRighty(), LedgerJoiner())


# -- a three-branch group, sync ------------------------------------------------------------


class Root(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    def root(self, go: Go, ctx: Context) -> Seed: ...

    @root.compensation
    @abstractmethod
    def unroot(self, seed: Seed, ctx: Context) -> None: ...


class BranchOne(Participant):
    @action(retry=Retry(attempts=3, backoff=0.02))
    @abstractmethod
    def one(self, seed: Seed, ctx: Context) -> One: ...

    @one.compensation
    @abstractmethod
    def unone(self, one: One, ctx: Context) -> None: ...


class BranchTwo(Participant):
    @action(retry=Retry(attempts=2, backoff=0.05))
    @abstractmethod
    def two(self, seed: Seed, ctx: Context) -> Two: ...

    @two.compensation
    @abstractmethod
    def untwo(self, seed: Seed, ctx: Context) -> None: ...


class BranchThree(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    def three(self, seed: Seed, ctx: Context) -> Three: ...


class Gather(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    def gather(self, one: One, two: Two, three: Three, ctx: Context) -> Final: ...

    @gather.compensation
    @abstractmethod
    def ungather(self, final: Final, ctx: Context) -> None: ...


class ThreeFlow(Orchestrator[Go, Final], name="tests.three"):
    steps = (
        step(Root.root),
        parallel(step(BranchOne.one), step(BranchTwo.two), step(BranchThree.three)),
        step(Gather.gather),
    )


class LedgerRoot(Ledger, Root):
    def root(self, go: Go, ctx: Context) -> Seed:
        return Seed(n=self.apply(ctx, go.n), ref=ctx.idempotency_key)

    def unroot(self, seed: Seed, ctx: Context) -> None:
        self.revert(seed.ref)


class LedgerOne(Ledger, BranchOne):
    def one(self, seed: Seed, ctx: Context) -> One:
        return One(n=self.apply(ctx, seed.n + 1), ref=ctx.idempotency_key)

    def unone(self, one: One, ctx: Context) -> None:
        self.revert(one.ref)


class LedgerTwo(Ledger, BranchTwo):
    def two(self, seed: Seed, ctx: Context) -> Two:
        return Two(n=self.apply(ctx, seed.n + 2), ref=ctx.idempotency_key)

    def untwo(self, seed: Seed, ctx: Context) -> None:
        self.revert(ctx.idempotency_key)


class LedgerThree(Ledger, BranchThree):
    def three(self, seed: Seed, ctx: Context) -> Three:
        return Three(n=self.apply(ctx, seed.n + 3))


class LedgerGather(Ledger, Gather):
    def gather(self, one: One, two: Two, three: Three, ctx: Context) -> Final:
        return Final(n=self.apply(ctx, one.n + two.n + three.n), ref=ctx.idempotency_key)

    def ungather(self, final: Final, ctx: Context) -> None:
        self.revert(final.ref)


def three_services() -> tuple[Participant, ...]:
    return (LedgerRoot(), LedgerOne(), LedgerTwo(), LedgerThree(), LedgerGather())


# -- the same shape, async ------------------------------------------------------------------


class AsyncRoot(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    async def root(self, go: Go, ctx: Context) -> Seed: ...

    @root.compensation
    @abstractmethod
    async def unroot(self, seed: Seed, ctx: Context) -> None: ...


class AsyncOne(Participant):
    @action(retry=Retry(attempts=3, backoff=0.02))
    @abstractmethod
    async def one(self, seed: Seed, ctx: Context) -> One: ...

    @one.compensation
    @abstractmethod
    async def unone(self, one: One, ctx: Context) -> None: ...


class AsyncTwo(Participant):
    @action(retry=Retry(attempts=2, backoff=0.05))
    @abstractmethod
    async def two(self, seed: Seed, ctx: Context) -> Two: ...

    @two.compensation
    @abstractmethod
    async def untwo(self, seed: Seed, ctx: Context) -> None: ...


class AsyncThree(Participant):
    @action(retry=Retry(attempts=2))
    @abstractmethod
    async def three(self, seed: Seed, ctx: Context) -> Three: ...


class AsyncGather(Participant):
    @action(retry=Retry(attempts=2, backoff=0.01))
    @abstractmethod
    async def gather(self, one: One, two: Two, three: Three, ctx: Context) -> Final: ...

    @gather.compensation
    @abstractmethod
    async def ungather(self, final: Final, ctx: Context) -> None: ...


class AsyncThreeFlow(Orchestrator[Go, Final], name="tests.three-async"):
    steps = (
        step(AsyncRoot.root),
        parallel(step(AsyncOne.one), step(AsyncTwo.two), step(AsyncThree.three)),
        step(AsyncGather.gather),
    )


class LedgerAsyncRoot(Ledger, AsyncRoot):
    async def root(self, go: Go, ctx: Context) -> Seed:
        return Seed(n=self.apply(ctx, go.n), ref=ctx.idempotency_key)

    async def unroot(self, seed: Seed, ctx: Context) -> None:
        self.revert(seed.ref)


class LedgerAsyncOne(Ledger, AsyncOne):
    async def one(self, seed: Seed, ctx: Context) -> One:
        return One(n=self.apply(ctx, seed.n + 1), ref=ctx.idempotency_key)

    async def unone(self, one: One, ctx: Context) -> None:
        self.revert(one.ref)


class LedgerAsyncTwo(Ledger, AsyncTwo):
    async def two(self, seed: Seed, ctx: Context) -> Two:
        return Two(n=self.apply(ctx, seed.n + 2), ref=ctx.idempotency_key)

    async def untwo(self, seed: Seed, ctx: Context) -> None:
        self.revert(ctx.idempotency_key)


class LedgerAsyncThree(Ledger, AsyncThree):
    async def three(self, seed: Seed, ctx: Context) -> Three:
        return Three(n=self.apply(ctx, seed.n + 3))


class LedgerAsyncGather(Ledger, AsyncGather):
    async def gather(self, one: One, two: Two, three: Three, ctx: Context) -> Final:
        return Final(n=self.apply(ctx, one.n + two.n + three.n), ref=ctx.idempotency_key)

    async def ungather(self, final: Final, ctx: Context) -> None:
        self.revert(final.ref)


def async_three_services() -> tuple[Participant, ...]:
    return (
        LedgerAsyncRoot(),
        LedgerAsyncOne(),
        LedgerAsyncTwo(),
        LedgerAsyncThree(),
        LedgerAsyncGather(),
    )


# -- sync and async side by side ----------------------------------------------------------


class MixedFlow(Orchestrator[Go, Final], name="tests.mixed"):
    steps = (
        step(Root.root),
        parallel(step(AsyncOne.one), step(BranchTwo.two), step(AsyncThree.three)),
        step(Gather.gather),
    )


def mixed_services() -> tuple[Participant, ...]:
    return (LedgerRoot(), LedgerAsyncOne(), LedgerTwo(), LedgerAsyncThree(), LedgerGather())


def any_state(participants: tuple[Any, ...]) -> list[Any]:
    return [p.snapshot() for p in participants]
