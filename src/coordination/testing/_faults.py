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

__all__ = ["Fault", "FaultKind", "FaultPlan", "InjectedFault", "InjectedRefusal"]


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
    calls: list[Call] = field(default_factory=list, repr=False, compare=False)
    _counts: dict[tuple[str, str | None], int] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for fault in self.faults:
            if fault.attempt < 1:
                raise ValueError(f"{fault}: attempts count from 1")
            if (fault.target, fault.attempt) in seen:
                raise ValueError(f"two faults for {fault.target} attempt {fault.attempt}")
            seen.add((fault.target, fault.attempt))

    @classmethod
    def of(cls, *faults: Fault) -> FaultPlan:
        return cls(tuple(faults))

    def fault_for(self, target: str, attempt: int) -> Fault | None:
        """The fault planned for this attempt of `target`, if any."""
        for fault in self.faults:
            if fault.target == target and fault.attempt == attempt:
                return fault
        return None

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
        `ctx.attempt` when the method takes a Context, else the count of calls of that
        method since install.
        """
        for participant in participants:
            if not isinstance(participant, Participant):
                raise TypeError(f"FaultPlan.install() takes participants, got {participant!r}")
            for name, declared in type(participant).__coordination_declared__.items():
                original = getattr(participant, name)
                setattr(participant, name, self._wrap(declared, original))

    def _attempt(self, target: str, args: tuple[Any, ...]) -> tuple[int, str | None]:
        ctx = next((arg for arg in args if isinstance(arg, Context)), None)
        if ctx is not None:
            return ctx.attempt, ctx.idempotency_key
        with self._lock:
            count = self._counts.get((target, None), 0) + 1
            self._counts[(target, None)] = count
        return count, None

    def _log(self, target: str, attempt: int, key: str | None, fault: Fault | None) -> None:
        with self._lock:
            self.calls.append(Call(target, attempt, key, fault))

    def _wrap(
        self, declared: _Declared[Any, Any], original: Callable[..., Any]
    ) -> Callable[..., Any]:
        target = declared.qualname
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def wrapped_async(*args: Any) -> Any:
                attempt, key = self._attempt(target, args)
                fault = self.fault_for(target, attempt)
                self._log(target, attempt, key, fault)
                if fault is not None and not fault.lands:
                    raise fault.error()
                result = await original(*args)
                if fault is not None:
                    raise fault.error(result)
                return result

            return wrapped_async

        @functools.wraps(original)
        def wrapped(*args: Any) -> Any:
            attempt, key = self._attempt(target, args)
            fault = self.fault_for(target, attempt)
            self._log(target, attempt, key, fault)
            if fault is not None and not fault.lands:
                raise fault.error()
            result = original(*args)
            if fault is not None:
                raise fault.error(result)
            return result

        return wrapped
