"""What graphs and lint read from a flow: its actions, their messages, and who listens.

Built from the definitions alone (an `Orchestrator` subclass's plan, a `Choreography`'s
participants and bus, or a list of participants), and tolerant of broken wiring: lint must
describe a cycle or a missing producer, not fail on it the way building a runner does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from coordination._messages import Message
from coordination._participants import Action, Participant
from coordination.engine import FlowPlan
from coordination.errors import UsageError

__all__ = ["FlowModel", "Node", "Subscriber", "model_of"]


@dataclass(slots=True, eq=False)
class Node:
    """One forward action."""

    index: int
    key: str  #: `Participant.action`
    participant: str
    inputs: tuple[type[Message], ...]
    outputs: tuple[type[Message], ...]
    undo: str | None  #: `Participant.compensation`, if it has one
    undo_outputs: tuple[type[Message], ...]
    #: How many attempts it makes at most (None: until its deadline, `Retry(attempts=None)`).
    attempts: int | None
    timeout: float | None
    #: From 1; None when no start message leads to it (or it is part of a cycle).
    generation: int | None = None
    #: The flow's point of no return.
    pivot: bool = False
    #: Its output is a union: each call returns one of `outputs` (a business outcome).
    one_of: bool = False
    #: Its output is a variadic tuple (`tuple[PageFound, ...]`): a fan-out.
    fans_out: bool = False
    #: The indexes of its inputs that gather a fan-out (`tuple[PageIndexed, ...]`).
    gathers: tuple[int, ...] = ()
    #: It runs once per item of a fan-out (a mapped step): drawn as one node, marked so.
    mapped: bool = False

    @property
    def is_join(self) -> bool:
        return len(self.inputs) > 1


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A free-form bus handler: reacts to a message, takes no part in the flow's rules."""

    name: str
    message: type[Message]


@dataclass(slots=True, eq=False)
class FlowModel:
    """The actions of a flow (or of a set of participants) and the messages between them."""

    name: str
    nodes: list[Node]
    #: Messages no action produces: what starts instances (a flow has exactly one).
    starts: list[type[Message]]
    subscribers: list[Subscriber] = field(default_factory=list)
    #: Messages from outside the flow that its waits wait for (a webhook, an approval).
    outside: list[type[Message]] = field(default_factory=list)
    #: Each wait's message types: the members of a union are outcomes of one wait (only
    #: one of them ever arrives, a timeout outcome included).
    waits: list[tuple[type[Message], ...]] = field(default_factory=list)
    _producers: dict[type[Message], list[Node]] = field(default_factory=dict)

    def outcomes(self, node: Node) -> set[tuple[str, type[Message]]]:
        """The business outcomes `node` needs: `(action, outcome)` pairs of the union
        outputs its inputs come from, itself or upstream (empty: it needs none)."""
        needed: set[tuple[str, type[Message]]] = set()
        seen: set[str] = set()
        todo = [node]
        while todo:
            current = todo.pop()
            if current.key in seen:
                continue
            seen.add(current.key)
            for wanted in current.inputs:
                for number, members in enumerate(self.waits):
                    if len(members) > 1 and wanted in members:
                        needed.add((f"wait:{number}", wanted))
                for producer in self.producers(wanted):
                    if producer.one_of:
                        made = next(o for o in producer.outputs if issubclass(o, wanted))
                        needed.add((producer.key, made))
                    todo.append(producer)
        return needed

    def exclusive(self, one: Node, other: Node) -> bool:
        """Whether `one` and `other` never both run: they need different outcomes of one
        action (a captured payment and a declined one)."""
        mine = self.outcomes(one)
        theirs = self.outcomes(other)
        return any(key == k and made is not m for key, made in mine for k, m in theirs)

    def producers(self, wanted: type[Message]) -> list[Node]:
        """The actions whose outputs include `wanted` (or a subclass of it)."""
        found = self._producers.get(wanted)
        if found is None:
            found = [n for n in self.nodes if any(issubclass(o, wanted) for o in n.outputs)]
            self._producers[wanted] = found
        return found

    def consumers(self, made: type[Message]) -> list[Node]:
        """The actions that take `made` (or a base of it) as an input."""
        return [n for n in self.nodes if any(issubclass(made, i) for i in n.inputs)]

    def listeners(self, made: type[Message]) -> list[Subscriber]:
        return [s for s in self.subscribers if issubclass(made, s.message)]

    def messages(self) -> list[type[Message]]:
        """Every message type the flow starts with, passes on or announces, in order."""
        found: dict[type[Message], None] = dict.fromkeys(self.starts)
        for node in self.nodes:
            found.update(dict.fromkeys(node.inputs))
            found.update(dict.fromkeys(node.outputs))
            found.update(dict.fromkeys(node.undo_outputs))
        found.update(dict.fromkeys(s.message for s in self.subscribers))
        return list(found)


def _node(
    index: int, declared: Action[Any, Any], attempts: int | None, timeout: float | None
) -> Node:
    signature = declared.signature
    undo = declared.undo
    return Node(
        pivot=declared.pivot,
        one_of=signature.returns_one_of,
        fans_out=signature.returns_many,
        gathers=signature.gathers,
        index=index,
        key=declared.qualname,
        participant=declared.owner.__name__ if declared.owner is not None else "?",
        inputs=signature.inputs,
        outputs=signature.outputs,
        undo=None if undo is None else undo.qualname,
        undo_outputs=() if undo is None else undo.signature.outputs,
        attempts=attempts,
        timeout=timeout,
    )


