"""Checks of a flow's shape beyond a straight chain, made when its plan is compiled.

Where its waits for outside messages may stand (`split_waits`), its point of no return
(`check_pivot`), and every output a run can end with, one per combination of business
outcomes and outside messages (`possible_outputs`), against what the flow declares
(`check_output`). Each failure is a `DefinitionError` naming what to change.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from coordination.engine._declarations import Step, WaitStep
from coordination.engine._planned import PlannedAction, PlannedWait
from coordination.errors import DefinitionError

__all__ = ["check_output", "check_pivot", "possible_outputs", "split_waits"]


def split_waits(
    flow: str, declared: Sequence[tuple[Step, ...] | WaitStep]
) -> tuple[list[tuple[Step, ...]], dict[int, WaitStep]]:
    """The groups of steps, and the waits by the index of the group each comes before."""
    groups: list[tuple[Step, ...]] = []
    waits: dict[int, WaitStep] = {}
    for item in declared:
        if not isinstance(item, WaitStep):
            groups.append(item)
            continue
        if not groups:
            raise DefinitionError(
                f"{flow}: {item!r} comes first; a flow starts with its start message: put the "
                f"wait after the step that should run before it"
            )
        if len(groups) in waits:
            raise DefinitionError(
                f"{flow}: {waits[len(groups)]!r} and {item!r} follow each other; wait for "
                f"either with one wait(A | B), or put a step between them"
            )
        waits[len(groups)] = item
    if len(groups) in waits:
        raise DefinitionError(
            f"{flow}: the flow ends with {waits[len(groups)]!r}; a wait's message is for the "
            f"steps after it: add the step that consumes it"
        )
    return groups, waits


def check_pivot(
    flow: str, groups: list[tuple[PlannedAction, ...]], waits: Sequence[PlannedWait] = ()
) -> PlannedAction | None:
    """The flow's pivot, checked: alone in its generation, the only one, nothing after it
    undoable (nor a wait that could time out: its failure could undo nothing)."""
    pivots = [member for group in groups for member in group if member.step.pivot]
    if not pivots:
        return None
    pivot = pivots[0]
    if len(pivots) > 1:
        raise DefinitionError(
            f"{flow}: {pivot.key} and {pivots[1].key} are both pivots; a flow has one point "
            f"of no return (every step after it is retried forward already)"
        )
    siblings = [m.key for m in groups[pivot.generation - 1] if m is not pivot]
    if siblings:
        raise DefinitionError(
            f"{flow}: the pivot {pivot.key} runs side by side with {', '.join(siblings)}; a "
            f"pivot is a step of its own (whether its siblings may be undone would depend on "
            f"timing): declare it in a group alone"
        )
    for planned in waits:
        if (
            planned.before > pivot.generation
            and not planned.is_sleep
            and planned.due_in
            and planned.wait.on_timeout is None
        ):
            raise DefinitionError(
                f"{flow}: {planned.wait!r} comes after the pivot {pivot.key}; a wait past the "
                f"point of no return cannot time out (nothing could be undone): drop its "
                f"timeout=, name a timeout outcome (on_timeout=), or move the pivot after it"
            )
    for group in groups[pivot.generation :]:
        for member in group:
            if member.compensation is not None:
                raise DefinitionError(
                    f"{flow}: {member.key} runs after the pivot {pivot.key} but declares a "
                    f"compensation ({member.compensation.qualname}); nothing after the point "
                    f"of no return is undone: remove the compensation, or move the pivot "
                    f"after it"
                )
    return pivot


def check_output(
    flow: str,
    groups: list[tuple[PlannedAction, ...]],
    declared: Any,
    waits: Sequence[PlannedWait] = (),
) -> None:
    """The declared output covers every way the run can end (each business outcome)."""
    if declared is None or declared is Any or isinstance(declared, typing.TypeVar):
        return
    accepted = (
        typing.get_args(declared)
        if typing.get_origin(declared) in (types.UnionType, typing.Union)
        else (declared,)
    )
    branches = any(m.signature.returns_one_of for group in groups for m in group) or any(
        len(planned.slots) > 1 for planned in waits
    )
    for possible in possible_outputs(groups, waits):
        if not any(_same_output(possible, wanted) for wanted in accepted):
            where = "the run can end with" if branches else "the last group returns"
            raise DefinitionError(
                f"{flow}: declared output {_describe(declared)} but {where} {_describe(possible)}"
            )


def possible_outputs(
    groups: Sequence[tuple[PlannedAction, ...]], waits: Sequence[PlannedWait] = ()
) -> list[Any]:
    """Every output a run can end with: one per combination of business outcomes.

    Walks the generations with each union output taking each of its outcomes; an action
    whose inputs were not produced on a path is skipped there, as at run time. An output
    is described as the run returns it: a message class, a tuple of them (several members
    of the last group that ran), or None.
    """
    # A path: the slots produced so far, and what the last group that ran returned.
    paths: set[tuple[frozenset[int], tuple[Any, ...]]] = {(frozenset({0}), ())}
    before = {planned.before: planned for planned in waits}
    for generation, group in enumerate(groups, start=1):
        if generation in before and before[generation].slots:  # either message may come
            paths = {
                (produced | {slot}, last)
                for produced, last in paths
                for slot in before[generation].slots
            }
        following: set[tuple[frozenset[int], tuple[Any, ...]]] = set()
        for produced, last in paths:
            options: list[list[tuple[tuple[int, ...], Any] | None]] = [[]]
            for member in group:
                choices: list[tuple[tuple[int, ...], Any] | None]
                if not produced.issuperset(member.input_slots):
                    choices = [None]  # skipped on this path
                elif member.signature.returns_one_of:
                    choices = [
                        ((slot,), kind)
                        for slot, kind in zip(
                            member.output_slots, member.signature.outputs, strict=True
                        )
                    ]
                else:
                    choices = [(member.output_slots, member.output_type)]
                options = [[*option, choice] for option in options for choice in choices]
            for option in options:
                ran = [choice for choice in option if choice is not None]
                slots = produced.union(*(choice[0] for choice in ran))
                following.add((slots, tuple(choice[1] for choice in ran) if ran else last))
        paths = following
    outputs = {last[0] if len(last) == 1 else last for _, last in paths}
    return sorted(outputs, key=_describe)


def _same_output(actual: Any, declared: Any) -> bool:
    if declared is None or declared is type(None):
        return actual is None
    if typing.get_origin(actual) is tuple:  # a fan-out's items: tuple[X, ...]
        members = typing.get_args(declared)
        return (
            typing.get_origin(declared) is tuple
            and len(members) == 2
            and members[1] is Ellipsis
            and _same_output(typing.get_args(actual)[0], members[0])
        )
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
    if typing.get_origin(output) is tuple:  # a declared tuple[X, Y], or tuple[X, ...]
        members = typing.get_args(output)
        if len(members) == 2 and members[1] is Ellipsis:
            return f"tuple[{_describe(members[0])}, ...]"
        return _describe(members)
    if typing.get_origin(output) in (types.UnionType, typing.Union):
        return " | ".join(_describe(member) for member in typing.get_args(output))
    return getattr(output, "__name__", repr(output))
