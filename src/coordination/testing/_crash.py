"""Crash points: a crash at every store write, then `recover()`, must end as no crash did.

`assert_crash_safe(flow, participants, message)` runs the message once without a crash and
counts the store writes it makes (every call that changes the store: starting, claiming,
writing, releasing, counting a delivery). Then, for each write, it runs the message again on
fresh participants and a fresh store, and crashes just before that write (the write never
happens) and, separately, just after it (it happened, but the runner never learned): the
runner is abandoned there, as a killed process would be. A new runner on the same store and
the same participants (they are the outside world: what they applied stays applied) calls
`recover()`. The final state — status, and the participants' `snapshot()`s (else the net
effects in the journal) — must be the crash-free run's, and the invariants must hold.

The crash is simulated in-process (a `SimulatedCrash`, a BaseException, raised by the store
and by every store call after it, so nothing the abandoned runner tries afterwards lands);
the project's own crash tests kill real processes with SIGKILL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from coordination._journal import Journal
from coordination._messages import Envelope, Message
from coordination._participants import Participant
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._choreography import Choreography
from coordination.orchestration._orchestrator import Orchestrator
from coordination.stores._memory import MemoryStore
from coordination.stores._records import DeadLetter, OwedRun, Request, RunRecord, Write
from coordination.stores._store import Store
from coordination.testing._clock import VirtualClock
from coordination.testing._equivalence import net_effects, settle_late_results
from coordination.testing._faults import Crash
from coordination.testing._invariants import effect_problems, journal_problems

__all__ = ["CrashPoint", "SimulatedCrash", "assert_crash_safe", "crash_points"]

#: The runners a crash test drives (a subset of `run_both`'s entry points).
CRASH_ENTRY_POINTS = ("run", "run_async", "publish", "publish_async")


#: How many differing points a failure lists.
_SHOWN = 5


class SimulatedCrash(BaseException):
    """The process "died" here: raised by a crashing store, never caught by the runners."""


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Where a simulated crash hits: before or after store write number `write` (from 1)."""

    entry_point: str
    write: int
    operation: str  #: the store method, e.g. `write` or `claim_run`
    after: bool  #: the write happened before the crash

    def __str__(self) -> str:
        when = "after" if self.after else "before"
        return f"{self.entry_point}: crash {when} write {self.write} ({self.operation})"


class _CrashingStore:
    """A store that counts its writes and crashes at one of them (or never)."""

    def __init__(self, inner: Any, crash_at: int | None, after: bool) -> None:
        self.inner = inner
        self.lease = inner.lease
        self.crash_at = crash_at
        self.after = after
        self.operations: list[str] = []
        self.crashed = False

    def _write(self, operation: str, call: Callable[[], Any]) -> Any:
        if self.crashed:
            raise SimulatedCrash(f"the process died; {operation} never ran")
        self.operations.append(operation)
        number = len(self.operations)
        if number == self.crash_at and not self.after:
            self.crashed = True
            raise SimulatedCrash(f"crash before write {number} ({operation})")
        result = call()
        if number == self.crash_at:
            self.crashed = True
            raise SimulatedCrash(f"crash after write {number} ({operation})")
        return result

    def _read(self, call: Callable[[], Any]) -> Any:
        if self.crashed:
            raise SimulatedCrash("the process died")
        return call()

    # -- Store ------------------------------------------------------------------------------

    def register_types(self, types: Iterable[type[Message]]) -> None:
        self.inner.register_types(types)

    def start_run(self, workflow_id: str, flow: str, start: Message, **kwargs: Any) -> Any:
        return self._write(
            "start_run", lambda: self.inner.start_run(workflow_id, flow, start, **kwargs)
        )

    def start_many(self, flow: str, starts: Sequence[tuple[str, Message]], **kwargs: Any) -> Any:
        return self._write("start_many", lambda: self.inner.start_many(flow, starts, **kwargs))

    def claim_run(self, workflow_id: str, owner: str, **kwargs: Any) -> int | None:
        result: int | None = self._write(
            "claim_run", lambda: self.inner.claim_run(workflow_id, owner, **kwargs)
        )
        return result

    def write(self, write: Write) -> None:
        self._write("write", lambda: self.inner.write(write))

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        result: list[str] = self._write("write_many", lambda: self.inner.write_many(writes))
        return result

    def release_run(self, workflow_id: str, token: int, *, now: float) -> None:
        self._write("release_run", lambda: self.inner.release_run(workflow_id, token, now=now))

    def note_recovery(self, workflow_id: str, token: int, position: str) -> int:
        result: int = self._write(
            "note_recovery", lambda: self.inner.note_recovery(workflow_id, token, position)
        )
        return result

    def request(self, workflow_id: str, message: Message | None, *, now: float) -> bool:
        result: bool = self._write(
            "request", lambda: self.inner.request(workflow_id, message, now=now)
        )
        return result

    def requests(self, workflow_id: str) -> list[Request]:
        result: list[Request] = self._read(lambda: self.inner.requests(workflow_id))
        return result

    def drop_requests(self, workflow_id: str, token: int, upto: int) -> None:
        self._write("drop_requests", lambda: self.inner.drop_requests(workflow_id, token, upto))

    def get_run(self, workflow_id: str) -> RunRecord | None:
        result: RunRecord | None = self._read(lambda: self.inner.get_run(workflow_id))
        return result

    def list_runs(self, **kwargs: Any) -> list[RunRecord]:
        result: list[RunRecord] = self._read(lambda: self.inner.list_runs(**kwargs))
        return result

    def owed_runs(self, flow: str) -> list[OwedRun]:
        result: list[OwedRun] = self._read(lambda: self.inner.owed_runs(flow))
        return result

    def forget_finished(self, before: float) -> int:
        result: int = self._write("forget_finished", lambda: self.inner.forget_finished(before))
        return result

    def close(self) -> None:
        """The store outlives the crashed runner: the recovering one uses it."""

    # -- EventLog ---------------------------------------------------------------------------

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        result: list[Envelope[Message]] = self._read(lambda: self.inner.events_of(workflow_id))
        return result

    def handled_of(self, workflow_id: str) -> set[tuple[str, str]]:
        result: set[tuple[str, str]] = self._read(lambda: self.inner.handled_of(workflow_id))
        return result

    def count_delivery(self, workflow_id: str, token: int, message_id: str, subscriber: str) -> int:
        result: int = self._write(
            "count_delivery",
            lambda: self.inner.count_delivery(workflow_id, token, message_id, subscriber),
        )
        return result

    def dead_letter(
        self, workflow_id: str, token: int, message_id: str, subscriber: str, reason: str
    ) -> None:
        self._write(
            "dead_letter",
            lambda: self.inner.dead_letter(workflow_id, token, message_id, subscriber, reason),
        )

    def dead_letters(self) -> list[DeadLetter]:
        result: list[DeadLetter] = self._read(self.inner.dead_letters)
        return result


