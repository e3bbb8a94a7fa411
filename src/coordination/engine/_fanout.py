"""Fan-out over a list: the items of a mapped step, and what they read and fill.

An action returning `tuple[PageFound, ...]` fills one slot with a tuple of items; the next
action taking `PageFound` is a mapped step, run once per item as `Interface.action[i]`
(its own idempotency key, attempts and undo), and what its items return is gathered, in
item order, into the tuple an action taking `tuple[PageIndexed, ...]` receives. These are
the few rules `Progress` and the undo plan apply to items; every other rule of the saga
(a generation runs to its end, undo newest first) treats a mapped step as one action that
settles once all its items did: failed if any item failed.

Under a choreography each item goes out in an envelope of its own; a slot holding a
fan-out then keeps a tuple of ids, and a gather is a join that waits for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coordination._messages import Envelope, Message
from coordination.engine._planned import PlannedAction

__all__ = [
    "GATHERED",
    "fanned_causation",
    "fanned_ids",
    "gathered_cause",
    "item_inputs",
    "items",
    "mapped_outcome",
]

#: Joins the ids of a gathered fan-out into the one cause of an input (derived ids are
#: hex, so the separator never occurs in one).
GATHERED = "+"


def items(action: PlannedAction, values: Sequence[Any]) -> tuple[PlannedAction, ...]:
    """The items of mapped step `action`, one per member of the fan-out it maps over
    (none while that fan-out was not produced)."""
    assert action.mapped_slot is not None
    fanned = values[action.mapped_slot]
    if not fanned:
        return ()
    return action.items_of(len(fanned))


def item_inputs(action: PlannedAction, values: Sequence[Any]) -> list[Any]:
    """The inputs of `action`: an item of a mapped step receives its own member of the
    fan-out, whole messages for its other inputs."""
    mapped, item = action.mapped_slot, action.item
    if item is None or mapped is None:
        return [values[slot] for slot in action.input_slots]
    return [values[slot][item] if slot == mapped else values[slot] for slot in action.input_slots]


def mapped_outcome(
    members: tuple[PlannedAction, ...],
    outcomes: Mapping[str, bool | None],
    outputs: Mapping[str, Any],
) -> tuple[bool, Any] | None:
    """How a mapped step ended once all its items settled: (completed, the tuple of its
    items' outputs in item order, or None if they return nothing); None while unsettled."""
    if not all(item.key in outcomes for item in members):
        return None
    completed = all(outcomes[item.key] is True for item in members)
    if not completed:
        return False, None
    if not members or not members[0].signature.outputs:
        return True, None
    return True, tuple(outputs[item.key] for item in members)


def gathered_cause(ids: Any) -> str | None:
    """The one cause standing for a fan-out's ids (a gather's, or a producer's list)."""
    if ids is None or isinstance(ids, str):
        return ids
    if any(one is None for one in ids):
        return None
    return GATHERED.join(ids)


def fanned_ids(
    by_key: Mapping[str, PlannedAction],
    action: PlannedAction,
    envelopes: Sequence[Envelope[Message]],
    ids: list[Any],
    values: Sequence[Any],
) -> None:
    """Keep the ids a fan-out's items went out in: all of a `tuple[X, ...]` output's at
    once, or an item's output in its place among its siblings' (filled as they complete)."""
    slot = action.output_slots[0]
    if action.signature.returns_many:
        ids[slot] = [envelope.message_id for envelope in envelopes]
        return
    if not envelopes or action.item is None:
        return
    if ids[slot] is None:
        ids[slot] = [None] * len(items(by_key[action.step.key], values))
    ids[slot][action.item] = envelopes[0].message_id


def fanned_causation(
    by_key: Mapping[str, PlannedAction], action: PlannedAction, values: Sequence[Any]
) -> str | None:
    """The action that caused `action` as its journal names it: after a mapped step, its
    last item (skipped with zero items: what caused that step, and so on back)."""
    cause = action.causation
    while cause is not None:
        producer = by_key.get(cause)
        if producer is None or producer.mapped_slot is None:
            return cause
        made = items(producer, values)
        if made:
            return made[-1].key
        cause = producer.causation
    return cause
