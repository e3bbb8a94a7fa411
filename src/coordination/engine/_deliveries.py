"""A choreography's deliveries to one instance: which inputs came, and what they let run.

Under a choreography an action runs once its inputs were delivered to it, not merely
produced: deliveries are the choreography's trigger. This keeps which were delivered (a
fan-out's items one by one), hands out the action a delivery lets run, and says what a
join still waits for. An orchestrated instance has none: its actions run once produced.
"""

from __future__ import annotations

from typing import Any, Protocol

from coordination.engine._fanout import items
from coordination.engine._plan import FlowPlan, PlannedAction

__all__ = ["Deliveries", "Forward"]


class Forward(Protocol):
    """What deliveries read of an instance's forward state (its `Progress`)."""

    plan: FlowPlan
    #: The produced messages, by slot.
    values: list[Any]
    #: The message id of each slot's envelope (a fan-out's: one id per item).
    ids: list[Any]
    #: Actions handed out to run (settled or in flight).
    taken: set[str]
    generation: int
    failing: int | None


class Deliveries:
    """What was delivered to one instance under a choreography (its `Progress` holds the rest)."""

    __slots__ = ("delivered", "fanned", "held_items", "progress")

    def __init__(self, progress: Forward) -> None:
        self.progress = progress
        self.delivered: set[tuple[str, int]] = set()
        #: The ids of a fan-out delivered to a gather, by (key, index).
        self.fanned: dict[tuple[str, int], set[str]] = {}
        #: Per mapped step: its items whose own member of the fan-out was delivered but
        #: that were not handed out yet (what `Progress.take_ready` looks at).
        self.held_items: dict[str, set[PlannedAction]] = {}

    def ready(self, action: PlannedAction) -> bool:
        """Every input of `action` was delivered."""
        if action.item is None and not self.progress.plan.many_slots:
            # No fan-out in the flow (the common case, checked on every delivery): an input
            # came when its (key, index) was delivered.
            delivered, key = self.delivered, action.key
            for index in range(len(action.input_slots)):  # noqa: SIM110 (no generator frame)
                if (key, index) not in delivered:
                    return False
            return True
        return all(self.came(action, i) for i in self.indexes(action))

    def deliver(self, key: str, index: int, message_id: str) -> PlannedAction | None:
        """Input `index` of action `key` was delivered: the action, if it may run now.

        A message that is not the one this instance produced for that input (published by
        someone else, or for another instance) is ignored. An item of a fan-out delivered
        to a mapped step is its own item's input; to a gather, one of the ids it waits for.
        """
        progress = self.progress
        action = progress.plan.by_key.get(key)
        if action is None:
            return None
        slot = action.input_slots[index]
        if slot in progress.plan.many_slots:
            found = self._fanned_in(action, index, message_id)
            if found is None:
                return None
            action, key = found, found.key
        elif progress.ids[slot] != message_id:
            return None
        self.delivered.add((key, index))
        if key in progress.taken:
            return None
        open_level = progress.generation if progress.failing is None else progress.failing
        if action.generation != open_level:
            return None  # held: its generation is not open (yet), or it never will be
        if action.mapped_slot is not None and action.item is None:
            # A whole message for every item of a mapped step: the step itself says that
            # items may be ready now (take_ready hands them out); None if none is.
            ready = any(
                item.key not in progress.taken and self.ready(item)
                for item in items(action, progress.values)
            )
            return action if ready else None
        if not self.ready(action):
            return None  # a join waiting for its other inputs
        progress.taken.add(key)
        if action.item is not None:
            self.held_items[action.step.key].discard(action)
        return action

    def _fanned_in(self, action: PlannedAction, index: int, message_id: str) -> Any:
        """A fan-out's item delivered: the item it is the input of (to a mapped step), or
        the gather once every item came (else None; False-y if not this fan-out's)."""
        progress = self.progress
        ids = progress.ids[action.input_slots[index]]
        if not ids or message_id not in ids:
            return None
        if index not in action.signature.gathers:
            item = action.item_of(ids.index(message_id))
            if item.key not in progress.taken:
                self.held_items.setdefault(action.key, set()).add(item)
            return item
        came = self.fanned.setdefault((action.key, index), set())
        came.add(message_id)
        full = len(came) == len(ids) and came.issuperset(ids)
        if progress.values[action.input_slots[index]] is None or not full:
            return None  # the join waits for the other items
        self.delivered.add((action.key, index))
        if action.key in progress.taken:
            return None
        return action

    def delivered_what_was_published(self) -> None:
        """After an interruption: what was produced then was published then, its deliveries
        happened or never will (that cascade is gone); recovery delivers it again."""
        progress = self.progress
        many = progress.plan.many_slots
        for action in progress.plan.actions:
            for index, slot in enumerate(action.input_slots):
                if progress.ids[slot] is None:
                    continue
                if slot not in many or index in action.signature.gathers:
                    self.delivered.add((action.key, index))
                    if slot in many:
                        self.fanned[(action.key, index)] = set(progress.ids[slot])
                else:  # each item of a mapped step had its own member delivered
                    held = self.held_items.setdefault(action.key, set())
                    for item in items(action, progress.values):
                        self.delivered.add((item.key, index))
                        held.add(item)

    def undelivered(self) -> list[tuple[PlannedAction, list[int]]]:
        """Actions of the open generation waiting for inputs: which input indexes are missing."""
        progress = self.progress
        level = progress.generation if progress.failing is None else progress.failing
        if level < 1 or level > len(progress.plan.generations):
            return []
        return [
            (action, [i for i in self.indexes(action) if not self.came(action, i)])
            for action in progress.plan.generations[level - 1]
            if action.key not in progress.taken
        ]

    def waiting(self) -> dict[str, list[int]]:
        """Joins holding some of their inputs: action key -> indexes of inputs still to come."""
        progress = self.progress
        held: dict[str, list[int]] = {}
        for action in progress.plan.actions:
            if action.key in progress.taken or len(action.input_slots) < 2:
                continue
            if any(self.came(action, i) for i in self.indexes(action)):
                held[action.key] = [i for i in self.indexes(action) if not self.came(action, i)]
        return held

    @staticmethod
    def indexes(action: PlannedAction) -> range:
        return range(len(action.input_slots))

    def came(self, action: PlannedAction, index: int) -> bool:
        progress = self.progress
        if progress.plan.many_slots and progress.values[action.input_slots[index]] == ():
            return True  # a fan-out of zero items: nothing to deliver, nothing to wait for
        if action.item is not None and action.input_slots[index] != action.mapped_slot:
            return (action.step.key, index) in self.delivered  # a whole message: the step's
        return (action.key, index) in self.delivered