@dataclass(frozen=True, slots=True)
class _Ending:
    status: WorkflowStatus
    state: Any
    journal: Journal


def _state(participants: Sequence[Participant], journal: Journal) -> Any:
    snapshots = []
    for participant in participants:
        snapshot = getattr(participant, "snapshot", None)
        if not callable(snapshot):
            return sorted(net_effects(journal))
        snapshots.append(snapshot())
    return snapshots


def _drive(
    flow: type[Orchestrator[Any, Any]],
    entry_point: str,
    participants: Sequence[Participant],
    store: Any,
    message: Message,
    workflow_id: str,
) -> None:
    clock = VirtualClock()
    if entry_point.startswith("run"):
        orchestrator = flow(*participants, store=store, clock=clock, random=lambda: 0.5)
        if entry_point == "run":
            orchestrator.run(message, workflow_id=workflow_id)
        else:
            asyncio.run(orchestrator.run_async(message, workflow_id=workflow_id))
        return
    choreography = Choreography(
        EventBus(clock=clock), *participants, flow=flow, store=store, clock=clock,
        random=lambda: 0.5,
    )  # fmt: skip
    if entry_point == "publish":
        choreography.publish(message, correlation_id=workflow_id)
    else:
        asyncio.run(choreography.publish_async(message, correlation_id=workflow_id))


def _recover(
    flow: type[Orchestrator[Any, Any]],
    entry_point: str,
    participants: Sequence[Participant],
    store: Any,
    workflow_id: str,
) -> tuple[WorkflowStatus, Journal] | None:
    clock = VirtualClock()
    if entry_point.startswith("run"):
        orchestrator = flow(*participants, store=store, clock=clock, random=lambda: 0.5)
        orchestrator.recover()
        settle_late_results()
        if store.get_run(workflow_id) is None:
            return None
        run = orchestrator.get(workflow_id)
        return run.status, run.journal
    choreography = Choreography(
        EventBus(clock=clock), *participants, flow=flow, store=store, clock=clock,
        random=lambda: 0.5,
    )  # fmt: skip
    choreography.recover()
    settle_late_results()
    if store.get_run(workflow_id) is None:
        return None
    view = choreography.monitor.get(workflow_id)
    return view.status, view.journal


def crash_points(
    flow: type[Orchestrator[Any, Any]],
    participants: Callable[[], Sequence[Participant]],
    message: Message,
    *,
    entry_points: Sequence[str] = ("run", "publish"),
    store: Callable[[], Store] = MemoryStore,
) -> list[CrashPoint]:
    """Every point a crash test tries: before and after each store write of each runner."""
    points: list[CrashPoint] = []
    for entry_point in _checked(entry_points):
        counting = _CrashingStore(store(), None, after=False)
        try:
            _drive(flow, entry_point, participants(), counting, message, "crash-points")
            settle_late_results()
        finally:
            _close(counting.inner)
        for number, operation in enumerate(counting.operations, start=1):
            points.append(CrashPoint(entry_point, number, operation, after=False))
            points.append(CrashPoint(entry_point, number, operation, after=True))
    return points


