"""How a flow declares its actions: `step(Interface.action)` and `parallel(...)`.

Declarations belong to the engine, not to a runner: an orchestrator lists them as its
steps, and a choreography adopts a flow's declarations (`Choreography(..., flow=...)`), so
both runners read retry, timeout and order from the same values.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from typing import Any

from coordination._messages import Message
from coordination._participants import Action, _check_timeout, _Declared
from coordination._retry import Retry
from coordination.errors import DefinitionError

__all__ = ["Parallel", "Step", "WaitStep", "parallel", "seconds", "sleep", "step", "wait"]

_UNSET: Any = object()


class Step:
    """One call of an interface action, with the action's retry, timeout and pivot or
    overrides."""

    __slots__ = ("action", "key", "pivot", "retry", "timeout")

    def __init__(
        self, action: Action[Any, Any], retry: Retry, timeout: float | None, pivot: bool = False
    ) -> None:
        # Plain attributes, not dataclass fields: an Action-typed field would be read through
        # Action.__get__ by type checkers.
        self.action = action
        self.retry = retry
        self.timeout = timeout
        #: The point of no return: once it completed, nothing of the flow is undone.
        self.pivot = pivot
        #: `Interface.action`: unique within a flow, stable across runs.
        self.key = action.qualname

    def __repr__(self) -> str:
        pivot = ", pivot=True" if self.pivot else ""
        return f"step({self.key}, retry={self.retry!r}, timeout={self.timeout!r}{pivot})"


@dataclass(frozen=True, slots=True)
class Parallel:
    """Steps that depend only on earlier groups, so they may run side by side."""

    steps: tuple[Step, ...]


def step(
    target: Any, *, retry: Retry = _UNSET, timeout: float | None = _UNSET, pivot: bool = _UNSET
) -> Step:
    """A step calling `target`, an interface action such as `Payments.charge`.

    `retry`, `timeout` and `pivot` (the point of no return) override the action's own for
    this flow only.
    """
    if isinstance(target, Step):
        target = target.action
    if not isinstance(target, Action):
        if isinstance(target, _Declared):
            raise DefinitionError(
                f"step({target.qualname}): that is a compensation; steps name forward actions, "
                f"and the orchestrator runs their compensations itself"
            )
        name = getattr(target, "__qualname__", repr(target))
        raise DefinitionError(
            f"step({name}): a step names an @action of a participant interface, like "
            f"step(Payments.charge); {name} is not one (name the interface, not an "
            f"implementation class whose method overrides it)"
        )
    if target.owner is None:
        raise DefinitionError(f"step({target.name}): the action is not defined in a class")
    from coordination._participants import Participant

    if not issubclass(target.owner, Participant):
        raise DefinitionError(
            f"step({target.qualname}): {target.owner.__name__} must subclass Participant"
        )
    if retry is not _UNSET and not isinstance(retry, Retry):
        raise DefinitionError(f"step({target.qualname}, retry=...) takes a Retry, got {retry!r}")
    chosen_timeout = target.timeout if timeout is _UNSET else timeout
    _check_timeout(chosen_timeout, f"step({target.qualname})")
    if pivot is not _UNSET and not isinstance(pivot, bool):
        raise DefinitionError(f"step({target.qualname}, pivot=...) takes True or False")
    return Step(
        target,
        target.retry if retry is _UNSET else retry,
        chosen_timeout,
        target.pivot if pivot is _UNSET else pivot,
    )


def parallel(*steps: Any) -> Parallel:
    """Steps that may run side by side; each consumes only outputs of earlier groups."""
    if not steps:
        raise DefinitionError("parallel() needs at least one step")
    members: list[Step] = []
    for member in steps:
        if isinstance(member, Parallel):
            raise DefinitionError("parallel() cannot contain parallel(): list the steps flat")
        members.append(member if isinstance(member, Step) else step(member))
    return Parallel(tuple(members))


@dataclass(frozen=True, slots=True)
class WaitStep:
    """A flow waits here for an outside message (a webhook, a human's approval), or, with
    no message types, for a durable timer (`sleep`)."""

    #: The message types it waits for: one, or the members of a union (either will do);
    #: none for a sleep.
    types: tuple[type[Message], ...]
    #: Seconds a wait waits before it fails like a step (None: until its message comes).
    timeout: float | None = None
    #: Seconds a sleep sleeps.
    delay: float | None = None
    #: The member of `types` the engine builds (with no arguments) when the timeout
    #: passes: the wait then completes with it, a business outcome, instead of failing.
    on_timeout: type[Message] | None = None

    @property
    def key(self) -> str:
        """`wait.PaymentSettled` (`wait.A|B` for a union): unique within a flow. A sleep is
        numbered by the plan (`sleep.1`, ...)."""
        if not self.types:
            return "sleep"
        return "wait." + "|".join(kind.__name__ for kind in self.types)

    def __repr__(self) -> str:
        if not self.types:
            return f"sleep({self.delay:g})"
        after = f", timeout={self.timeout:g}" if self.timeout is not None else ""
        if self.on_timeout is not None:
            after += f", on_timeout={self.on_timeout.__name__}"
        return f"wait({' | '.join(kind.__name__ for kind in self.types)}{after})"


def seconds(duration: object, where: str) -> float:
    """A duration (seconds as a number, or a `timedelta`) in seconds; > 0, else
    `DefinitionError` naming `where`."""
    if isinstance(duration, dt.timedelta):
        duration = duration.total_seconds()
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration > 0:
        raise DefinitionError(
            f"{where}: a duration is a positive number of seconds or a timedelta, got {duration!r}"
        )
    return float(duration)


def wait(
    message_type: Any,
    *,
    timeout: float | dt.timedelta | None = None,
    on_timeout: type[Message] | None = None,
) -> WaitStep:
    """A step that suspends the flow until an outside message of `message_type` arrives.

    `message_type` is a message class, or a union of them (`PaymentSettled | PaymentFailed`:
    either resumes it, and the steps that needed the other are skipped, as after a business
    outcome). The wait is a group of its own: the step after it consumes the message, or
    what the group before the wait produced. The instance is `WAITING` meanwhile, holding
    no thread and no lease; `Orchestrator.send()` (or a choreography's `publish(message,
    correlation_id=...)`) resumes it; a message that comes early is kept for it. Past its
    `timeout` (seconds, or a `timedelta`, on the runner's clock: `resume_due()` fires it)
    the wait fails like a step, and what was done is undone, unless the union names a
    timeout outcome: `wait(CodeEntered | CodeExpired, timeout=300, on_timeout=CodeExpired)`
    completes the wait with `CodeExpired()` (built by the engine, so it takes no arguments)
    and the flow takes that branch, as after any business outcome.
    """
    if typing.get_origin(message_type) in (types.UnionType, typing.Union):
        members = typing.get_args(message_type)
    else:
        members = (message_type,)
    if not members or not all(isinstance(m, type) and issubclass(m, Message) for m in members):
        raise DefinitionError(
            f"wait({message_type!r}): wait for a message type (an Event or Command subclass), "
            f"or a union of them, like wait(PaymentSettled | PaymentFailed)"
        )
    for first in members:
        for second in members:
            if first is not second and issubclass(first, second):
                raise DefinitionError(
                    f"wait({message_type!r}): {first.__name__} is a {second.__name__}, so the "
                    f"messages cannot be told apart; wait for unrelated message types"
                )
    limit = None if timeout is None else seconds(timeout, f"wait({message_type!r}, timeout=)")
    if on_timeout is not None:
        _check_timeout_outcome(message_type, members, limit, on_timeout)
    return WaitStep(tuple(members), timeout=limit, on_timeout=on_timeout)


def _check_timeout_outcome(
    declared: Any, members: tuple[Any, ...], limit: float | None, outcome: Any
) -> None:
    """`on_timeout=` names a member of the union the engine can build with no arguments."""
    where = f"wait({declared!r}, on_timeout={getattr(outcome, '__name__', outcome)!r})"
    if limit is None:
        raise DefinitionError(f"{where}: a timeout outcome needs a timeout=; give it one")
    if outcome not in members:
        raise DefinitionError(
            f"{where}: the timeout outcome is one of the messages the wait waits for; add it "
            f"to the union, like wait(CodeEntered | CodeExpired, timeout=..., "
            f"on_timeout=CodeExpired)"
        )
    if len(members) < 2:
        raise DefinitionError(
            f"{where}: a wait for its timeout outcome alone is a sleep; wait for a union of "
            f"the message that may come and the timeout outcome"
        )
    required = [name for name, field in outcome.model_fields.items() if field.is_required()]
    if required:
        raise DefinitionError(
            f"{where}: the engine builds the timeout outcome with no arguments, but "
            f"{outcome.__name__} requires {', '.join(required)}; give those fields defaults"
        )


def sleep(duration: float | dt.timedelta) -> WaitStep:
    """A step that suspends the flow for `duration` (seconds, or a `timedelta`): a durable
    timer on the runner's clock. The instance is `WAITING` meanwhile, holding no thread and
    no lease; `resume_due()` carries on with it once the time came, exactly once across
    crashes. Like a wait, a group of its own that passes the group before it on."""
    return WaitStep((), delay=seconds(duration, "sleep()"))