def _from_plan(plan: FlowPlan, name: str) -> FlowModel:
    nodes = []
    for planned in plan.actions:
        step = planned.step
        node = _node(planned.index, step.action, step.retry.attempts, step.timeout)
        node.generation = planned.generation
        node.pivot = step.pivot
        node.mapped = planned.mapped
        nodes.append(node)
    outside = [kind for planned in plan.waits for kind in planned.types]
    waits = [planned.types for planned in plan.waits if planned.types]
    return FlowModel(name, nodes, [plan.start_type], outside=outside, waits=waits)


def _participant_types(participants: Iterable[object]) -> list[type[Participant]]:
    types: list[type[Participant]] = []
    for participant in participants:
        kind = participant if isinstance(participant, type) else type(participant)
        if not issubclass(kind, Participant):
            raise UsageError(
                f"{participant!r} is not a participant; pass an Orchestrator subclass, a "
                f"Choreography, or participants (interfaces or implementations)"
            )
        types.append(kind)
    return types


def _from_participants(types: list[type[Participant]], name: str) -> FlowModel:
    nodes: list[Node] = []
    seen: set[str] = set()
    for kind in types:
        for declared in kind.__coordination_declared__.values():
            if not isinstance(declared, Action) or declared.qualname in seen:
                continue
            seen.add(declared.qualname)
            nodes.append(_node(len(nodes), declared, declared.retry.attempts, declared.timeout))
    model = FlowModel(name, nodes, [])
    model.starts = list(
        dict.fromkeys(
            wanted for node in nodes for wanted in node.inputs if not model.producers(wanted)
        )
    )
    _derive_generations(model)
    _derive_mapped(model)
    return model


def _derive_mapped(model: FlowModel) -> None:
    """Mark the actions that run once per item: one of their inputs (not gathered) comes
    from a fan-out, or from an action mapped itself; as a plan finds them."""
    changed = True
    while changed:
        changed = False
        for node in model.nodes:
            if node.mapped:
                continue
            node.mapped = any(
                index not in node.gathers
                and any(p.fans_out or p.mapped for p in model.producers(wanted))
                for index, wanted in enumerate(node.inputs)
            )
            changed = changed or node.mapped


def _derive_generations(model: FlowModel) -> None:
    """Generations from the signatures, as a choreography derives them; None where stuck.

    An action's generation is one more than the latest among the producers of its inputs
    (a start message is generation 0). Actions on a cycle, or needing two start messages
    (a flow starts with one), keep None: lint says why.
    """
    remaining = [node for node in model.nodes if _starts_needed(model, node) <= 1]
    progressed = True
    while remaining and progressed:
        progressed = False
        for node in list(remaining):
            levels = [0]
            for wanted in node.inputs:
                known = [p.generation for p in model.producers(wanted)]
                if None in known:
                    break
                levels.extend(level for level in known if level is not None)
            else:
                node.generation = 1 + max(levels)
                remaining.remove(node)
                progressed = True


def _starts_needed(model: FlowModel, node: Node) -> int:
    return sum(1 for wanted in node.inputs if not model.producers(wanted))


def _subscribers(bus: Any, messages: Iterable[type[Message]]) -> list[Subscriber]:
    found: list[Subscriber] = []
    for made in messages:
        for handler in bus.handlers_for(made):
            name = getattr(handler, "__qualname__", None) or repr(handler)
            # The choreography's own reactions are its actions, drawn as such.
            if name.startswith("Choreography["):
                continue
            subscriber = Subscriber(name, made)
            if subscriber not in found:
                found.append(subscriber)
    return found


def model_of(target: object) -> FlowModel:
    """The model of an Orchestrator (subclass or instance), a Choreography, or participants."""
    from coordination.choreography import Choreography
    from coordination.orchestration import Orchestrator

    if isinstance(target, Orchestrator):
        target = type(target)
    if isinstance(target, type) and issubclass(target, Orchestrator):
        plan = getattr(target, "plan", None)
        if not isinstance(plan, FlowPlan):
            raise UsageError(f"{target.__name__} declares no steps; graph a flow that has them")
        return _from_plan(plan, plan.name)
    if isinstance(target, Choreography):
        # Its plans (one per start message), derived or adopted from a flow, name every
        # action it runs with the retries and timeouts it runs them with.
        nodes: dict[str, Node] = {}
        starts: list[type[Message]] = []
        outside: list[type[Message]] = []
        waits: list[tuple[type[Message], ...]] = []
        for binding in target.instances.bindings.values():
            starts.append(binding.plan.start_type)
            adopted = _from_plan(binding.plan, target.name)
            outside.extend(kind for kind in adopted.outside if kind not in outside)
            waits.extend(members for members in adopted.waits if members not in waits)
            for node in adopted.nodes:
                node.index = nodes[node.key].index if node.key in nodes else len(nodes)
                nodes.setdefault(node.key, node)
        model = FlowModel(target.name, list(nodes.values()), starts, outside=outside, waits=waits)
        model.subscribers = _subscribers(target.bus, model.messages())
        return model
    if isinstance(target, Participant) or (
        isinstance(target, type) and issubclass(target, Participant)
    ):
        target = [target]
    if isinstance(target, Iterable) and not isinstance(target, str | bytes):
        types = _participant_types(target)
        if not types:
            raise UsageError("no participants given; pass at least one")
        return _from_participants(types, "+".join(t.__name__ for t in types))
    raise UsageError(
        f"expected an Orchestrator subclass, a Choreography or participants, got {target!r}"
    )
