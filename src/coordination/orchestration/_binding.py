"""Binding a flow's steps to the participant implementations an orchestrator is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coordination._attempts import ActionPlan, invoker, output_check, undo_check
from coordination._participants import Participant
from coordination.errors import BindingError
from coordination.orchestration._flow import CompiledStep, FlowDefinition

__all__ = ["BoundStep", "bind"]


@dataclass(frozen=True, slots=True, eq=False)
class BoundStep:
    """A compiled step plus the plans of its action and of its undo on one implementation."""

    compiled: CompiledStep
    participant: Participant
    forward: ActionPlan
    backward: ActionPlan | None


def bind(flow: FlowDefinition, participants: Sequence[object]) -> tuple[BoundStep, ...]:
    """Match each interface of `flow` with exactly one of `participants`, in any order."""
    for participant in participants:
        if isinstance(participant, type):
            raise BindingError(
                f"{flow.name}: pass an instance of {participant.__name__}, not the class"
            )
        if not isinstance(participant, Participant):
            raise BindingError(
                f"{flow.name}: {participant!r} is not a Participant; pass instances of "
                f"implementations of {', '.join(i.__name__ for i in flow.interfaces)}"
            )
    chosen: dict[type[Participant], Participant] = {}
    for interface in flow.interfaces:
        matches = [p for p in participants if isinstance(p, interface)]
        if not matches:
            raise BindingError(
                f"{flow.name}: no participant implements {interface.__name__}; pass an instance "
                f"of a {interface.__name__} implementation"
            )
        if len(matches) > 1:
            names = ", ".join(type(p).__name__ for p in matches)
            raise BindingError(
                f"{flow.name}: several participants implement {interface.__name__} ({names}); "
                f"pass exactly one"
            )
        chosen[interface] = matches[0]
    used = {id(p) for p in chosen.values()}
    for participant in participants:
        if id(participant) not in used:
            raise BindingError(
                f"{flow.name}: {type(participant).__name__} implements no interface this flow "
                f"uses ({', '.join(i.__name__ for i in flow.interfaces)}); remove it"
            )
    bound: list[BoundStep] = []
    for compiled in flow.steps:
        participant = chosen[compiled.interface]
        step = compiled.step
        forward = ActionPlan(
            step.action,
            step.key,
            step.retry,
            step.timeout,
            compiled.causation,
            None,
            invoker(participant, step.action.name, compiled.signature),
            output_check(compiled.signature),
        )
        backward = None
        compensation = compiled.compensation
        if compensation is not None:
            backward = ActionPlan(
                compensation,
                f"{step.key}:undo",
                compensation.retry,
                compensation.timeout,
                step.key,
                step.key,
                invoker(participant, compensation.name, compensation.signature),
                undo_check(compensation.signature),
            )
        bound.append(BoundStep(compiled, participant, forward, backward))
    return tuple(bound)
