"""Attempts: the bookkeeping both runners share for one action (or undo) of one flow instance.

Like tenacity's `BaseRetrying.iter()`, nothing here does I/O or waits: `Attempts` answers
"retry after this delay / give up" and records journal rows; a runner only carries it out.
The orchestrator and the choreography use the same plans and attempts, so the same faults
lead to the same journal and the same outcome under either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordination._clock import Clock
from coordination._context import Context
from coordination._journal import EntryKind, Row, row
from coordination._messages import Message
from coordination._participants import Participant, _Declared
from coordination._retry import Retry
from coordination._signatures import CONTEXT_ARGUMENT, Signature
from coordination.errors import BindingError, OutputTypeError

__all__ = [
    "ActionPlan",
    "Attempts",
    "Invoke",
    "describe",
    "invoker",
    "output_check",
    "undo_check",
]

_STARTED = EntryKind.STARTED
_COMPLETED = EntryKind.COMPLETED
_COMPENSATED = EntryKind.COMPENSATED
_FAILED = EntryKind.FAILED
_COMPENSATION_FAILED = EntryKind.COMPENSATION_FAILED
_RETRIED = EntryKind.RETRIED

Invoke = Callable[[list[Any], Context | None], Any]


def describe(error: BaseException) -> str:
    """`Type: message`, the way errors appear in the journal."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def invoker(participant: Participant, name: str, signature: Signature) -> Invoke:
    """A call of `participant.<name>` with its inputs and context in parameter order.

    Generated as straight-line code (as dataclasses generates `__init__`): a generic
    argument-shuffling call cost ~10 µs per workflow in the benchmark. The method is looked
    up on every call, so wrapping it on the instance later (a fault plan, a mock) applies.
    """
    if not name.isidentifier():
        raise BindingError(f"{name!r} is not a method name")
    arguments = ", ".join(
        "ctx" if index == CONTEXT_ARGUMENT else f"inputs[{int(index)}]"
        for index in signature.arguments
    )
    namespace: dict[str, Any] = {"participant": participant}
    exec(f"def invoke(inputs, ctx):\n    return participant.{name}({arguments})\n", namespace)
    invoke: Invoke = namespace["invoke"]
    return invoke


class ActionPlan:
    """What the attempts of one step, or of its undo, need: computed once per orchestrator."""

    __slots__ = (
        "causation",
        "check",
        "declared",
        "inline",
        "invoke",
        "is_async",
        "key",
        "name",
        "participant",
        "retry",
        "timeout",
        "undoes",
        "wants_context",
    )

    def __init__(
        self,
        declared: _Declared[Any, Any],
        key: str,
        retry: Retry,
        timeout: float | None,
        causation: str | None,
        undoes: str | None,
        invoke: Callable[[list[Any], Context | None], Any],
        check: Callable[[Any], bool],
    ) -> None:
        self.declared = declared
        self.participant = declared.participant
        self.name = declared.name
        #: The idempotency key suffix: `Interface.action`, or `Interface.action:undo`.
        self.key = key
        self.retry = retry
        self.timeout = timeout
        self.causation = causation
        self.undoes = undoes
        self.invoke = invoke
        self.check = check
        self.is_async = declared.signature.is_async
        self.wants_context = declared.signature.wants_context
        #: A first attempt may be made inline (`first_attempt`): a sync callable with no
        #: timeout and no step deadline runs on the calling thread, unbounded.
        self.inline = not self.is_async and timeout is None and retry.deadline is None

    def started(self, correlation_id: str, causation: str | None, attempt: int, at: float) -> Row:
        """The journal row of an attempt that started."""
        return row(
            _STARTED,
            self.participant,
            self.name,
            correlation_id,
            causation_id=causation,
            attempt=attempt,
            at=at,
            undoes=self.undoes,
        )

    def ended(
        self,
        correlation_id: str,
        causation: str | None,
        attempt: int,
        at: float,
        duration: float,
    ) -> Row:
        """The journal row of an attempt that succeeded (an undo's: compensated)."""
        return row(
            _COMPLETED if self.undoes is None else _COMPENSATED,
            self.participant,
            self.name,
            correlation_id,
            causation_id=causation,
            attempt=attempt,
            at=at,
            duration=duration,
            undoes=self.undoes,
        )

    def wrong_output(self, result: Any) -> OutputTypeError:
        """The error of an attempt that returned something other than its declared output."""
        return OutputTypeError(
            f"{self.declared.qualname} returned {type(result).__name__}, not its declared "
            f"output {_describe_output(self.declared)}"
        )


