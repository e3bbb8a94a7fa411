"""Choreography: the same participants, each reacting to its own inputs on an event bus.

Nobody holds the sequence: each forward action is subscribed to the message types it
consumes and publishes what it produces. What the choreography keeps per correlation is
only what a saga needs — which actions ran, what they produced, which joins wait — so it
can undo them newest first when one fails, and tell when the flow instance is finished.
That record is what `ProcessMonitor` shows: the unseen orchestrator, made visible.
"""

from __future__ import annotations

import asyncio
import random as _random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from coordination._attempts import ActionPlan, Attempts, describe
from coordination._clock import Clock
from coordination._context import Context
from coordination._graph import FlowGraph
from coordination._journal import EntryKind, Rows
from coordination._messages import Envelope, Message, new_id, type_name_of
from coordination._ownership import process_owner
from coordination._participants import Participant
from coordination._status import WorkflowStatus
from coordination._timed import TimedAttempt, bounded
from coordination.choreography._bus import EventBus
from coordination.choreography._durable import derived_id, dump_process
from coordination.choreography._events import ActionFailed, HandlerFailed
from coordination.choreography._process import Process
from coordination.choreography._recovery import Recovery
from coordination.choreography._timing import Timing
from coordination.choreography._undoing import Undoing
from coordination.choreography._wiring import Wired
from coordination.errors import UsageError, WorkflowBusy
from coordination.stores._sqlite_events import SQLiteEventLog

__all__ = ["Choreography"]

_PUBLISHED = EntryKind.PUBLISHED.value
_FAILED = EntryKind.FAILED.value
_LATE = EntryKind.LATE_RESULT.value
_RUNNING = WorkflowStatus.RUNNING


