"""The flow graph of a set of participants: who consumes what, who produces what.

A choreography derives its plans from it (which actions a start message sets off, in which
generations) and subscribes each action to its inputs; lint and the graph renderings read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from coordination._messages import Command, Message
from coordination._participants import Action, Participant
from coordination._signatures import Signature
from coordination.errors import DefinitionError

__all__ = ["ActionNode", "FlowGraph"]


@dataclass(frozen=True, slots=True, eq=False)
class ActionNode:
    """One forward action of one participant instance."""

    participant: Participant
    key: str  #: `Interface.action`
    signature: Signature
    declared: Any  #: the interface's `Action` (typed Any: an Action field reads through __get__)

    @property
    def compensation(self) -> Any:
        """The action's undo (a `Compensation`), or None.

        Typed Any, like `declared`: type checkers read an attribute typed as a descriptor
        through its `__get__`, which would make it look like a bound method.
        """
        return self.declared.undo


class FlowGraph:
    """The actions of a set of participants, indexed by the message types they consume."""

    def __init__(self, participants: Iterable[Participant]) -> None:
        nodes: list[ActionNode] = []
        seen: dict[str, ActionNode] = {}
        for participant in participants:
            if not isinstance(participant, Participant):
                raise DefinitionError(
                    f"{participant!r} is not a Participant; pass participant instances"
                )
            for name, declared in type(participant).__coordination_declared__.items():
                if not isinstance(declared, Action):
                    continue  # compensations only undo; they never react on their own
                key = declared.qualname
                if key in seen:
                    raise DefinitionError(
                        f"{key} is implemented by both {type(seen[key].participant).__name__} "
                        f"and {type(participant).__name__}; pass one implementation per "
                        f"interface"
                    )
                node = ActionNode(participant, key, declared.signature, declared)
                seen[key] = node
                nodes.append(node)
                del name
        self.nodes: tuple[ActionNode, ...] = tuple(nodes)
        self._reachable: dict[tuple[type[Message], tuple[type[Message], ...]], frozenset[str]] = {}

    def consumers(self, message_type: type[Message]) -> list[ActionNode]:
        """The actions that take a `message_type` (or a base of it) as an input."""
        return [
            node
            for node in self.nodes
            if any(issubclass(message_type, wanted) for wanted in node.signature.inputs)
        ]

    def producers(self, message_type: type[Message]) -> list[ActionNode]:
        """The actions whose output includes `message_type` (or a subclass of it)."""
        return [
            node
            for node in self.nodes
            if any(issubclass(made, message_type) for made in node.signature.outputs)
        ]

    def starts(self, outside: frozenset[type[Message]] = frozenset()) -> frozenset[type[Message]]:
        """Input types no participant produces: the messages that start flow instances
        (an `outside` message, one a wait waits for, starts none)."""
        return frozenset(
            wanted
            for node in self.nodes
            for wanted in node.signature.inputs
            if not self.producers(wanted)
            and not any(issubclass(wanted, o) or issubclass(o, wanted) for o in outside)
        )

    def check_inputs(self, outside: frozenset[type[Message]] = frozenset()) -> None:
        """Every action can run: each of its inputs is produced inside the flow or starts it.

        An action taking a message no participant produces (and not a declared outside
        message) can run only as part of the flow that message starts; if the rest of its
        inputs never come in that flow (they are produced by participants left out, or by
        none), it could never run, and the flow would finish half done.
        """
        for node in self.nodes:
            missing = [
                wanted
                for wanted in node.signature.inputs
                if not self.producers(wanted)
                and not any(issubclass(wanted, o) or issubclass(o, wanted) for o in outside)
            ]
            if not missing:
                continue
            if any(node.key in self.reachable(start, tuple(outside)) for start in missing):
                continue  # it runs in the flow its start message begins
            others = [w for w in node.signature.inputs if w not in missing]
            names = " and ".join(m.__name__ for m in missing)
            why = (
                f"and its other inputs ({', '.join(o.__name__ for o in others)}) never come "
                f"in a flow started by it"
                if others and len(missing) == 1
                else "and a flow starts with one message"
            )
            raise DefinitionError(
                f"{node.key} needs {names}, which no participant of this choreography produces, "
                f"{why}: it could never run and the flow would finish half done; pass the "
                f"participant that produces what it needs, or declare the message an outside "
                f"one with waits=(wait({missing[-1].__name__}),)"
            )

    def check_commands(self) -> None:
        """Every Command an action consumes or produces has exactly one consumer."""
        commands: set[type[Message]] = set()
        for node in self.nodes:
            for message_type in (*node.signature.inputs, *node.signature.outputs):
                if issubclass(message_type, Command):
                    commands.add(message_type)
        for command in sorted(commands, key=lambda c: c.__qualname__):
            handlers = [node.key for node in self.consumers(command)]
            if len(handlers) != 1:
                listed = ", ".join(handlers) or "none"
                raise DefinitionError(
                    f"{command.__name__} is a Command, so exactly one action must handle it; "
                    f"handled by: {listed}"
                )

    def reachable(
        self, start: type[Message], outside: tuple[type[Message], ...] = ()
    ) -> frozenset[str]:
        """Keys of every action that will run for a flow started by a `start` message.

        An action is reachable once each of its inputs is the start type, an `outside`
        message (one a wait waits for) or the output of a reachable action (joins need all
        their inputs).
        """
        cached = self._reachable.get((start, outside))
        if cached is not None:
            return cached
        available: list[type[Message]] = [start, *outside]
        reached: set[str] = set()
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                if node.key in reached:
                    continue
                if all(
                    any(issubclass(have, wanted) for have in available)
                    for wanted in node.signature.inputs
                ):
                    reached.add(node.key)
                    available.extend(node.signature.outputs)
                    changed = True
        result = frozenset(reached)
        self._reachable[(start, outside)] = result
        return result

    def __repr__(self) -> str:
        return f"FlowGraph({', '.join(node.key for node in self.nodes)})"
