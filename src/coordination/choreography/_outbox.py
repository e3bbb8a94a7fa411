"""What a choreographed instance publishes, with ids derived from what produced it.

An `Outbox` is the choreography's side of the engine's `Publishing`: it makes the envelopes
of an action's outputs, of an `ActionFailed`, and of a compensation's output. Their ids are
derived (uuid5 of the correlation, the producer and the ids of its inputs), so an action
run again after a crash publishes the same ids and the event log keeps each message once.
The saga writes them with the fact that produced them; once committed, `committed()`
publishes them on the bus.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from coordination._messages import Envelope, Message, type_name_of
from coordination.choreography._bus import EventBus
from coordination.choreography._events import ActionFailed
from coordination.engine import GATHERED, PlannedAction, PlannedWait, Undo

__all__ = ["Outbox", "derived_id"]

_NAMESPACE = uuid.UUID("6f1c2a7e-3b7d-4f0e-9a51-7c9a0e2d5b10")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def derived_id(correlation_id: str, producer: str, causes: Iterable[str | None]) -> str:
    """A message id that is the same every time a producer handles the same messages.

    `uuid5(_NAMESPACE, key).hex`, computed without building a UUID object (every output
    of every action gets one); stored ids are compared with ids derived again on replay,
    so the value must never change.
    """
    if type(causes) is tuple and len(causes) == 1:
        joined = causes[0] or ""  # one cause (most actions): nothing to sort
    else:
        joined = "|".join(sorted([c or "" for c in causes]))
    key = f"{correlation_id}|{producer}|{joined}"
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return digest.hex()


#: `Participant.action>type name` by (action key, output type): made once per pair.
_PRODUCERS: dict[tuple[str, type[Message]], str] = {}


def _producer(key: str, output: type[Message]) -> str:
    """What an output's id is derived from, besides its correlation and causes."""
    producer = _PRODUCERS.get((key, output))
    if producer is None:
        producer = _PRODUCERS[(key, output)] = f"{key}>{type_name_of(output)}"
    return producer


class Outbox:
    """The envelopes one flow instance publishes."""

    __slots__ = ("bus", "correlation_id", "failure_id")

    def __init__(self, bus: EventBus, correlation_id: str) -> None:
        self.bus = bus
        self.correlation_id = correlation_id
        #: The id of the ActionFailed that started the undos: what the undos' outputs answer.
        self.failure_id: str | None = None

    def outputs(
        self, action: PlannedAction, output: Any, causes: tuple[str | None, ...]
    ) -> tuple[Envelope[Message], ...]:
        members = output if isinstance(output, tuple) else () if output is None else (output,)
        cause = causes[action.input_slots.index(action.trigger_slot)]
        if cause is not None and GATHERED in cause:  # a gather: caused by the items
            cause = cause.partition(GATHERED)[0]
        correlation_id = self.correlation_id
        if action.signature.returns_many:  # a fan-out: each item an envelope, by position
            producer = _producer(action.key, action.signature.outputs[0])
            return tuple(
                Envelope(
                    member, correlation_id, cause,
                    derived_id(correlation_id, f"{producer}#{index}", causes),
                )
                for index, member in enumerate(members)
            )  # fmt: skip
        if len(members) == 1:  # one output (most actions): no generator
            member = members[0]
            producer = _producer(action.key, type(member))
            return (
                Envelope(
                    member, correlation_id, cause, derived_id(correlation_id, producer, causes)
                ),
            )
        return tuple(
            Envelope(
                member,
                correlation_id,
                cause,
                derived_id(correlation_id, _producer(action.key, type(member)), causes),
            )
            for member in members
        )

    def failure(
        self, action: PlannedAction, error: str, attempts: int, cause: str | None
    ) -> tuple[Envelope[Message], ...]:
        failed = ActionFailed(
            correlation_id=self.correlation_id, action=action.key, attempts=attempts, error=error
        )
        message_id = derived_id(self.correlation_id, f"{action.key}>failed", (cause,))
        if self.failure_id is None:
            self.failure_id = message_id
        return (Envelope(failed, self.correlation_id, cause, message_id),)

    def undone(self, undo: Undo, output: Any) -> tuple[Envelope[Message], ...]:
        if not isinstance(output, Message):
            return ()
        message_id = derived_id(self.correlation_id, undo.key, (self.failure_id,))
        return (Envelope(output, self.correlation_id, self.failure_id, message_id),)

    def arrived(self, planned: PlannedWait, message: Message) -> Envelope[Message]:
        message_id = derived_id(self.correlation_id, planned.key, ())
        return Envelope(message, self.correlation_id, None, message_id)

    def handled(
        self, action: PlannedAction, causes: tuple[str | None, ...]
    ) -> tuple[tuple[str, str], ...]:
        if len(causes) == 1:  # one cause (most actions): no generator
            cause = causes[0]
            if cause is None:
                return ()
            if GATHERED not in cause:
                return ((cause, action.key),)
        key = action.key
        return tuple(
            [
                (one, key)
                for cause in causes
                if cause is not None
                for one in cause.split(GATHERED)  # a gather handled each of its items
            ]
        )

    def committed(self, envelopes: Sequence[Envelope[Message]]) -> None:
        for envelope in envelopes:
            self.bus.publish(envelope)