class Choreography(Recovery, Undoing, Timing):
    """Wire participants to a bus: each forward action reacts to its inputs.

    The same participant classes run unchanged under `Orchestrator` or here, with the same
    `@action(retry=..., timeout=...)`: a retry is a delayed re-delivery (the bus delivers
    everything else meanwhile), a join waits per `correlation_id` for all its inputs, and
    a failure after the retries publishes `ActionFailed` and undoes what completed, newest
    first, publishing each compensation's output like any event.
    """

    def __init__(
        self,
        bus: EventBus,
        *participants: Participant,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        join_timeout: float = 300.0,
        max_finished: int = 10_000,
        store: SQLiteEventLog | None = None,
        max_deliveries: int = 5,
    ) -> None:
        """`join_timeout`: seconds a join may wait for its other inputs (then JoinTimeout).

        `max_finished` finished flow instances are kept for the monitor; ids of forgotten
        ones stay as tombstones, so a late message never reopens them. With a `store`
        (a `SQLiteStore`), every published message goes to its event log before delivery,
        each handling commits its inbox mark, outputs and flow state together, and
        `recover()` delivers again what a crashed process had not handled; a delivery
        that comes back `max_deliveries` times is set aside as a dead letter.
        """
        from coordination.choreography._monitor import ProcessMonitor

        if not isinstance(bus, EventBus):
            raise UsageError(f"Choreography(bus, ...) takes an EventBus first, got {bus!r}")
        if not participants:
            raise UsageError("Choreography needs at least one participant")
        if join_timeout <= 0:
            raise UsageError(f"join_timeout={join_timeout} must be > 0 seconds")
        if store is not None and not isinstance(store, SQLiteEventLog):
            raise UsageError(
                f"a durable choreography needs a store with an event log, like "
                f"SQLiteStore('orders.db'); got {store!r}"
            )
        if max_deliveries < 1:
            raise UsageError(f"max_deliveries={max_deliveries} must be at least 1")
        self.store = store
        self.max_deliveries = max_deliveries
        #: Who owns the flow instances this choreography runs (see coordination._ownership).
        self._owner = process_owner()
        self.bus = bus
        self.clock: Clock = clock if clock is not None else bus.clock
        self.random = random or _random.random
        self.join_timeout = join_timeout
        self.max_finished = max_finished
        self.graph = FlowGraph(participants)
        self.graph.check_commands()
        self._wired = {node.key: Wired(node) for node in self.graph.nodes}
        self._has_async = any(wired.forward.is_async for wired in self._wired.values())
        self._starts = {
            wanted
            for node in self.graph.nodes
            for wanted in node.signature.inputs
            if not self.graph.producers(wanted)
        }
        self._active: dict[str, Process] = {}
        self._finished: OrderedDict[str, Process] = OrderedDict()
        self._tombstones: OrderedDict[str, None] = OrderedDict()
        #: (correlation, join action) -> deadline, in deadline order (join_timeout is one
        #: constant, so insertion order is deadline order); removed when the join completes.
        self._deadlines: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self._types = self._message_types()
        if store is not None:
            store.register_types(self._types)  # type: ignore[attr-defined]
        for wired in self._wired.values():
            for index, wanted in enumerate(wired.node.signature.inputs):
                # Participants' sync actions may block (I/O): under publish_async they run
                # on worker threads, as run_async() runs them for an orchestrator.
                bus.subscribe(wanted, self._handler(wired, index), blocking=True)
        bus.subscribe(HandlerFailed, self._on_handler_failed)
        self.monitor = ProcessMonitor(self)

    # -- starting ---------------------------------------------------------------------

    def _check_start(self, message: Message) -> None:
        if not isinstance(message, Message):
            raise UsageError(f"publish() takes a message, got {type(message).__name__}")
        if not any(isinstance(message, start) for start in self._starts):
            starts = ", ".join(sorted(t.__name__ for t in self._starts)) or "none"
            raise UsageError(
                f"{type(message).__name__} does not start a flow here: a flow starts with a "
                f"message no participant produces ({starts})"
            )

    def publish(self, message: Message, *, correlation_id: str | None = None) -> Envelope[Message]:
        """Start a flow instance with `message`; return once everything it caused settled."""
        self._check_start(message)
        if self._has_async and _loop_running():
            raise UsageError(
                "this choreography has async actions and publish() was called inside a "
                "running event loop; use `await flow.publish_async(...)`"
            )
        envelope = self.bus.envelope(message, correlation_id=correlation_id or new_id())
        self._open(envelope, from_caller=True)
        return self.bus.publish(envelope)

    async def publish_async(
        self, message: Message, *, correlation_id: str | None = None
    ) -> Envelope[Message]:
        """Like `publish()`, awaiting async participants on the running loop."""
        self._check_start(message)
        envelope = self.bus.envelope(message, correlation_id=correlation_id or new_id())
        self._open(envelope, from_caller=True)
        return await self.bus.publish_async(envelope)

    def _open(self, envelope: Envelope[Message], *, from_caller: bool = False) -> Process | None:
        """The process of `envelope`'s correlation, created if this message starts one.

        `from_caller`: `publish()` journals its message in a running process too (a join's
        other input, say), not only in the process it creates.
        """
        correlation_id = envelope.correlation_id
        with self._lock:
            process = self._active.get(correlation_id)
            if process is None:
                if correlation_id in self._tombstones or correlation_id in self._finished:
                    return None  # finished: a late message never reopens it
                if self.store is not None:
                    stored = self.store.process_status(correlation_id)
                    if stored is not None and stored.finished:
                        return None  # finished in an earlier process
                    if stored is not None:
                        if not from_caller:
                            return None
                        raise WorkflowBusy(
                            f"flow instance {correlation_id!r} is {stored.name} in the store "
                            f"but not running here: call recover() to go on with it",
                            workflow_id=correlation_id,
                        )
                start = type(envelope.message)
                if not any(issubclass(start, wanted) for wanted in self._starts):
                    return None  # a mid-flow message for a flow this choreography never saw
                expected = self.graph.reachable(start)
                process = Process(correlation_id, start, expected, self.clock.now())
                self._active[correlation_id] = process
            elif not from_caller:
                return process
        self._record_published(process, envelope, "caller")
        self._commit(process, None, None, (envelope,))  # the outbox: before delivery
        return process

    def _record_published(
        self, process: Process, envelope: Envelope[Message], publisher: str
    ) -> None:
        process.add_rows(
            (
                _PUBLISHED, publisher, type(envelope.message).__name__,
                envelope.correlation_id, envelope.causation_id, 0, self.clock.now(), None,
                None, None, envelope.message_id,
            )
        )  # fmt: skip

    def _publish(
        self,
        process: Process,
        messages: Iterable[Message],
        cause: str | None,
        publisher: str,
        handled: str | None = None,
    ) -> None:
        """Publish what `handled` (an action or undo key) produced from `cause`.

        Durable: the envelopes, `cause`'s inbox mark for `handled` and the flow state are
        committed together first, with ids derived from what produced them, so doing the
        same work again after a crash publishes the same ids.
        """
        envelopes = []
        for message in messages:
            if self.store is not None and handled is not None:
                produced = f"{handled}>{type_name_of(type(message))}"
                message_id = derived_id(process.correlation_id, produced, (cause,))
            else:
                message_id = new_id()
            envelope = Envelope(message, process.correlation_id, cause, message_id)
            if isinstance(message, ActionFailed) and process.failure_id is None:
                # What the undos publish is caused by the failure that started them.
                process.failure_id = envelope.message_id
            self._record_published(process, envelope, publisher)
            envelopes.append(envelope)
        self._commit(process, cause, handled, envelopes)
        for envelope in envelopes:
            self.bus.publish(envelope)

    def _commit(
        self,
        process: Process,
        cause: str | None,
        handled: str | None,
        envelopes: Sequence[Envelope[Message]] = (),
    ) -> None:
        """Save the flow state (and `cause`'s inbox mark, and `envelopes`) in one commit."""
        store = self.store
        if store is None:
            return
        with process.lock:
            state = dump_process(process)
            status = process.status
        now = self.clock.now()
        if cause is not None and handled is not None:
            store.record_handled(
                cause, handled, process.correlation_id, status, state, now=now,
                events=envelopes, owner=self._owner,
            )  # fmt: skip
        else:
            store.save_process(
                process.correlation_id, status, state, now=now, events=envelopes,
                owner=self._owner,
            )  # fmt: skip

    # -- reacting ---------------------------------------------------------------------

    def _handler(self, wired: Wired, index: int) -> Callable[..., Any]:
        if wired.forward.is_async:

            async def react_async(message: Message, ctx: Context) -> None:
                ready = self._arrive(wired, index, message, ctx)
                if ready is not None:
                    process, inputs = ready
                    attempts = self._attempts(wired.forward, process, ctx.message_id)
                    await self._attempt_async(process, wired, inputs, attempts)

            react_async.__qualname__ = f"Choreography[{wired.node.key}]"
            return react_async

        def react(message: Message, ctx: Context) -> None:
            ready = self._arrive(wired, index, message, ctx)
            if ready is not None:
                process, inputs = ready
                attempts = self._attempts(wired.forward, process, ctx.message_id)
                self._attempt(process, wired, inputs, attempts)

        react.__qualname__ = f"Choreography[{wired.node.key}]"
        return react

    def _attempts(self, plan: ActionPlan, process: Process, cause: str | None) -> Attempts:
        return Attempts(plan, process.correlation_id, self.clock, self.random, causation=cause)

    def _arrive(
        self, wired: Wired, index: int, message: Message, ctx: Context
    ) -> tuple[Process, list[Any]] | None:
        """Record one input; the inputs to run with once all of the action's have come."""
        if self._deadlines and next(iter(self._deadlines.values())) <= self.clock.monotonic():
            self.check_deadlines()
        process = self._active.get(ctx.correlation_id)
        if process is None:
            process = self._open(
                Envelope(message, ctx.correlation_id, ctx.causation_id, ctx.message_id)
            )
            if process is None:
                return None
        key = wired.node.key
        arity = len(wired.node.signature.inputs)
        with process.lock:
            if process.status is not _RUNNING or key in process.started:
                return None
            if arity == 1:
                process.mark_started(key)
                return process, [message]
            waiting = process.joins.setdefault(key, {})
            waiting.setdefault(index, message)
            if len(waiting) < arity:
                if len(waiting) == 1:
                    deadline = self.clock.monotonic() + self.join_timeout
                    with self._lock:
                        self._deadlines[(process.correlation_id, key)] = deadline
                return None
            del process.joins[key]
            if arity > 1:
                with self._lock:
                    self._deadlines.pop((process.correlation_id, key), None)
            process.mark_started(key)
            return process, [waiting[i] for i in range(arity)]

    def _attempt(
        self, process: Process, wired: Wired, inputs: list[Any], attempts: Attempts
    ) -> None:
        with process.lock:
            process.retrying.pop(wired.node.key, None)
            if process.status is not _RUNNING:
                return  # a retry that fell due after the flow failed: forward work stops
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            if plan.timeout is None:
                result = plan.invoke(inputs, ctx)
            else:
                timed = TimedAttempt(
                    lambda: plan.invoke(inputs, ctx),
                    self._late_handler(process, wired, attempts.attempt),
                    plan.key,
                )
                result = timed.wait(attempts.attempt_timeout() or 0.0)
            attempts.succeeded(result)
        except Exception as error:
            delay = self._after_failure(process, wired, inputs, attempts, error)
            if delay is not None:
                self.bus.call_later(delay, lambda: self._attempt(process, wired, inputs, attempts))
            return
        self._completed(process, wired, inputs, result, attempts)

    async def _attempt_async(
        self, process: Process, wired: Wired, inputs: list[Any], attempts: Attempts
    ) -> None:
        with process.lock:
            process.retrying.pop(wired.node.key, None)
            if process.status is not _RUNNING:
                return
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            result = await bounded(plan.invoke(inputs, ctx), attempts.attempt_timeout())
            attempts.succeeded(result)
        except Exception as error:
            delay = self._after_failure(process, wired, inputs, attempts, error)
            if delay is not None:
                self.bus.call_later(
                    delay,
                    lambda: self._attempt_async(process, wired, inputs, attempts),
                )
            return
        await self._completed_async(process, wired, inputs, result, attempts)

    def _after_failure(
        self,
        process: Process,
        wired: Wired,
        inputs: list[Any],
        attempts: Attempts,
        error: Exception,
    ) -> float | None:
        """Journal a failed attempt; the delay before a retry, or None once the action failed."""
        delay = attempts.failed(error)
        process.take_rows(attempts)
        key = wired.node.key
        with process.lock:
            if delay is not None and process.status is _RUNNING:
                process.retrying[key] = (wired, inputs)  # started: owed an undo if dropped
                return delay
            held = process.settle(key, False) if wired.forward.timeout else []
            first = process.status is _RUNNING
            if first:
                for _, ok, value in held:
                    if ok:  # a late result of this action: undone with the rest
                        process.settled.append((wired, value, True, []))
                process.settled.append((wired, None, False, inputs))
                taken = process.fail(f"{key}: {describe(error)}")
        for attempt, ok, value in held:
            self._late_result(process, wired, attempt, ok, value, False)
        if first:
            for other, attempt, ok, value in taken:
                self._late_result(process, other, attempt, ok, value, False)
        else:
            # The flow failed meanwhile (on another thread): owe this action's undos too.
            for _, ok, value in held:
                if ok:
                    self._owe(process, process.undo_for(wired, value, True, []))
            self._owe(process, process.undo_for(wired, None, False, inputs))
        failure = ActionFailed(
            correlation_id=process.correlation_id,
            action=wired.node.key,
            attempts=attempts.attempt,
            error=describe(error),
        )
        participant = wired.node.declared.participant
        self._publish(process, (failure,), attempts.causation, participant, wired.node.key)
        if first:
            self._undo_next(process)
        return None

    def _completed(
        self, process: Process, wired: Wired, inputs: list[Any], result: Any, attempts: Attempts
    ) -> None:
        process.take_rows(attempts)
        with process.lock:
            # Only timed attempts can return late: only they need their outcome kept.
            held = process.settle(wired.node.key, True) if wired.forward.timeout else []
            running = process.status is _RUNNING
            if running:
                process.settled.append((wired, result, True, inputs))
                finished = process.mark_done(wired.node.key)
        for attempt, ok, value in held:
            self._late_result(process, wired, attempt, ok, value, True)
        if not running:
            # The flow failed while this ran (another thread): undo it too.
            self._owe(process, process.undo_for(wired, result, True, inputs))
            return
        participant = wired.node.declared.participant
        outputs = result if isinstance(result, tuple) else () if result is None else (result,)
        self._publish(process, outputs, attempts.causation, participant, wired.node.key)
        if finished:
            self._finish(process, WorkflowStatus.COMPLETED)

    async def _completed_async(
        self, process: Process, wired: Wired, inputs: list[Any], result: Any, attempts: Attempts
    ) -> None:
        self._completed(process, wired, inputs, result, attempts)

    # -- finishing --------------------------------------------------------------------

    def _finish(self, process: Process, status: WorkflowStatus) -> None:
        with process.lock:
            if process.finished_at is not None:
                failed = WorkflowStatus.COMPENSATION_FAILED
                refinished = status is failed and process.status is not failed
                if refinished:
                    # An undo owed after the end failed: journal the new end.
                    process.finish(status, self.clock.now())
            else:
                refinished = None
            if refinished is None:
                if process.status is WorkflowStatus.COMPENSATION_FAILED:
                    status = process.status  # a late undo failed while the saga ran
                waiting_joins = list(process.joins)
                process.finish(status, self.clock.now())
        if refinished is not None:
            if refinished:
                self._commit(process, None, None)
            return
        self._commit(process, None, None)
        with self._lock:
            for key in waiting_joins:
                self._deadlines.pop((process.correlation_id, key), None)
            self._active.pop(process.correlation_id, None)
            self._finished[process.correlation_id] = process
            while len(self._finished) > self.max_finished:
                forgotten, _ = self._finished.popitem(last=False)
                self._tombstones[forgotten] = None
                while len(self._tombstones) > 10 * max(self.max_finished, 1_000):
                    self._tombstones.popitem(last=False)

    def process(self, correlation_id: str) -> Process | None:
        """The live or finished process of a correlation (None if unknown or forgotten)."""
        return self._active.get(correlation_id) or self._finished.get(correlation_id)

    def processes(self) -> list[Process]:
        """Every process kept: running ones first, then finished ones, oldest first."""
        with self._lock:
            return [*self._active.values(), *self._finished.values()]

    def __repr__(self) -> str:
        return (
            f"<Choreography {len(self.graph.nodes)} actions, {len(self._active)} running, "
            f"{len(self._finished)} finished>"
        )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_ = (Rows, type_name_of)