class Attempts:
    """The attempts of one step (or one undo): contexts, journal rows, retry decisions.

    `first` numbers the first attempt: after a crash, a re-run continues the numbering of
    the attempts made before it (the retry budget starts afresh: a crash is not a failure).
    """

    __slots__ = (
        "_started",
        "_started_at",
        "attempt",
        "causation",
        "check_schedule",
        "clock",
        "correlation_id",
        "ended_at",
        "first",
        "idempotency_key",
        "plan",
        "random",
        "rows",
        "step_deadline",
    )

    def __init__(
        self,
        plan: ActionPlan,
        correlation_id: str,
        clock: Clock,
        random: Callable[[], float],
        causation: str | None = None,
        first: int = 1,
        key: str | None = None,
    ) -> None:
        self.plan = plan
        #: What caused these attempts: the plan's (a step) unless given (a message id).
        self.causation = plan.causation if causation is None else causation
        self.correlation_id = correlation_id
        #: Stable across retries and recoveries; `key` (a late result's undo) overrides it.
        self.idempotency_key = f"{correlation_id}:{plan.key if key is None else key}"
        self.clock = clock
        self.random = random
        self.first = first
        self.attempt = first - 1
        self.rows: list[Any] = []
        deadline = plan.retry.deadline
        self.step_deadline = None if deadline is None else clock.monotonic() + deadline
        self._started = 0.0
        self._started_at = 0.0
        #: Wall-clock time of the last attempt's end (what the store records as `now`).
        self.ended_at = 0.0
        #: Checks a schedule against the flow (set for forward actions only).
        self.check_schedule: Callable[[Message, str | None], None] | None = None

    def begin(self) -> Context | None:
        """Start the next attempt; returns its Context when the action takes one."""
        self.attempt = attempt = self.attempt + 1
        clock = self.clock
        plan = self.plan
        started = self._started = clock.monotonic()
        self._started_at = clock.now()
        self.rows += plan.started(self.correlation_id, self.causation, attempt, self._started_at)
        if not plan.wants_context:
            return None
        deadline = None if plan.timeout is None else started + plan.timeout
        step_deadline = self.step_deadline
        if step_deadline is not None and (deadline is None or step_deadline < deadline):
            deadline = step_deadline
        ctx = Context(self.correlation_id, self.idempotency_key, attempt, deadline, clock)
        # What it schedules is kept with the step only if this attempt succeeds.
        ctx._check_schedule = self.check_schedule
        return ctx

    def attempt_timeout(self) -> float | None:
        """Real seconds this attempt may run: its timeout, shortened by the step deadline.

        Without a timeout an attempt is never cut off, sync or async alike: the step
        deadline then only stops further attempts (and is in `ctx.deadline`).
        """
        timeout = self.plan.timeout
        if timeout is None or self.step_deadline is None:
            return timeout
        return min(timeout, max(self.step_deadline - self.clock.monotonic(), 0.0))

    def succeeded(self, result: Any) -> None:
        """Journal a successful attempt; raise `OutputTypeError` if it is not the output."""
        plan = self.plan
        if not plan.check(result):
            raise plan.wrong_output(result)
        duration = self.clock.monotonic() - self._started
        self.ended_at = ended_at = self._started_at + duration
        self.rows += plan.ended(
            self.correlation_id, self.causation, self.attempt, ended_at, duration
        )

    def adopt(self, started: float, started_at: float, rows: Row) -> None:
        """Take over a first attempt made inline (`first_attempt`) that failed: it is
        attempt 1 of these, journaled with `rows`, started at `started`."""
        self.attempt = 1
        self._started = started
        self._started_at = started_at
        self.rows += rows

    def failed(self, error: BaseException) -> float | None:
        """Journal a failed attempt; the delay before the next one, or None to give up."""
        plan = self.plan
        clock = self.clock
        now = clock.monotonic()
        retry = plan.retry
        tries = self.attempt - self.first + 1
        delay: float | None = None
        detail = None
        if retry.retries(error, tries):
            delay = retry.delay(tries, self.random)
            if self.step_deadline is not None and now + delay >= self.step_deadline:
                detail = f"step deadline of {retry.deadline}s reached: no more attempts"
                delay = None
        self.rows += row(
            _FAILED if plan.undoes is None else _COMPENSATION_FAILED,
            plan.participant,
            plan.name,
            self.correlation_id,
            causation_id=self.causation,
            attempt=self.attempt,
            at=clock.now(),
            duration=now - self._started,
            undoes=plan.undoes,
            error=describe(error),
            detail=detail,
        )
        if delay is not None:
            self.rows += row(
                _RETRIED,
                plan.participant,
                plan.name,
                self.correlation_id,
                causation_id=self.causation,
                attempt=self.attempt + 1,
                at=clock.now(),
                undoes=plan.undoes,
                detail=f"after {delay:.3f}s",
            )
        return delay


def _describe_output(declared: _Declared[Any, Any]) -> str:
    signature = declared.signature
    if not signature.outputs:
        return "None"
    names = [member.__name__ for member in signature.outputs]
    if signature.returns_tuple:
        return "tuple[" + ", ".join(names) + "]"
    return " | ".join(names)


def output_check(signature: Signature) -> Callable[[Any], bool]:
    """A fast predicate: is a value this action's declared output?"""
    if not signature.outputs:
        return _is_none
    if signature.returns_one_of:
        alternatives = signature.outputs
        return lambda value: isinstance(value, alternatives)
    if signature.returns_many:  # a fan-out: any number of items of its one type
        kind = signature.outputs[0]
        return lambda value: isinstance(value, tuple) and all(isinstance(i, kind) for i in value)
    if not signature.returns_tuple:
        expected = signature.outputs[0]
        return lambda value: isinstance(value, expected)
    members = signature.outputs
    count = len(members)
    return lambda value: (
        isinstance(value, tuple)
        and len(value) == count
        and all(isinstance(item, kind) for item, kind in zip(value, members, strict=True))
    )


def _is_none(value: Any) -> bool:
    return value is None


def undo_check(signature: Signature) -> Callable[[Any], bool]:
    """A fast predicate: is a value what a compensation declares it returns?"""
    outputs = signature.outputs
    if not outputs:
        return lambda value: value is None
    if signature.returns_tuple:
        return lambda value: isinstance(value, tuple) and len(value) == len(outputs)
    if signature.returns_one_of:
        return lambda value: isinstance(value, outputs)
    expected = outputs[0]
    return lambda value: isinstance(value, expected)
