"""A flow's declared steps, checked and compiled once, when the Orchestrator class is defined.

Checking here means a wrong flow fails at import, naming the step, instead of half-way
through a run. Compiling here means a run only indexes lists: each message a run passes
around has a numbered slot (slot 0 is the start message, then every step output).
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from typing import Any

from coordination._messages import Message, type_name_of
from coordination._participants import Action, Compensation, Participant
from coordination._signatures import Signature
from coordination.errors import DefinitionError
from coordination.orchestration._steps import Parallel, Step, step

__all__ = ["CompiledStep", "FlowDefinition", "compile_flow", "shape_difference"]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledStep:
    """One step of a compiled flow: where its inputs come from, where its outputs go."""

    index: int
    group: int
    step: Step
    #: `Interface.action`, as `step.key` (kept here too: it is read on every step).
    key: str
    signature: Signature
    input_slots: tuple[int, ...]
    output_slots: tuple[int, ...]
    compensation: Compensation[Any, Any] | None
    #: For a compensation typed as an input: which slot it receives; else None.
    undo_input_slot: int | None
    #: For a compensation typed as the output: which member of the output it receives.
    undo_output_member: int | None
    #: The step whose output triggered this one (None: the start message), for the journal.
    causation: str | None

    @property
    def interface(self) -> type[Participant]:
        owner = self.step.action.owner
        assert owner is not None
        return owner


@dataclass(frozen=True, slots=True, eq=False)
class FlowDefinition:
    """Everything a run needs to know about its flow, computed once."""

    name: str
    start_type: type[Message]
    groups: tuple[tuple[CompiledStep, ...], ...]
    steps: tuple[CompiledStep, ...]
    slot_types: tuple[type[Message], ...]
    interfaces: tuple[type[Participant], ...]
    has_async: bool

    @property
    def shape(self) -> str:
        """The flow's steps and message types as text, stored with every run.

        A run is resumed only by a definition of the same shape: retries and timeouts may
        change between versions, steps and their messages may not (`shape_difference`).
        """
        return json.dumps(
            [[_step_shape(member) for member in group] for group in self.groups],
            separators=(",", ":"),
        )

    @property
    def message_types(self) -> tuple[type[Message], ...]:
        """Every message type a run of this flow stores (stores read JSON back with these)."""
        extra: list[type[Message]] = []
        for compiled in self.steps:
            if compiled.compensation is not None:
                extra.extend(compiled.compensation.signature.outputs)
        return tuple(dict.fromkeys((*self.slot_types, *extra)))


def _step_shape(compiled: CompiledStep) -> str:
    signature = compiled.signature
    inputs = ", ".join(type_name_of(t) for t in signature.inputs)
    outputs = ", ".join(type_name_of(t) for t in signature.outputs) or "None"
    return f"{compiled.key}({inputs}) -> {outputs}"


def shape_difference(stored: str, current: str) -> str | None:
    """How a stored flow shape differs from the current one, in words; None if equal."""
    if stored == current:
        return None
    old: list[list[str]] = json.loads(stored)
    new: list[list[str]] = json.loads(current)
    for position, (was, now) in enumerate(zip(old, new, strict=False), start=1):
        if was != now:
            return f"step group {position} was {' + '.join(was)}; it is now {' + '.join(now)}"
    if len(old) > len(new):
        return f"steps after group {len(new)} were removed: {old[len(new) :]}"
    return f"steps were added after group {len(old)}: {new[len(old) :]}"


def _normalise(flow: str, declared: object) -> list[tuple[Step, ...]]:
    if not isinstance(declared, tuple | list) or not declared:
        raise DefinitionError(
            f"{flow}: steps must be a non-empty tuple like "
            f"steps = (step(Payments.charge), parallel(step(A.x), step(B.y)), ...)"
        )
    groups: list[tuple[Step, ...]] = []
    for position, item in enumerate(declared, start=1):
        if isinstance(item, Parallel):
            groups.append(item.steps)
        elif isinstance(item, Step):
            groups.append((item,))
        elif isinstance(item, Action):
            groups.append((step(item),))
        else:
            raise DefinitionError(
                f"{flow}: steps item {position} is {item!r}; use step(Interface.action) or "
                f"parallel(step(...), step(...))"
            )
    return groups


def _names(types: typing.Iterable[type[Message]]) -> str:
    return ", ".join(t.__name__ for t in types) or "nothing"


def compile_flow(
    flow: str,
    declared: object,
    start_type: type[Message] | None = None,
    output_type: Any = None,
) -> FlowDefinition:
    """Check and compile `declared` steps; raise `DefinitionError` naming what is wrong."""
    groups = _normalise(flow, declared)
    seen_keys: set[str] = set()
    for group in groups:
        for member in group:
            if member.key in seen_keys:
                raise DefinitionError(
                    f"{flow}: {member.key} appears twice; a flow calls each action once"
                )
            seen_keys.add(member.key)

    first = groups[0]
    if start_type is None:
        inputs = first[0].action.signature.inputs
        if len(inputs) != 1:
            raise DefinitionError(
                f"{flow}: the first step {first[0].key} takes {_names(inputs)}; the first step "
                f"consumes only the start message"
            )
        start_type = inputs[0]

    slot_types: list[type[Message]] = [start_type]
    slot_producers: list[str | None] = [None]
    compiled_groups: list[tuple[CompiledStep, ...]] = []
    previous_slots: set[int] = {0}
    index = 0
    for group_number, group in enumerate(groups):
        group_slots: set[int] = set()
        compiled_group: list[CompiledStep] = []
        for member in group:
            signature = member.action.signature
            input_slots: list[int] = []
            for wanted in signature.inputs:
                matches = [slot for slot, have in enumerate(slot_types) if issubclass(have, wanted)]
                if not matches:
                    where = "the start message" if group_number == 0 else "an earlier step"
                    raise DefinitionError(
                        f"{flow}: step {member.key} needs {wanted.__name__}, but neither "
                        f"{where} nor any step before it produces one (available: "
                        f"{_names(slot_types)})"
                    )
                if len(matches) > 1:
                    raise DefinitionError(
                        f"{flow}: step {member.key} needs {wanted.__name__}, and several "
                        f"earlier messages are one: {_names(slot_types[s] for s in matches)}"
                    )
                input_slots.append(matches[0])
            if not previous_slots.intersection(input_slots):
                raise DefinitionError(
                    f"{flow}: step {member.key} consumes nothing produced by the group just "
                    f"before it ({_names(slot_types[s] for s in sorted(previous_slots))}); "
                    f"order the steps so each consumes the output of the one before"
                )
            output_slots: list[int] = []
            for produced in signature.outputs:
                clash = [have for have in slot_types if have is produced]
                if clash:
                    raise DefinitionError(
                        f"{flow}: step {member.key} produces {produced.__name__}, which the "
                        f"start message or an earlier step already provides; no two steps "
                        f"may produce the same message type"
                    )
                output_slots.append(len(slot_types) + len(group_slots))
                group_slots.add(output_slots[-1])
            compensation = member.action.undo
            undo_input_slot: int | None = None
            undo_output_member: int | None = None
            if compensation is not None:
                taken = compensation.signature.inputs[0]
                if taken in signature.outputs:
                    undo_output_member = signature.outputs.index(taken)
                else:
                    undo_input_slot = input_slots[signature.inputs.index(taken)]
            compiled_group.append(
                CompiledStep(
                    index=index,
                    group=group_number,
                    step=member,
                    key=member.key,
                    signature=signature,
                    input_slots=tuple(input_slots),
                    output_slots=tuple(output_slots),
                    compensation=compensation,
                    undo_input_slot=undo_input_slot,
                    undo_output_member=undo_output_member,
                    causation=slot_producers[
                        next((s for s in input_slots if s in previous_slots), input_slots[0])
                    ],
                )
            )
            index += 1
        # Outputs of a group become visible only to later groups (siblings run side by side).
        sibling_outputs = [t for m in compiled_group for t in m.signature.outputs]
        if len(set(sibling_outputs)) != len(sibling_outputs):
            raise DefinitionError(
                f"{flow}: two steps of one parallel group produce the same message type; "
                f"no two steps may produce the same message type"
            )
        slot_types.extend(sibling_outputs)
        slot_producers.extend(m.key for m in compiled_group for _ in m.signature.outputs)
        compiled_groups.append(tuple(compiled_group))
        previous_slots = group_slots

    steps = tuple(member for group in compiled_groups for member in group)
    _check_output(flow, compiled_groups[-1], output_type)
    interfaces = tuple(dict.fromkeys(member.interface for member in steps))
    return FlowDefinition(
        name=flow,
        start_type=start_type,
        groups=tuple(compiled_groups),
        steps=steps,
        slot_types=tuple(slot_types),
        interfaces=interfaces,
        has_async=any(member.signature.is_async for member in steps),
    )


def _check_output(flow: str, last: tuple[CompiledStep, ...], declared: Any) -> None:
    if declared is None or declared is Any or isinstance(declared, typing.TypeVar):
        return
    actual: list[Any] = [member.signature.output for member in last]
    if len(last) == 1:
        expected: Any = actual[0]
        matches = _same_output(expected, declared)
    else:
        expected = tuple(actual)
        members = typing.get_args(declared)
        matches = (
            typing.get_origin(declared) is tuple
            and len(members) == len(actual)
            and all(_same_output(a, d) for a, d in zip(actual, members, strict=True))
        )
    if not matches:
        raise DefinitionError(
            f"{flow}: declared output {_describe(declared)} but the last group returns "
            f"{_describe(expected)}"
        )


def _same_output(actual: Any, declared: Any) -> bool:
    if declared is None or declared is type(None):
        return actual is None
    if isinstance(actual, tuple):
        members = typing.get_args(declared)
        return (
            typing.get_origin(declared) is tuple
            and len(members) == len(actual)
            and all(_same_output(a, d) for a, d in zip(actual, members, strict=True))
        )
    return isinstance(actual, type) and isinstance(declared, type) and issubclass(actual, declared)


def _describe(output: Any) -> str:
    if output is None:
        return "None"
    if isinstance(output, tuple):
        return "tuple[" + ", ".join(_describe(member) for member in output) + "]"
    if typing.get_origin(output) is tuple:  # a declared tuple[X, Y]
        return _describe(typing.get_args(output))
    return getattr(output, "__name__", repr(output))
