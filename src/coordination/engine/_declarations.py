"""How a flow declares its actions: `step(Interface.action)` and `parallel(...)`.

Declarations belong to the engine, not to a runner: an orchestrator lists them as its
steps, and a choreography adopts a flow's declarations (`Choreography(..., flow=...)`), so
both runners read retry, timeout and order from the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordination._participants import Action, _check_timeout, _Declared
from coordination._retry import Retry
from coordination.errors import DefinitionError

__all__ = ["Parallel", "Step", "parallel", "step"]

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
