"""How far one flow instance got forward: its generations, its settled actions, its inputs.

The saga's forward state, apart from the decisions that write it: which generation is open,
which actions were handed out and how those that settled ended, what they produced (the
slots later actions read their inputs from), and, under a choreography, which inputs were
delivered. Once an action fails (or the instance is cancelled) `failing` names the
generation that runs to its end before the undo starts, and no later one opens.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any

from coordination._clock import Clock
from coordination._messages import Envelope, Message
from coordination.engine._deliveries import Deliveries
from coordination.engine._fanout import (
    GATHERED,
    fanned_causation,
    fanned_ids,
    gathered_cause,
    item_inputs,
    items,
    mapped_outcome,
)
from coordination.engine._plan import FlowPlan, PlannedAction, PlannedWait
from coordination.stores._records import StepOutcome

__all__ = ["Progress"]

#: The keys of an instance that never parked, slept or skipped a wait: one empty set shared
#: by all (a set is a container the garbage collector walks, on every instance in flight);
#: an instance that needs one gets a new frozenset each time it changes (they stay tiny).
_NO_KEYS: frozenset[str] = frozenset()


class Progress:
    """The forward state of one instance."""

    __slots__ = (
        "clock",
        "deliveries",
        "failing",
        "fired",
        "generation",
        "ids",
        "items_left",
        "left",
        "opened_at",
        "outcomes",
        "outputs",
        "parked",
        "passed",
        "plan",
        "taken",
        "values",
    )

    def __init__(
        self,
        plan: FlowPlan,
        start: Message,
        clock: Clock,
        *,
        deliveries: bool,
        start_id: str | None,
    ) -> None:
        self.plan = plan
        self.clock = clock
        self.values: list[Any] = [None] * len(plan.slot_types)
        self.values[0] = start
        #: Under a choreography, an action runs once its inputs were delivered to it, not
        #: merely produced: deliveries are the choreography's trigger (None: orchestrated).
        self.deliveries = Deliveries(self) if deliveries else None
        #: The message id of each slot's envelope (a choreography's inputs are checked by it);
        #: a slot holding a fan-out keeps one id per item (a list).
        self.ids: list[Any] = [None] * len(plan.slot_types) if deliveries else []
        #: Per mapped step: how many of its items have not settled (counted when the
        #: first settles, then down).
        self.items_left: dict[str, int] = {}
        if deliveries:
            self.ids[0] = start_id
        self.generation = 1
        #: How many actions of the open generation have not settled yet.
        self.left = len(plan.generations[0]) if plan.generations else 0
        #: When the open generation opened (on the clock's monotonic scale).
        self.opened_at = clock.monotonic()
        #: How each settled action ended: True completed, False failed, None skipped.
        self.outcomes: dict[str, bool | None] = {}
        self.outputs: dict[str, Any] = {}
        #: Actions handed out to run (settled or in flight).
        self.taken: set[str] = set()
        #: The generation whose failure (or cancel) starts the undo; none opens after it.
        self.failing: int | None = None
        #: Actions that failed for good after the pivot: they wait for an operator (the
        #: instance parks once their generation settled), unsettled, to be run again.
        self.parked: Set[str] = _NO_KEYS
        #: The sleeps whose timers fired.
        self.fired: Set[str] = _NO_KEYS
        #: Waits skipped: nothing after them could have used their message.
        self.passed: Set[str] = _NO_KEYS

    # -- what may run -----------------------------------------------------------------------

    def take_ready(self, generation: int | None = None) -> tuple[PlannedAction, ...]:
        """Hand out the actions of `generation` (the open one) that may run now."""
        level = self.generation if generation is None else generation
        generations = self.plan.generations
        if level > len(generations):
            return ()
        taken = self.taken
        members = generations[level - 1]
        fans = self.plan.many_slots
        deliveries = self.deliveries
        keys = self.plan.generation_keys[level - 1]
        if deliveries is None and not fans and taken.isdisjoint(keys):
            taken.update(keys)  # the common case: a fresh generation
            return members
        ready = []
        for action in members:
            if action.mapped_slot is not None:
                if action.key not in self.outcomes:
                    ready.extend(self._take_items(action))
                continue
            if action.key in taken:
                continue
            if deliveries is not None and not deliveries.ready(action):
                continue
            taken.add(action.key)
            ready.append(action)
        return tuple(ready)

    def _take_items(self, action: PlannedAction) -> list[PlannedAction]:
        """Hand out the items of mapped step `action` that may run now."""
        taken, ready = self.taken, []
        candidates: Any = items(action, self.values)
        deliveries = self.deliveries
        if deliveries is not None:  # only those whose own item came (not every item, every time)
            held = deliveries.held_items.get(action.key)
            candidates = sorted(held, key=_item_index) if held else ()
        for item in candidates:
            if item.key in taken:
                continue
            if deliveries is not None and not deliveries.ready(item):
                continue
            taken.add(item.key)
            ready.append(item)
        if ready:
            taken.add(action.key)
            if deliveries is not None:
                deliveries.held_items[action.key].difference_update(ready)
        return ready

    def settled_all(self, generation: int) -> bool:
        """Every action of `generation` settled (or failed past the pivot, held parked)."""
        outcomes, parked = self.outcomes, self.parked
        return all(
            a.key in outcomes
            or a.key in parked
            or (
                a.mapped_slot is not None
                and self.items_left.get(a.key, 0) <= len(parked)  # else: some still run
                and all(i.key in outcomes or i.key in parked for i in items(a, self.values))
            )
            for a in self.plan.generations[generation - 1]
        )

    def park(self, action: PlannedAction) -> None:
        """`action` failed for good after the pivot: hold it for an operator's retry."""
        self.parked = self.parked | {action.key}
        self.taken.add(action.key)
        if self.failing is None:
            self.failing = action.generation

    def unpark(self) -> None:
        """An operator retries: the parked actions run again, and the instance goes on."""
        if not self.parked:
            return
        self.taken.difference_update(self.parked)
        self.parked = _NO_KEYS
        self.failing = None
        self.advance()

    @property
    def completed(self) -> bool:
        """Every generation settled with nothing failed: the instance completed."""
        return self.failing is None and self.generation > len(self.plan.generations)

    def produced_inputs(self, action: PlannedAction) -> bool:
        """Whether every input of `action` was produced (a business outcome may have taken
        another branch: then it is skipped)."""
        values = self.values
        for slot in action.input_slots:  # noqa: SIM110 (no generator frame: every step asks)
            if values[slot] is None:
                return False
        return True

    def missing(self, action: PlannedAction | PlannedWait) -> list[type[Message]]:
        """The input types of `action` that were not produced (none for a wait)."""
        if isinstance(action, PlannedWait):
            return []
        values = self.values
        return [
            kind
            for kind, slot in zip(action.signature.inputs, action.input_slots, strict=True)
            if values[slot] is None
        ]

    # -- what settled -----------------------------------------------------------------------

    def settle(self, action: PlannedAction, outcome: StepOutcome, output: Any) -> None:
        if action.item is not None:
            self._settle_item(action, outcome, output)
            return
        key = action.key
        if outcome is StepOutcome.COMPLETED:
            self.outcomes[key] = True
            self.outputs[key] = output
            values = self.values
            for slot, value in action.produced(output):
                values[slot] = value
        elif outcome is StepOutcome.FAILED:
            self.outcomes[key] = False
        elif outcome is StepOutcome.SKIPPED:
            self.outcomes[key] = None
            if action.mapped_slot is not None and self.values[action.mapped_slot] == ():
                for slot in action.output_slots:  # zero items: the gather gets none
                    self.values[slot] = ()
        self.taken.add(key)
        if action.generation == self.generation:
            self.left -= 1

    def _settle_item(self, item: PlannedAction, outcome: StepOutcome, output: Any) -> None:
        """An item of a mapped step settled; the step settles once all its items did
        (counted down, so a fan-out of n items settles in O(n), not O(n²))."""
        key, outcomes = item.key, self.outcomes
        mapped = self.plan.by_key[item.step.key]
        first = key not in outcomes and mapped.key not in outcomes
        left = self.items_left.get(mapped.key) if first else None
        if first and left is None:
            members = items(mapped, self.values)
            left = sum(1 for member in members if member.key not in outcomes)
        if outcome is StepOutcome.COMPLETED:
            outcomes[key] = True
            self.outputs[key] = output
        elif outcome is StepOutcome.FAILED:
            outcomes[key] = False
        self.taken.add(key)
        if left is None:
            return  # settled again, or its step settled already
        left -= 1
        self.items_left[mapped.key] = left
        if left > 0:
            return
        ended = mapped_outcome(items(mapped, self.values), outcomes, self.outputs)
        if ended is not None:
            completed, gathered = ended
            done = StepOutcome.COMPLETED if completed else StepOutcome.FAILED
            self.settle(mapped, done, gathered)

    def published(
        self, action: PlannedAction, output: Any, envelopes: tuple[Envelope[Message], ...]
    ) -> None:
        """Remember the ids of the envelopes `action`'s outputs went out in."""
        ids = self.ids
        if action.signature.returns_many or action.item is not None:
            fanned_ids(self.plan.by_key, action, envelopes, ids, self.values)
            return
        for (slot, _), envelope in zip(action.produced(output), envelopes, strict=False):
            ids[slot] = envelope.message_id

    def open_next(self) -> list[PlannedAction | PlannedWait]:
        """The open generation settled with nothing failed: open the next one (if any).

        Actions of an opening generation whose inputs were not produced (a business outcome
        took another branch) are settled as skipped at once; a generation left with nothing
        to run opens the next. A wait whose message nothing could use any more is skipped
        too. Returns what was skipped, to be recorded.
        """
        skipped: list[PlannedAction | PlannedWait] = []
        generations = self.plan.generations
        waits = self.plan.waits
        while not self.left and self.failing is None and self.generation <= len(generations):
            if self.generation == len(generations):
                self.generation += 1
                break
            planned = self.awaiting() if waits else None  # most flows have no wait
            if planned is not None:
                if not self.pointless(planned):
                    break  # the next generation opens once the outside message arrived
                self.passed = self.passed | {planned.key}
                skipped.append(planned)
            self.generation += 1
            members = generations[self.generation - 1]
            self.left = len(members)
            self.opened_at = self.clock.monotonic()
            values = self.values
            for member in members:
                if member.key in self.outcomes:
                    continue
                if not self.produced_inputs(member) or (
                    member.mapped_slot is not None and not values[member.mapped_slot]
                ):  # not produced, or a fan-out of zero items
                    self.settle(member, StepOutcome.SKIPPED, None)
                    skipped.append(member)
        return skipped

    def advance(self) -> None:
        """Open generations while the open one settled and nothing failed (after replay)."""
        generations = self.plan.generations
        outcomes = self.outcomes
        while self.generation <= len(generations):
            left = sum(1 for a in generations[self.generation - 1] if a.key not in outcomes)
            self.left = left
            if left or self.failing is not None or self.awaiting() is not None:
                return
            self.generation += 1
            self.opened_at = self.clock.monotonic()

    # -- outside messages -------------------------------------------------------------------

    def awaiting(self) -> PlannedWait | None:
        """The wait the instance stands at: the open generation settled, and the wait
        before the next one has had no message yet."""
        planned = self.plan.wait_before(self.generation + 1)
        if planned is None or self.arrived(planned):
            return None
        return planned

    def pointless(self, planned: PlannedWait) -> bool:
        """Whether no step could use `planned`'s message any more: each step that consumes
        it also needs a message from before the wait that was not produced (a business
        outcome took another branch), so it will be skipped whatever arrives."""
        if planned.is_sleep:
            return False
        waited = set(planned.slots)
        first = planned.slots[0]
        consumers = [a for a in self.plan.actions if waited.intersection(a.input_slots)]
        values = self.values
        return bool(consumers) and all(
            any(slot < first and values[slot] is None for slot in action.input_slots)
            for action in consumers
        )

    def arrived(self, planned: PlannedWait) -> bool:
        """Its message came (a sleep: its timer fired), or it was skipped."""
        if planned.key in self.passed:
            return True
        if planned.is_sleep:
            return planned.key in self.fired
        values = self.values
        return any(values[slot] is not None for slot in planned.slots)

    def fire(self, planned: PlannedWait) -> list[PlannedAction | PlannedWait]:
        """A sleep's timer fired: open what follows. Returns the actions skipped."""
        self.fired = self.fired | {planned.key}
        return self.open_next()

    def arrive(self, planned: PlannedWait, message: Message) -> list[PlannedAction | PlannedWait]:
        """An outside message arrived for `planned`: keep it (it may be early); if the
        instance was waiting for it, open what follows. Returns the actions skipped."""
        slot = planned.slot_of(message)
        assert slot is not None
        self.values[slot] = message
        return self.open_next()  # opens nothing unless the instance stood at this wait

    def last_started(self) -> int:
        """The newest generation any action of was handed out (0: none)."""
        action = self.plan.action
        started = [action(key) for key in self.taken | set(self.outcomes)]
        return max((a.generation for a in started if a is not None), default=0)

    # -- reading ----------------------------------------------------------------------------

    def inputs(self, action: PlannedAction) -> list[Any]:
        if action.mapped_slot is not None:
            return item_inputs(action, self.values)
        values = self.values
        return [values[slot] for slot in action.input_slots]

    def causes(self, action: PlannedAction) -> tuple[str | None, ...]:
        ids = self.ids
        if not self.plan.many_slots:
            slots = action.input_slots
            if len(slots) == 1:  # one input (most actions)
                return (ids[slots[0]],)
            return tuple([ids[slot] for slot in slots])
        mapped, item = action.mapped_slot, action.item
        return tuple(
            ids[slot][item] if slot == mapped and item is not None and ids[slot] else
            gathered_cause(ids[slot])
            for slot in action.input_slots
        )  # fmt: skip

    def causation(self, action: PlannedAction) -> str | None:
        """The action that caused `action`, as its journal names it: a gather's is the
        last item of the mapped step before it (with zero items: what that step mapped)."""
        if not self.plan.many_slots:
            return action.causation
        return fanned_causation(self.plan.by_key, action, self.values)

    def cause(self, action: PlannedAction) -> str | None:
        """The id of the message that caused `action` (its trigger's; a gather's: the
        first item's)."""
        cause = self.causes(action)[action.input_slots.index(action.trigger_slot)]
        if not cause:
            if self.plan.many_slots and self.values[action.trigger_slot] == ():
                return self.causation(action)  # zero items: no envelope caused it
            return None
        return cause.partition(GATHERED)[0]

    def final_output(self) -> Any:
        """The run's output: that of the last generation where something completed (the
        ones skipped left out), a tuple in declared order if several members completed."""
        for members in reversed(self.plan.generations):
            done = [m for m in members if self.outcomes.get(m.key) is True]
            if len(done) == 1:
                return self.outputs[done[0].key]
            if done:
                return tuple(self.outputs[m.key] for m in done)
        return None

    def replayed_ids(
        self,
        action: PlannedAction,
        output: Any,
        outputs: Callable[[PlannedAction, Any, tuple[str | None, ...]], Any],
    ) -> None:
        """Derive again the ids `action`'s outputs went out in (a choreography's replay)."""
        self.published(action, output, outputs(action, output, self.causes(action)))


def _item_index(item: PlannedAction) -> int:
    return item.item or 0
