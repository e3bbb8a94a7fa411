"""Binding a flow's steps to the participant implementations an orchestrator is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coordination._context import Context
from coordination._participants import Participant
from coordination._signatures import CONTEXT_ARGUMENT, Signature
from coordination.errors import BindingError
from coordination.orchestration._core import output_check
from coordination.orchestration._flow import CompiledStep, FlowDefinition

__all__ = ["BoundStep", "bind"]

Invoke = Callable[[list[Any], Context | None], Any]


@dataclass(frozen=True, slots=True, eq=False)
class BoundStep:
    """A compiled step plus the implementation's methods that carry it out."""

    compiled: CompiledStep
    participant: Participant
    invoke: Invoke
    check: Callable[[Any], bool]
    undo: Invoke | None
    undo_check: Callable[[Any], bool] | None
    is_async: bool
    wants_context: bool
    undo_wants_context: bool


def _invoker(method: Callable[..., Any], signature: Signature) -> Invoke:
    """A call of `method` with its inputs and context in parameter order, specialised for speed."""
    arguments = signature.arguments
    if arguments == (0,):
        return lambda inputs, ctx: method(inputs[0])
    if arguments == (0, CONTEXT_ARGUMENT):
        return lambda inputs, ctx: method(inputs[0], ctx)
    return lambda inputs, ctx: method(
        *[ctx if index == CONTEXT_ARGUMENT else inputs[index] for index in arguments]
    )


def _undo_check(signature: Signature) -> Callable[[Any], bool]:
    outputs = signature.outputs
    if not outputs:
        return lambda value: value is None
    if signature.returns_tuple:
        return lambda value: isinstance(value, tuple) and len(value) == len(outputs)
    expected = outputs[0]
    return lambda value: isinstance(value, expected)


def bind(flow: FlowDefinition, participants: Sequence[object]) -> tuple[BoundStep, ...]:
    """Match each interface of `flow` with exactly one of `participants`, in any order."""
    for participant in participants:
        if not isinstance(participant, Participant):
            raise BindingError(
                f"{flow.name}: {participant!r} is not a Participant; pass instances of "
                f"implementations of {', '.join(i.__name__ for i in flow.interfaces)}"
            )
        if isinstance(participant, type):
            raise BindingError(f"{flow.name}: pass an instance of {participant.__name__}")
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
        signature = compiled.signature
        method = getattr(participant, compiled.step.action.name)
        compensation = compiled.compensation
        undo: Invoke | None = None
        undo_check = None
        undo_wants_context = False
        if compensation is not None:
            undo = _invoker(getattr(participant, compensation.name), compensation.signature)
            undo_check = _undo_check(compensation.signature)
            undo_wants_context = compensation.signature.wants_context
        bound.append(
            BoundStep(
                compiled=compiled,
                participant=participant,
                invoke=_invoker(method, signature),
                check=output_check(compiled),
                undo=undo,
                undo_check=undo_check,
                is_async=signature.is_async,
                wants_context=signature.wants_context,
                undo_wants_context=undo_wants_context,
            )
        )
    return tuple(bound)
