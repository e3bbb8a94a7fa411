"""Fault plans: which action fails, at which attempt, with what — injected into participants.

A plan wraps the action and compensation methods of participant *instances* (never their
classes), so the same participants run with and without faults, under either runner.
Timeouts are injected as `AttemptTimeout` exceptions, so no test waits for a real one.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coordination._context import Context
from coordination._participants import Participant, _Declared
from coordination.errors import AttemptTimeout, NonRetryable

__all__ = ["Crash", "Fault", "FaultKind", "FaultPlan", "InjectedFault", "InjectedRefusal"]


class InjectedFault(RuntimeError):
    """A transient failure put there by a fault plan (retried like any other error)."""


class InjectedRefusal(NonRetryable):
    """A business refusal put there by a fault plan (never retried)."""


class FaultKind(StrEnum):
    """What an injected fault looks like to the runner."""

    ERROR = "error"  #: a transient error: retried while attempts remain
    TIMEOUT = "timeout"  #: an AttemptTimeout, as if the attempt ran past its timeout
    REFUSAL = "refusal"  #: a NonRetryable: the step fails at once
    #: The attempt's effect lands, then it times out, and what it returned comes back late
    #: (an AttemptTimeout carrying the result: the runners handle it at once).
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Fault:
    """Make attempt `attempt` (1-based) of `target` (`Interface.method`) fail.

    With `after_effect=True` the real method runs first and the error is raised after it,
    like a timeout that fires once the effect has landed.
    """

    target: str
    attempt: int
    kind: FaultKind = FaultKind.ERROR
    after_effect: bool = False

    @property
    def lands(self) -> bool:
        """Whether the real method runs (its effect lands) before the fault is raised."""
        return self.after_effect or self.kind is FaultKind.LATE

    def error(self, result: Any = None) -> BaseException:
        """A fresh exception for this fault (`result`: what the landed attempt returned)."""
        where = f"{self.target} attempt {self.attempt}"
        if self.kind is FaultKind.LATE:
            return AttemptTimeout(f"injected timeout: {where}", late=(True, result))
        if self.kind is FaultKind.TIMEOUT:
            return AttemptTimeout(f"injected timeout: {where}")
        if self.kind is FaultKind.REFUSAL:
            return InjectedRefusal(f"injected refusal: {where}")
        return InjectedFault(f"injected fault: {where}")


@dataclass(frozen=True, slots=True)
class Crash:
    """Where a plan's process dies: before (or, with `after`, just after) store write `write`.

    Writes are counted from 1 in the order the runner makes them (starting, claiming,
    writing, releasing, counting a delivery), modulo the number a run makes, so every
    drawn crash hits one. `assert_crash_safe(..., crash=plan.crash)` tries that point
    alone under each entry point.
    """

    write: int
    after: bool = False

    def __post_init__(self) -> None:
        if self.write < 1:
            raise ValueError(f"{self}: store writes count from 1")

    def __str__(self) -> str:
        return f"crash {'after' if self.after else 'before'} store write {self.write}"


@dataclass(frozen=True, slots=True)
class Call:
    """One call a plan saw: target, attempt, and whether a fault fired."""

    target: str
    attempt: int
    key: str | None
    fault: Fault | None


@dataclass(slots=True)
class FaultPlan:
    """A set of faults, and a log of every call made through the participants it wraps."""

    faults: tuple[Fault, ...] = ()
    #: Where the process crashes (see `Crash`), or never.
    crash: Crash | None = None
    calls: list[Call] = field(default_factory=list, repr=False, compare=False)
    _counts: dict[tuple[str, str | None], int] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: Refusals given, by (target, idempotency key): a participant that refused a key
    #: refuses it again, whatever the attempt (a recovery's re-run included).
    _refused: dict[tuple[str, str], Fault] = field(default_factory=dict, repr=False, compare=False)
    #: Keys whose effect landed: an idempotent participant answers them, never refuses.
    _landed: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for fault in self.faults:
            if fault.attempt < 1:
                raise ValueError(f"{fault}: attempts count from 1")
            if (fault.target, fault.attempt) in seen:
                raise ValueError(f"two faults for {fault.target} attempt {fault.attempt}")
            seen.add((fault.target, fault.attempt))

    @classmethod
    def of(cls, *faults: Fault, crash: Crash | None = None) -> FaultPlan:
        return cls(tuple(faults), crash)

    def fresh(self) -> FaultPlan:
        """The same faults and crash with nothing counted yet: one per run (a plan counts
        the attempts of the participants it is installed on)."""
        return FaultPlan(self.faults, self.crash)

    def fault_for(self, target: str, attempt: int, key: str | None = None) -> Fault | None:
        """The fault planned for this attempt of `target`, if any (a refusal of `key`
        given earlier is given again)."""
        if key is not None and (self._refused or self._landed):
            with self._lock:
                refused = self._refused.get((target, key))
                landed = (target, key) in self._landed
            if refused is not None:
                return refused
        else:
            landed = False
        for fault in self.faults:
            if fault.target == target and fault.attempt == attempt:
                if landed and fault.kind is FaultKind.REFUSAL:
                    return None  # a key that was applied is answered, never refused
                return fault
        return None

    def _done(self, target: str, key: str | None) -> None:
        if key is not None:
            with self._lock:
                self._landed.add((target, key))

    def targets(self) -> set[str]:
        return {fault.target for fault in self.faults}

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def install(self, *participants: Participant) -> None:
        """Wrap every action and compensation of these participant instances.

        The orchestrator looks methods up on the instance at every call, so a plan can be
        installed before or after the participants are handed to it. The attempt number is
        the count of calls of that method under one idempotency key (`ctx`'s; without a
        Context, of all its calls) since install: the participant's own count, which a
        crash does not shift (a recovery's re-run is the next call, whatever attempt
        number the runner gives it). Like the idempotent participants the docs ask for, a
        key once refused is refused again, and a key once applied is never refused.
        """
        for participant in participants:
            if not isinstance(participant, Participant):
                raise TypeError(f"FaultPlan.install() takes participants, got {participant!r}")
            for name, declared in type(participant).__coordination_declared__.items():
                original = getattr(participant, name)
                setattr(participant, name, self._wrap(declared, original))

    def _attempt(self, target: str, args: tuple[Any, ...]) -> tuple[int, str | None]:
        ctx = next((arg for arg in args if isinstance(arg, Context)), None)
        key = ctx.idempotency_key if ctx is not None else None
        with self._lock:
            count = self._counts.get((target, key), 0) + 1
            self._counts[(target, key)] = count
        return count, key

    def _log(self, target: str, attempt: int, key: str | None, fault: Fault | None) -> None:
        with self._lock:
            self.calls.append(Call(target, attempt, key, fault))
            if fault is not None and fault.kind is FaultKind.REFUSAL and key is not None:
                self._refused[(target, key)] = fault

    def _wrap(
        self, declared: _Declared[Any, Any], original: Callable[..., Any]
    ) -> Callable[..., Any]:
        target = declared.qualname
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def wrapped_async(*args: Any) -> Any:
                attempt, key = self._attempt(target, args)
                fault = self.fault_for(target, attempt, key)
                self._log(target, attempt, key, fault)
                if fault is not None and not fault.lands:
                    raise fault.error()
                result = await original(*args)
                self._done(target, key)
                if fault is not None:
                    raise fault.error(result)
                return result

            return wrapped_async

        @functools.wraps(original)
        def wrapped(*args: Any) -> Any:
            attempt, key = self._attempt(target, args)
            fault = self.fault_for(target, attempt, key)
            self._log(target, attempt, key, fault)
            if fault is not None and not fault.lands:
                raise fault.error()
            result = original(*args)
            self._done(target, key)
            if fault is not None:
                raise fault.error(result)
            return result

        return wrapped
