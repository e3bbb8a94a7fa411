"""The members of a plan: a planned action (its generation, where its inputs come from and
its outputs go) and a planned wait, compiled once by `compile_plan` and only read by runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from coordination._messages import Message
from coordination._participants import Compensation, Participant
from coordination._signatures import Signature
from coordination.engine._declarations import Step, WaitStep

__all__ = ["PlannedAction", "PlannedWait"]


@dataclass(frozen=True, slots=True, eq=False)
class PlannedAction:
    """One action of a plan: its generation, where its inputs come from and outputs go."""

    index: int
    #: Its generation, from 1 (the start message is generation 0).
    generation: int
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
    #: The action whose output triggered this one (None: the start message), for the journal.
    causation: str | None
    #: The input slot produced by the generation just before (what "caused" this action).
    trigger_slot: int
    #: A mapped step's: the slot holding the fan-out it runs once per item of (its other
    #: inputs are whole messages); None for a plain action.
    mapped_slot: int | None = None
    #: An item of a mapped step: its index (its key is `Interface.action[index]`, its own
    #: idempotency key and undo); None for the step itself and for plain actions.
    item: int | None = None
    _items: dict[int, PlannedAction] = field(default_factory=dict, repr=False)
    #: Its items for a fan-out of n members, by n (made once per plan, shared by runs).
    _fans: dict[int, tuple[PlannedAction, ...]] = field(default_factory=dict, repr=False)

    @property
    def mapped(self) -> bool:
        """A mapped step (or an item of one): it runs once per item of a fan-out."""
        return self.mapped_slot is not None

    @property
    def output_type(self) -> Any:
        """What the step gives the run: its declared output, or for a mapped step the
        tuple of its items' outputs (`tuple[X, ...]`; None if its items return None)."""
        outputs = self.signature.outputs
        if self.mapped_slot is not None and outputs:
            return tuple.__class_getitem__((outputs[0], ...))
        return self.signature.output

    def items_of(self, count: int) -> tuple[PlannedAction, ...]:
        """Its items for a fan-out of `count` members, in item order."""
        made = self._fans.get(count)
        if made is None:
            made = self._fans.setdefault(count, tuple(map(self.item_of, range(count))))
        return made

    def item_of(self, index: int) -> PlannedAction:
        """Item `index` of this mapped step: the same action under `key[index]` (made once,
        so every lookup of one item gives the same object)."""
        assert self.mapped_slot is not None
        assert self.item is None
        made = self._items.get(index)
        if made is None:
            made = dataclasses.replace(
                self, key=f"{self.key}[{index}]", item=index, _items={}, _fans={}
            )
            made = self._items.setdefault(index, made)
        return made

    @property
    def interface(self) -> type[Participant]:
        owner = self.step.action.owner
        assert owner is not None
        return owner

    @property
    def undoes_output(self) -> bool:
        """True if its compensation receives its output (undoes a completed action)."""
        return self.undo_output_member is not None

    def undo_message(self, output: Any, inputs: list[Any]) -> Any:
        """The message its compensation receives, given its output (or None) and inputs."""
        member = self.undo_output_member
        if member is not None:
            return output[member] if self.signature.returns_tuple else output
        assert self.undo_input_slot is not None
        return inputs[self.input_slots.index(self.undo_input_slot)]

    def undoes(self, output: Any) -> bool:
        """Whether its compensation undoes this output: it has one, and, typed as one
        outcome of a union, that is the outcome `output` is (a declined payment is never
        refunded)."""
        compensation = self.compensation
        if compensation is None:
            return False
        if self.undo_output_member is None or not self.signature.returns_one_of:
            return True
        return isinstance(output, self.signature.outputs[self.undo_output_member])

    def produced(self, output: Any) -> tuple[tuple[int, Any], ...]:
        """The slots `output` fills, with the message each receives: every member of a
        tuple, the one outcome of a union (the other outcomes' slots stay empty)."""
        slots = self.output_slots
        if not slots:
            return ()
        signature = self.signature
        if signature.returns_one_of:
            for slot, kind in zip(slots, signature.outputs, strict=True):
                if isinstance(output, kind):
                    return ((slot, output),)
            return ()
        if signature.returns_tuple:
            return tuple(zip(slots, output, strict=True))
        return ((slots[0], output),)


@dataclass(frozen=True, slots=True, eq=False)
class PlannedWait:
    """A wait of a plan: the outside message(s) that must arrive before a generation opens."""

    wait: WaitStep
    #: `wait.PaymentSettled`: the key its arrival is recorded under.
    key: str
    #: The generation that opens once it arrived (the wait sits just before it).
    before: int
    #: One slot per message type it waits for (a union: one per member; one is filled).
    slots: tuple[int, ...]

    @property
    def types(self) -> tuple[type[Message], ...]:
        return self.wait.types

    @property
    def is_sleep(self) -> bool:
        """A durable timer (`sleep`), not a wait for a message."""
        return not self.wait.types

    @property
    def due_in(self) -> float | None:
        """Seconds from when it is reached until its timer fires (a sleep's end, a wait's
        timeout), or None: no timer."""
        return self.wait.delay if self.is_sleep else self.wait.timeout

    def slot_of(self, message: Message) -> int | None:
        """The slot `message` fills, or None if this wait does not wait for it."""
        for slot, kind in zip(self.slots, self.types, strict=True):
            if isinstance(message, kind):
                return slot
        return None
