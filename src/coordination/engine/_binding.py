"""Binding a plan's actions to the participant implementations a runner is given.

Both runners bind the same way: each interface a plan uses is implemented by exactly one of
the participants (in any order), and each action gets the call plans of its forward method
and of its compensation on that implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coordination._participants import Participant
from coordination.engine._attempts import ActionPlan, invoker, output_check, undo_check
from coordination.engine._plan import FlowPlan, PlannedAction
from coordination.errors import BindingError

__all__ = ["BoundAction", "bind", "bind_action", "bound_to", "check_participants"]


@dataclass(frozen=True, slots=True, eq=False)
class BoundAction:
    """A planned action plus the call plans of its method and its undo on one participant."""

    planned: PlannedAction
    participant: Participant
    forward: ActionPlan
    backward: ActionPlan | None


def bind_action(planned: PlannedAction, participant: Participant) -> BoundAction:
    """The call plans of `planned` on `participant` (an item of a mapped step gets its own
    key, `Interface.action[i]`: its idempotency key, and its undo's, name the item)."""
    step = planned.step
    key = planned.key
    forward = ActionPlan(
        step.action,
        key,
        step.retry,
        step.timeout,
        planned.causation,
        None,
        invoker(participant, step.action.name, planned.signature),
        output_check(planned.signature),
    )
    backward = None
    compensation = planned.compensation
    if compensation is not None:
        backward = ActionPlan(
            compensation,
            f"{key}:undo",
            compensation.retry,
            compensation.timeout,
            key,
            key,
            invoker(participant, compensation.name, compensation.signature),
            undo_check(compensation.signature),
        )
    return BoundAction(planned, participant, forward, backward)


def _item_plan(plan: ActionPlan, key: str, item: int, undoes: str | None) -> ActionPlan:
    """The call plan of one item of a mapped step: its step's, under the item's key (its
    idempotency key) and journaled as `action[i]` (which item each row is of)."""
    causation = plan.causation if undoes is None else undoes
    made = ActionPlan(
        plan.declared, key, plan.retry, plan.timeout, causation, undoes, plan.invoke, plan.check
    )
    made.name = f"{plan.name}[{item}]"
    return made


def bound_to(bound: dict[str, BoundAction], planned: PlannedAction) -> BoundAction:
    """The bound action of `planned`: bound once per plan, an item of a mapped step on
    first use (its step's call plans under the item's keys, on the same participant)."""
    found = bound.get(planned.key)
    if found is None:
        step = bound[planned.step.key]
        assert planned.item is not None, planned.key
        key = planned.key
        backward = step.backward
        found = BoundAction(
            planned,
            step.participant,
            _item_plan(step.forward, key, planned.item, None),
            None if backward is None else _item_plan(backward, f"{key}:undo", planned.item, key),
        )
        found = bound.setdefault(key, found)
    return found


def check_participants(name: str, participants: Sequence[object]) -> None:
    """Each participant is a `Participant` instance (not a class, not something else)."""
    for participant in participants:
        if isinstance(participant, type):
            raise BindingError(f"{name}: pass an instance of {participant.__name__}, not the class")
        if not isinstance(participant, Participant):
            raise BindingError(
                f"{name}: {participant!r} is not a Participant; pass instances of participant "
                f"implementations"
            )


def bind(plan: FlowPlan, participants: Sequence[object]) -> dict[str, BoundAction]:
    """Match each interface of `plan` with exactly one of `participants`, in any order."""
    check_participants(plan.name, participants)
    chosen: dict[type[Participant], Participant] = {}
    for interface in plan.interfaces:
        matches = [p for p in participants if isinstance(p, interface)]
        if not matches:
            raise BindingError(
                f"{plan.name}: no participant implements {interface.__name__}; pass an "
                f"instance of a {interface.__name__} implementation"
            )
        if len(matches) > 1:
            names = ", ".join(type(p).__name__ for p in matches)
            raise BindingError(
                f"{plan.name}: several participants implement {interface.__name__} ({names}); "
                f"pass exactly one"
            )
        chosen[interface] = matches[0]
    used = {id(p) for p in chosen.values()}
    for participant in participants:
        if id(participant) not in used:
            raise BindingError(
                f"{plan.name}: {type(participant).__name__} implements no interface this flow "
                f"uses ({', '.join(i.__name__ for i in plan.interfaces)}); remove it"
            )
    return {
        planned.key: bind_action(planned, chosen[planned.interface]) for planned in plan.actions
    }
