"""recover(): a durable choreography goes on where a crashed process left its flows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from coordination._clock import Clock
from coordination._context import Context
from coordination._graph import FlowGraph
from coordination._messages import Message, from_json, type_name_of
from coordination._ownership import owner_alive
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._durable import load_process
from coordination.choreography._events import ActionFailed, HandlerFailed
from coordination.choreography._monitor import ProcessView, reconstruct
from coordination.choreography._process import Process
from coordination.choreography._wiring import Wired
from coordination.errors import MessageError, StoreError, UsageError
from coordination.stores._sqlite_events import SQLiteEventLog

__all__ = ["Recovery"]

_RUNNING = WorkflowStatus.RUNNING


class Recovery:
    """The recovery half of `Choreography` (which provides everything declared here)."""

    graph: FlowGraph
    store: SQLiteEventLog | None
    bus: EventBus
    clock: Clock
    max_deliveries: int
    _types: tuple[type[Message], ...]
    _wired: dict[str, Wired]
    _active: dict[str, Process]
    _lock: threading.Lock
    _owner: str
    _handler: Callable[[Wired, int], Callable[..., Any]]
    _finish: Callable[[Process, WorkflowStatus], None]
    _undo_next: Callable[[Process], None]

    def _message_types(self) -> tuple[type[Message], ...]:
        found: list[type[Message]] = [ActionFailed, HandlerFailed]
        for node in self.graph.nodes:
            found.extend((*node.signature.inputs, *node.signature.outputs))
            compensation = node.compensation
            if compensation is not None:
                found.extend(compensation.signature.outputs)
        return tuple(dict.fromkeys(found))

    def _decode(self, text: str) -> Message:
        try:
            return from_json(text, self._types)
        except MessageError as error:
            raise StoreError(
                f"cannot read a stored message of this choreography: {error}"
            ) from error

    def _consumers(self, message_type: type[Message]) -> list[tuple[Wired, int]]:
        return [
            (wired, index)
            for wired in self._wired.values()
            for index, wanted in enumerate(wired.node.signature.inputs)
            if issubclass(message_type, wanted)
        ]

    def recover(self) -> list[ProcessView]:
        """Go on with the flow instances a crashed process left unfinished in the store.

        Running ones get again every logged message an action had not handled (in log
        order); compensating ones go on undoing. A delivery that came back more than
        `max_deliveries` times is set aside as a dead letter and its flow is PARKED for a
        human. Free-form subscribers are not redelivered (at most once across a crash).
        Returns the recovered flows as they stand afterwards.
        """
        store = self.store
        if store is None:
            raise UsageError("recover() needs a durable choreography: pass store=SQLiteStore(...)")
        by_name = {type_name_of(t): t for t in self._types}
        recovered: list[Process] = []
        for correlation_id, owner in store.unfinished_processes():
            if correlation_id in self._active:
                continue
            replacing = None
            if owner == self._owner:
                replacing = owner  # left by an interrupted cascade in this very process
            elif owner is not None:
                alive = owner_alive(owner)
                if alive is True:
                    continue  # a live process on this host runs it
                if alive is False:
                    replacing = owner
            state = store.claim_process(
                correlation_id, self._owner, now=self.clock.now(), replacing=replacing
            )
            if state is None:
                continue  # someone else holds it, or another recoverer claimed it first
            start = by_name.get(state["start"])
            if start is None:
                raise StoreError(
                    f"flow instance {correlation_id!r} was started by {state['start']}, which "
                    f"no participant of this choreography consumes; the row is left intact"
                )
            process = load_process(correlation_id, state, start, self._wired, self._decode)
            # An action that had started but not settled (running, or waiting for a retry)
            # when the process died starts again: only settled actions stay started.
            settled = {wired.node.key for wired, _, _, _ in process.settled}
            process.started = settled | set(process.done)
            with self._lock:
                self._active[correlation_id] = process
            recovered.append(process)
            if process.status is WorkflowStatus.COMPENSATING:
                with process.lock:
                    process.undo_queue = [
                        undo
                        for undo in process.undo_plan()
                        if undo.wired.node.key not in process.undone
                    ]
                self.bus.call_later(0.0, lambda process=process: self._undo_next(process))  # type: ignore[misc]
                continue
            self._redeliver(process)
        return [reconstruct(process) for process in recovered]

    def _redeliver(self, process: Process) -> None:
        store = self.store
        assert store is not None
        handled = store.handled(process.correlation_id)
        for envelope in store.events_of(process.correlation_id):
            for wired, index in self._consumers(type(envelope.message)):
                key = wired.node.key
                if (envelope.message_id, key) in handled or key in process.started:
                    continue
                count = store.count_delivery(envelope.message_id, key)
                if count > self.max_deliveries:
                    reason = (
                        f"{type(envelope.message).__name__} {envelope.message_id} was delivered "
                        f"to {key} {count - 1} times without being handled"
                    )
                    store.dead_letter(envelope.message_id, key, reason)
                    with process.lock:
                        process.failure = f"{key}: dead letter: {reason}"
                    self._finish(process, WorkflowStatus.PARKED)
                    return
                ctx = Context(
                    process.correlation_id,
                    f"{envelope.message_id}:{key}",
                    1,
                    None,
                    self.clock,
                    message_id=envelope.message_id,
                    causation_id=envelope.causation_id,
                )
                handler = self._handler(wired, index)
                message = envelope.message
                self.bus.call_later(0.0, lambda h=handler, m=message, c=ctx: h(m, c))  # type: ignore[misc]
                if process.status is not _RUNNING:
                    return
