"""A flow's plan: its actions in generations, checked and compiled once.

Both runners run the same `FlowPlan`. An orchestrator's plan is compiled from its declared
steps (each declared group is a generation); a choreography's is derived from its
participants' signatures (an action's generation is one more than the latest generation
among the producers of its inputs; the start message is generation 0), or adopted from a
flow it is given. The data-order rule (every step after the first consumes an output of the
group just before it) makes the two the same plan for the same participants.

Checking here means a wrong flow fails at import, naming the action, instead of half-way
through a run. Compiling here means a run only indexes lists: each message a run passes
around has a numbered slot (slot 0 is the start message, then every action's output).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coordination._messages import Message, type_name_of
from coordination._participants import Action, Participant
from coordination.engine._declarations import Parallel, Step, WaitStep, step
from coordination.engine._graph import ActionNode, FlowGraph
from coordination.engine._planned import PlannedAction, PlannedWait
from coordination.engine._shapes import check_output, check_pivot, split_waits
from coordination.errors import DefinitionError

__all__ = [
    "FlowPlan",
    "PlannedAction",
    "PlannedWait",
    "compile_plan",
    "derive_groups",
    "normalise",
    "shape_difference",
]


@dataclass(frozen=True, slots=True, eq=False)
class FlowPlan:
    """Everything an instance needs to know about its flow, computed once."""

    name: str
    start_type: type[Message]
    generations: tuple[tuple[PlannedAction, ...], ...]
    actions: tuple[PlannedAction, ...]
    slot_types: tuple[type[Message], ...]
    interfaces: tuple[type[Participant], ...]
    has_async: bool
    #: The plan's actions and message types as text, stored with every instance. An
    #: instance is resumed only by a plan of the same shape: retries and timeouts may
    #: change between versions, actions and their messages may not (`shape_difference`).
    shape: str
    by_key: dict[str, PlannedAction]
    #: The point of no return (`pivot=True`), if the flow has one: once it completed,
    #: nothing is undone, and a later step failing for good parks the instance.
    pivot: PlannedAction | None = None
    #: Its waits for outside messages, in order.
    waits: tuple[PlannedWait, ...] = ()
    #: The slots holding a fan-out (a tuple of items): a `tuple[X, ...]` output, and what
    #: a mapped step produced from its items (gathered in item order).
    many_slots: frozenset[int] = frozenset()
    #: Each generation's action keys, in declared order (what `Progress.take_ready` hands
    #: out at once when a generation opens: made here, not for every instance).
    generation_keys: tuple[tuple[str, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        keys = tuple(tuple(action.key for action in members) for members in self.generations)
        object.__setattr__(self, "generation_keys", keys)

    def action(self, key: str) -> PlannedAction | None:
        """The action recorded under `key`: a planned one, or an item of a mapped step
        (`Interface.action[2]`); None if the plan has no such action."""
        found = self.by_key.get(key)
        if found is not None or not key.endswith("]"):
            return found
        name, _, index = key[:-1].rpartition("[")
        template = self.by_key.get(name)
        if template is None or template.mapped_slot is None or not index.isdigit():
            return None
        return template.item_of(int(index))

    def wait_before(self, generation: int) -> PlannedWait | None:
        """The wait that must arrive before `generation` opens, if any."""
        for planned in self.waits:
            if planned.before == generation:
                return planned
        return None

    def wait_for(self, message: Message) -> PlannedWait | None:
        """The wait `message` is an outside message of, if any."""
        for planned in self.waits:
            if planned.slot_of(message) is not None:
                return planned
        return None

    def past_pivot(self, action: PlannedAction) -> bool:
        """Whether `action` runs after the pivot (so only once the pivot completed)."""
        pivot = self.pivot
        return pivot is not None and action.generation > pivot.generation

    @property
    def groups(self) -> tuple[tuple[PlannedAction, ...], ...]:
        """The generations (an orchestrator's declared groups), first to last."""
        return self.generations

    @property
    def steps(self) -> tuple[PlannedAction, ...]:
        """Every action, in declared order."""
        return self.actions

    @property
    def message_types(self) -> tuple[type[Message], ...]:
        """Every message type an instance stores (stores read JSON back with these)."""
        extra: list[type[Message]] = []
        for planned in self.actions:
            if planned.compensation is not None:
                extra.extend(planned.compensation.signature.outputs)
        return tuple(dict.fromkeys((*self.slot_types, *extra)))

    def with_name(self, name: str) -> FlowPlan:
        """The same plan stored under another name (a choreography adopting a flow)."""
        return FlowPlan(
            name, self.start_type, self.generations, self.actions, self.slot_types,
            self.interfaces, self.has_async, self.shape, self.by_key, self.pivot, self.waits,
            self.many_slots,
        )  # fmt: skip


def _step_shape(compiled: PlannedAction) -> str:
    signature = compiled.signature
    inputs = ", ".join(
        f"tuple[{type_name_of(t)}, ...]" if i in signature.gathers else type_name_of(t)
        for i, t in enumerate(signature.inputs)
    )
    joiner = " | " if signature.returns_one_of else ", "
    outputs = joiner.join(type_name_of(t) for t in signature.outputs) or "None"
    if signature.returns_many:
        outputs = f"tuple[{outputs}, ...]"
    pivot = " pivot" if compiled.step.pivot else ""
    mapped = "map " if compiled.mapped else ""
    return f"{mapped}{compiled.key}({inputs}) -> {outputs}{pivot}"


def shape_difference(stored: str, current: str) -> str | None:
    """How a stored flow shape differs from the current one, in words; None if equal."""
    if stored == current:
        return None
    try:
        old: list[list[str]] = json.loads(stored)
        new: list[list[str]] = json.loads(current)
    except (ValueError, RecursionError):
        return "the stored shape is unreadable"
    if not isinstance(old, list) or not all(
        isinstance(group, list) and all(isinstance(item, str) for item in group) for group in old
    ):
        return "the stored shape is unreadable"
    for position, (was, now) in enumerate(zip(old, new, strict=False), start=1):
        if was != now:
            return f"step group {position} was {' + '.join(was)}; it is now {' + '.join(now)}"
    if len(old) > len(new):
        return f"steps after group {len(new)} were removed: {old[len(new) :]}"
    return f"steps were added after group {len(old)}: {new[len(old) :]}"


def normalise(flow: str, declared: object) -> list[tuple[Step, ...] | WaitStep]:
    """An orchestrator's `steps` as groups of steps (and waits), or `DefinitionError`."""
    if not isinstance(declared, tuple | list) or not declared:
        raise DefinitionError(
            f"{flow}: steps must be a non-empty tuple like "
            f"steps = (step(Payments.charge), parallel(step(A.x), step(B.y)), ...)"
        )
    groups: list[tuple[Step, ...] | WaitStep] = []
    for position, item in enumerate(declared, start=1):
        if isinstance(item, WaitStep):
            groups.append(item)
        elif isinstance(item, Parallel):
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


def compile_plan(
    flow: str,
    declared: Sequence[tuple[Step, ...] | WaitStep],
    start_type: type[Message] | None = None,
    output_type: Any = None,
) -> FlowPlan:
    """Check and compile groups of steps (generations); `DefinitionError` naming the fault."""
    groups, waits = split_waits(flow, declared)
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
    many_slots: set[int] = set()
    compiled_groups: list[tuple[PlannedAction, ...]] = []
    planned_waits: list[PlannedWait] = []
    previous_slots: set[int] = {0}
    index = 0
    for group_number, group in enumerate(groups):
        waiting = waits.get(group_number)
        if waiting is not None and not waiting.types:  # a sleep: nothing arrives
            key = f"sleep.{1 + sum(1 for w in planned_waits if w.is_sleep)}"
            planned_waits.append(PlannedWait(waiting, key, group_number + 1, ()))
        elif waiting is not None:
            # A wait consumes nothing and passes the group before it on; its message counts
            # as produced by it.
            wait_slots: list[int] = []
            for kind in waiting.types:
                if any(issubclass(kind, have) or issubclass(have, kind) for have in slot_types):
                    raise DefinitionError(
                        f"{flow}: {waiting!r} waits for {kind.__name__}, which the start "
                        f"message or an earlier step already provides; an outside message is "
                        f"a type of its own (never the start message, nor a step's output)"
                    )
                wait_slots.append(len(slot_types))
                slot_types.append(kind)
                slot_producers.append(waiting.key)
            planned_waits.append(
                PlannedWait(waiting, waiting.key, group_number + 1, tuple(wait_slots))
            )
            previous_slots = previous_slots | set(wait_slots)
        group_slots: set[int] = set()
        compiled_group: list[PlannedAction] = []
        for member in group:
            signature = member.action.signature
            input_slots: list[int] = []
            for wanted in signature.inputs:
                matches = [slot for slot, have in enumerate(slot_types) if issubclass(have, wanted)]
                if not matches:
                    raise DefinitionError(
                        f"{flow}: step {member.key} needs {wanted.__name__}, but neither the "
                        f"start message nor an earlier step produces one (available: "
                        f"{_names(slot_types)})"
                    )
                if len(matches) > 1:
                    raise DefinitionError(
                        f"{flow}: step {member.key} needs {wanted.__name__}, and several "
                        f"earlier messages are one: {_names(slot_types[s] for s in matches)}"
                    )
                input_slots.append(matches[0])
            mapped_slot = _mapped_slot(flow, member, signature, input_slots, many_slots)
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
                if signature.returns_many or mapped_slot is not None:
                    many_slots.add(output_slots[-1])
            compensation = member.action.undo
            undo_input_slot: int | None = None
            undo_output_member: int | None = None
            if compensation is not None:
                taken = compensation.signature.inputs[0]
                if taken in signature.outputs:
                    undo_output_member = signature.outputs.index(taken)
                else:
                    undo_input_slot = input_slots[signature.inputs.index(taken)]
            trigger = next((s for s in input_slots if s in previous_slots), input_slots[0])
            compiled_group.append(
                PlannedAction(
                    index=index,
                    generation=group_number + 1,
                    step=member,
                    key=member.key,
                    signature=signature,
                    input_slots=tuple(input_slots),
                    output_slots=tuple(output_slots),
                    compensation=compensation,
                    undo_input_slot=undo_input_slot,
                    undo_output_member=undo_output_member,
                    causation=slot_producers[trigger],
                    trigger_slot=trigger,
                    mapped_slot=mapped_slot,
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

    actions = tuple(member for group in compiled_groups for member in group)
    pivot = check_pivot(flow, compiled_groups, planned_waits)
    check_output(flow, compiled_groups, output_type, planned_waits)
    interfaces = tuple(dict.fromkeys(member.interface for member in actions))
    shaped: list[list[str]] = []
    for group_number, members in enumerate(compiled_groups):
        if group_number in waits and not waits[group_number].types:
            shaped.append(["sleep"])
        elif group_number in waits:
            names = " | ".join(type_name_of(kind) for kind in waits[group_number].types)
            shaped.append([f"wait({names})"])
        shaped.append([_step_shape(member) for member in members])
    shape = json.dumps(shaped, separators=(",", ":"))
    return FlowPlan(
        name=flow,
        start_type=start_type,
        generations=tuple(compiled_groups),
        actions=actions,
        slot_types=tuple(slot_types),
        interfaces=interfaces,
        has_async=any(member.signature.is_async for member in actions),
        shape=shape,
        by_key={member.key: member for member in actions},
        pivot=pivot,
        waits=tuple(planned_waits),
        many_slots=frozenset(many_slots),
    )


def _mapped_slot(
    flow: str, member: Step, signature: Any, input_slots: list[int], many_slots: set[int]
) -> int | None:
    """The fan-out slot `member` is mapped over (it takes one item of a `tuple[X, ...]`),
    or None; a `DefinitionError` for an input that cannot be fed as declared."""
    mapped: list[int] = []
    for index, slot in enumerate(input_slots):
        kind = signature.inputs[index].__name__
        if index in signature.gathers and slot not in many_slots:
            raise DefinitionError(
                f"{flow}: step {member.key} takes tuple[{kind}, ...], but {kind} comes one "
                f"message at a time; a variadic input gathers the items of a fan-out: let the "
                f"step producing {kind} return tuple[{kind}, ...] (or be mapped over one), or "
                f"take {kind} alone"
            )
        if index not in signature.gathers and slot in many_slots:
            mapped.append(index)
    if not mapped:
        return None
    if len(mapped) > 1:
        names = " and ".join(signature.inputs[i].__name__ for i in mapped)
        raise DefinitionError(
            f"{flow}: step {member.key} takes one {names} each, and both come as fan-outs; a "
            f"step is mapped over one fan-out: gather the other with tuple[X, ...]"
        )
    if signature.returns_tuple or signature.returns_one_of or signature.returns_many:
        raise DefinitionError(
            f"{flow}: step {member.key} runs once per {signature.inputs[mapped[0]].__name__} "
            f"(a fan-out) and returns {signature.output!r}; a mapped step returns one message "
            f"type per item (or None), which the next step gathers as tuple[X, ...]"
        )
    if member.pivot:
        raise DefinitionError(
            f"{flow}: the pivot {member.key} runs once per "
            f"{signature.inputs[mapped[0]].__name__} (a fan-out); a pivot is one step of "
            f"its own: put it before the fan-out or after the gather"
        )
    return input_slots[mapped[0]]


def derive_groups(
    graph: FlowGraph, start: type[Message], waits: Sequence[WaitStep] = ()
) -> list[tuple[Step, ...] | WaitStep]:
    """The generations of the actions a `start` message sets off, from their signatures.

    An action's generation is one more than the latest generation among the producers of
    its inputs (the start message is generation 0); within a generation, actions keep the
    order of the participants (and of their actions) as given. Each action keeps its own
    retry and timeout. A wait for outside messages counts as produced after the latest
    generation that the other inputs of its consumers come from: it stands just before
    the generation its consumers run in.
    """
    outside = tuple(kind for declared in waits for kind in declared.types)
    reachable = graph.reachable(start, outside)
    nodes = [node for node in graph.nodes if node.key in reachable]

    def consumes(node: ActionNode, declared: WaitStep) -> bool:
        return any(
            issubclass(kind, wanted) for kind in declared.types for wanted in node.signature.inputs
        )

    # A wait comes after the latest generation the other inputs of its consumers come
    # from (found with the outside messages counted as there from the start); then its
    # consumers, and what follows them, are placed after it.
    first = _levels(nodes, start, waits, {id(declared): 0 for declared in waits})
    after = {
        id(declared): max(
            (
                _others(first, node, nodes, start, waits)
                for node in nodes
                if consumes(node, declared)
            ),
            default=0,
        )
        for declared in waits
    }
    generation = _levels(nodes, start, waits, after)
    count = max(generation.values(), default=0)
    before: dict[int, WaitStep] = {}
    for declared in waits:
        if not any(consumes(node, declared) for node in nodes):
            continue
        level = after[id(declared)] + 1
        if level in before:
            raise DefinitionError(
                f"{before[level]!r} and {declared!r} would stand before the same generation; "
                f"wait for either with one wait(A | B)"
            )
        before[level] = declared
    groups: list[tuple[Step, ...] | WaitStep] = []
    for level in range(1, count + 1):
        if level in before:
            groups.append(before[level])
        members = tuple(step(node.declared) for node in nodes if generation[node.key] == level)
        if not members:
            raise DefinitionError(
                f"the waits {', '.join(repr(w) for w in waits)} cannot be placed from the "
                f"signatures alone (their consumers feed each other); declare the flow with "
                f"its wait(...) steps as an Orchestrator and pass it as flow="
            )
        groups.append(members)
    return groups


def _others(
    generation: dict[str, int],
    node: ActionNode,
    nodes: list[ActionNode],
    start: type[Message],
    waits: Sequence[WaitStep],
) -> int:
    """The latest generation `node`'s inputs other than outside messages come from."""
    levels = [0]
    for wanted in node.signature.inputs:
        if issubclass(start, wanted) or any(
            issubclass(kind, wanted) for w in waits for kind in w.types
        ):
            continue
        levels.extend(
            generation[other.key]
            for other in nodes
            if any(issubclass(made, wanted) for made in other.signature.outputs)
        )
    return max(levels)


def _levels(
    nodes: list[ActionNode], start: type[Message], waits: Sequence[WaitStep], after: dict[int, int]
) -> dict[str, int]:
    """Each action's generation, an outside message counting as produced by its wait after
    generation `after[id(wait)]`."""
    generation: dict[str, int] = {}
    remaining = list(nodes)
    while remaining:
        progressed = False
        for node in list(remaining):
            levels: list[int] = []
            for wanted in node.signature.inputs:
                if issubclass(start, wanted):
                    levels.append(0)
                    continue
                waited = [w for w in waits if any(issubclass(k, wanted) for k in w.types)]
                if waited:
                    levels.append(max(after[id(w)] for w in waited))
                    continue
                producers = [
                    other.key
                    for other in nodes
                    if any(issubclass(made, wanted) for made in other.signature.outputs)
                ]
                if not all(key in generation for key in producers):
                    break
                levels.append(max(generation[key] for key in producers))
            else:
                generation[node.key] = 1 + max(levels)
                remaining.remove(node)
                progressed = True
        if not progressed:
            cycle = ", ".join(node.key for node in remaining)
            raise DefinitionError(
                f"the actions {cycle} consume each other's outputs in a cycle; a flow instance "
                f"is a chain of generations, never a loop (a process that repeats starts one "
                f"instance per period)"
            )
    return generation