def _checked(entry_points: Sequence[str]) -> Sequence[str]:
    unknown = set(entry_points) - set(CRASH_ENTRY_POINTS)
    if unknown:
        raise ValueError(
            f"unknown entry points {sorted(unknown)}; use some of {CRASH_ENTRY_POINTS}"
        )
    return entry_points


def assert_crash_safe(
    flow: type[Orchestrator[Any, Any]],
    participants: Callable[[], Sequence[Participant]],
    message: Message,
    *,
    entry_points: Sequence[str] = ("run", "publish"),
    store: Callable[[], Store] = MemoryStore,
    same_end: bool = True,
    crash: Crash | None = None,
) -> list[CrashPoint]:
    """Crash at every store write of every runner; fail listing the points that differ.

    `participants()` builds fresh participants each call (use `fake()`s, or participants
    with a `snapshot()`, so their state can be compared); `store()` a fresh, empty store.
    Every point must keep the invariants (nothing applied twice, nothing left applied on
    a COMPENSATED instance, a well-formed journal) and, with `same_end`, end in the crash-
    free run's status and state. Pass `same_end=False` when the participants' answers are
    not the same for the same key (transient faults): a crash loses the attempts it cut
    short, and their retries after recovery may well succeed. With `crash` (a drawn
    plan's `plan.crash`), only that point is tried under each entry point (its write
    number taken modulo the writes that entry point makes). Returns the points tried.
    """
    workflow_id = "crash-safe"
    points = crash_points(flow, participants, message, entry_points=entry_points, store=store)
    if crash is not None:
        points = _only(points, crash)
    expected: dict[str, _Ending] = {}
    for entry_point in _checked(entry_points):
        side = participants()
        plain = store()
        try:
            _drive(flow, entry_point, side, plain, message, workflow_id)
            settle_late_results()
            ended = _recover(flow, entry_point, side, plain, workflow_id)
        finally:
            _close(plain)
        assert ended is not None
        expected[entry_point] = _Ending(ended[0], _state(side, ended[1]), ended[1])
    problems: list[str] = []
    for point in points:
        problem = _try(
            flow, participants, message, store, point, workflow_id,
            expected if same_end else None,
        )  # fmt: skip
        if problem is not None:
            problems.append(f"{point}: {problem}")
    if problems:
        listing = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise AssertionError(
            f"{len(problems)} of {len(points)} crash points end otherwise than without a "
            f"crash:\n  {listing}{more}"
        )
    return points


def _only(points: list[CrashPoint], crash: Crash) -> list[CrashPoint]:
    """The point `crash` names under each entry point (its write modulo that one's count)."""
    chosen: list[CrashPoint] = []
    for entry_point in dict.fromkeys(point.entry_point for point in points):
        mine = [p for p in points if p.entry_point == entry_point and p.after == crash.after]
        if mine:
            chosen.append(mine[(crash.write - 1) % len(mine)])
    return chosen


def _try(
    flow: type[Orchestrator[Any, Any]],
    participants: Callable[[], Sequence[Participant]],
    message: Message,
    store: Callable[[], Store],
    point: CrashPoint,
    workflow_id: str,
    expected: dict[str, _Ending] | None,
) -> str | None:
    side = participants()
    durable = store()
    crashing = _CrashingStore(durable, point.write, point.after)
    try:
        try:
            _drive(flow, point.entry_point, side, crashing, message, workflow_id)
        except SimulatedCrash:
            pass
        settle_late_results()
        ended = _recover(flow, point.entry_point, side, durable, workflow_id)
    finally:
        _close(durable)
    if ended is None:
        if point.write == 1 and not point.after:
            return None  # it never started: nothing was applied, nothing is owed
        return "the instance is lost"
    status, journal = ended
    found = effect_problems(status, side, workflow_id=workflow_id)
    found += journal_problems(journal, finished=status.finished)
    if found:
        return "; ".join(found)
    if expected is None:
        if not status.finished:
            return f"recover() left it {status.name}"
        return None
    want = expected[point.entry_point]
    if status is not want.status:
        return f"ended {status.name}, not {want.status.name}"
    state = _state(side, journal)
    if state != want.state:
        return f"left the participants otherwise: {_difference(state, want.state)}"
    return None


def _close(store: Any) -> None:
    """Close a store the kit made (a durable one's heartbeat and checkpointer end)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _difference(got: Any, want: Any) -> str:
    """What differs between two states (lists of snapshots, or sorted net effects)."""
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for index, (left, right) in enumerate(zip(got, want, strict=True)):
            if left != right:
                return f"participant {index + 1}: {left!r}, not {right!r}"
    return f"{got!r}, not {want!r}"
