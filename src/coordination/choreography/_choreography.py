"""Choreography: the same participants, each reacting to its own inputs on an event bus.

Nobody holds the sequence: each forward action is subscribed to the message types it
consumes and publishes what it produces. What runs when is still one rule, the engine's
(DESIGN.md, "One engine, one rule"): each flow instance has a saga that holds an action
until its generation is open, lets every action of a generation run to its end, and undoes
newest first when one fails — so the same participants reach the same outcome here as
under an `Orchestrator`. Each instance is kept in a store (a `MemoryStore` unless one is
given) exactly as an orchestrated run is, plus its outbox and inbox: `ProcessMonitor`
shows it, the unseen orchestrator made visible.
"""

from __future__ import annotations

import random as _random
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from coordination._clock import Clock
from coordination._messages import Envelope, Message, new_id
from coordination._participants import Participant
from coordination.choreography._bus import EventBus
from coordination.choreography._events import HandlerFailed
from coordination.choreography._instances import Binding, Instance, Instances
from coordination.choreography._monitor import ProcessMonitor, ProcessView
from coordination.choreography._operators import Operators
from coordination.choreography._outbox import Outbox
from coordination.choreography._reactor import Reactor
from coordination.choreography._recovery import Recovery
from coordination.engine import (
    FlowGraph,
    FlowPlan,
    Observer,
    Problem,
    Saga,
    WaitStep,
    bind,
    bind_action,
    check_participants,
    checked_observers,
    claim_or_busy,
    compile_plan,
    derive_groups,
    loop_running,
    process_owner,
    same_start,
    serve,
    wait_for_result,
)
from coordination.errors import DefinitionError, UsageError, WorkflowNotFound
from coordination.stores._memory import MemoryStore
from coordination.stores._records import RunRecord
from coordination.stores._store import EventLog, Store, WorkQueue

__all__ = ["Choreography"]


class _DeclaredFlow(Protocol):
    """A flow whose declarations a choreography can adopt (an `Orchestrator` subclass)."""

    plan: FlowPlan


class Choreography:
    """Wire participants to a bus: each forward action reacts to its inputs.

    The same participant classes run unchanged under `Orchestrator` or here, with the same
    `@action(retry=..., timeout=...)`; `flow=` adopts a flow's declarations (step
    overrides, declared order). A retry is a delayed re-delivery (the bus delivers
    everything else meanwhile), an action whose inputs came early waits for its generation,
    and a failure after the retries publishes `ActionFailed` and undoes what was done,
    newest first, publishing each compensation's output like any event.
    """

    def __init__(
        self,
        bus: EventBus,
        *participants: Participant,
        flow: type[Any] | None = None,
        store: Store | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        join_timeout: float = 300.0,
        max_finished: int = 10_000,
        max_deliveries: int = 5,
        observers: Sequence[Observer] = (),
        waits: Sequence[WaitStep] = (),
    ) -> None:
        """`flow`: an `Orchestrator` subclass whose declarations (overrides, order) to adopt.

        `store`: where instances are kept (with their outbox and inbox); a `MemoryStore`
        keeping `max_finished` finished instances by default. With a durable store
        (`SQLiteStore`), every published message is logged before delivery, each handling
        commits its inbox mark, outputs and record together, and `recover()` goes on with
        what a crashed process left; a delivery that comes back `max_deliveries` times is
        set aside as a dead letter. `name`: the stored name of this choreography's
        instances (default: from the start messages, or the adopted flow's name).
        `observers` are called with each journal entry of every instance as it is recorded.
        `join_timeout`: seconds an action of an open generation may wait for inputs that
        were produced but never delivered (`check_deadlines()` fails it). `waits`: the
        outside messages the flow waits for, as `wait(...)` declarations (without `flow=`;
        an adopted flow brings its own): each stands before the first generation that
        consumes its message, and `publish(message, correlation_id=...)` delivers it.
        """
        if not isinstance(bus, EventBus):
            raise UsageError(f"Choreography(bus, ...) takes an EventBus first, got {bus!r}")
        if not participants:
            raise UsageError("Choreography needs at least one participant")
        if not join_timeout > 0:
            raise UsageError(f"join_timeout={join_timeout!r} must be > 0 seconds")
        if (
            isinstance(max_deliveries, bool)
            or not isinstance(max_deliveries, int)
            or max_deliveries < 1
        ):
            raise UsageError(f"max_deliveries={max_deliveries!r} must be an int of at least 1")
        if store is not None and not (isinstance(store, Store) and isinstance(store, EventLog)):
            raise UsageError(
                f"a choreography's store keeps instances and an event log, like MemoryStore() "
                f"or SQLiteStore('orders.db'); got {store!r}"
            )
        check_participants("Choreography", participants)
        if not isinstance(waits, tuple | list) or not all(
            isinstance(w, WaitStep) and w.types for w in waits
        ):
            raise UsageError(
                f"waits= takes wait(...) declarations, like waits=(wait(PaymentSettled),); got "
                f"{waits!r} (a sleep needs a declared flow: flow=)"
            )
        if waits and flow is not None:
            raise UsageError(
                "waits= is for a choreography derived from its participants; with flow=, the "
                "flow's own wait(...) steps are adopted"
            )
        self._waits = tuple(waits)
        self._observers = checked_observers("Choreography", observers)
        self.bus = bus
        self.clock: Clock = clock if clock is not None else bus.clock
        self.random = random or _random.random
        self.join_timeout = join_timeout
        self.max_deliveries = max_deliveries
        self.store: Any = store if store is not None else MemoryStore(max_finished)
        self._owner = process_owner()
        self.graph = FlowGraph(participants)
        self.graph.check_commands()
        bindings = self._bindings(participants, flow, name)
        self.name = next(iter(bindings.values())).plan.name
        for binding in bindings.values():
            self.store.register_types(binding.plan.message_types)
        self.instances = Instances(self.name, bindings)
        self._reactor = Reactor(bus, self.instances, self.random)
        self._has_async = any(node.signature.is_async for node in self.graph.nodes)
        self.monitor = ProcessMonitor(self.instances, self.store, self.clock)
        self._recovery = Recovery(
            bus=bus,
            store=self.store,
            instances=self.instances,
            reactor=self._reactor,
            clock=self.clock,
            owner=self._owner,
            open_instance=self._instance,
            max_deliveries=max_deliveries,
            observers=self._observers,
        )
        self._operators = Operators(
            bus=bus,
            store=self.store,
            instances=self.instances,
            reactor=self._reactor,
            recovery=self._recovery,
            monitor=self.monitor,
            clock=self.clock,
            owner=self._owner,
            name=self.name,
            has_async=self._has_async,
            start=lambda message, correlation_id: self.publish(
                message, correlation_id=correlation_id
            ),
        )
        self._subscribe()

    def _bindings(
        self, participants: tuple[Participant, ...], flow: type[Any] | None, name: str | None
    ) -> dict[type[Message], Binding]:
        """One plan per start message: derived from the signatures, or the flow's own."""
        if flow is not None:
            plan = getattr(flow, "plan", None)
            if not isinstance(plan, FlowPlan):
                raise UsageError(
                    f"Choreography(flow=...) takes an Orchestrator subclass whose declarations "
                    f"to adopt, got {flow!r}"
                )
            plan = plan.with_name(name or f"{plan.name}:choreography")
            return {plan.start_type: Binding(plan, bind(plan, participants))}
        outside = frozenset(kind for declared in self._waits for kind in declared.types)
        self.graph.check_inputs(outside)
        starts = sorted(self.graph.starts(outside), key=lambda t: t.__qualname__)
        if not starts:
            raise DefinitionError(
                "no message starts a flow here: every action's input is produced by another "
                "action (a cycle); a flow starts with a message no participant produces"
            )
        chosen = name or "choreography:" + "+".join(start.__name__ for start in starts)
        nodes = {node.key: node for node in self.graph.nodes}
        bindings: dict[type[Message], Binding] = {}
        for start in starts:
            plan = compile_plan(chosen, derive_groups(self.graph, start, self._waits), start)
            bound = {p.key: bind_action(p, nodes[p.key].participant) for p in plan.actions}
            bindings[start] = Binding(plan, bound)
        return bindings

    def _subscribe(self) -> None:
        """Subscribe each action to its input types, in the order the participants came."""
        planned = {p.key: p for b in self.instances.bindings.values() for p in b.plan.actions}
        for node in self.graph.nodes:
            if node.key not in planned:
                continue  # part of no flow here (an action of an adopted flow's leftovers)
            for index, wanted in enumerate(node.signature.inputs):
                # Participants' sync actions may block (I/O): under publish_async they run
                # on worker threads, as run_async() runs them for an orchestrator.
                handler = self._reactor.handler(node.key, index, node.signature.is_async)
                self.bus.subscribe(wanted, handler, blocking=True)
        self.bus.subscribe(HandlerFailed, self._recovery.on_handler_failed)

    # -- starting ---------------------------------------------------------------------

    def _check_start(self, message: Message, method: str = "publish") -> Binding:
        if not isinstance(message, Message):
            raise UsageError(f"{method}() takes a message, got {type(message).__name__}")
        binding = self.instances.binding_for(type(message))
        if binding is None:
            starts = ", ".join(sorted(t.__name__ for t in self.instances.bindings)) or "none"
            raise UsageError(
                f"{type(message).__name__} does not start a flow here: a flow starts with a "
                f"message no participant produces ({starts})"
            )
        return binding

    def publish(self, message: Message, *, correlation_id: str | None = None) -> Envelope[Message]:
        """Start a flow instance with `message`; return once everything it caused settled.

        Idempotent by `correlation_id`, like `Orchestrator.run()`: the same message again
        returns its envelope and runs nothing; a different one raises `WorkflowConflict`.
        An outside message (one the flow's `wait(...)` steps wait for) goes to the instance
        `correlation_id` names, like `Orchestrator.send()`: a WAITING one resumes here; one
        another live process drives gets it as a durable request, taken there.
        """
        if self._operators.waits_for(message):
            return self._operators.send(message, correlation_id)
        binding = self._check_start(message)
        if self._has_async and loop_running():
            raise UsageError(
                "this choreography has async actions and publish() was called inside a "
                "running event loop; use `await flow.publish_async(...)`"
            )
        envelope = self.bus.envelope(message, correlation_id=correlation_id or new_id())
        opened, started = self._open(envelope, binding)
        if opened is None:
            return started
        try:
            if started is envelope:
                self.bus.publish(envelope)
            else:
                self._recovery.redeliver(opened)
        except BaseException:
            self._reactor.release(opened)  # interrupted: recover() or publish() goes on
            raise
        return started

    async def publish_async(
        self, message: Message, *, correlation_id: str | None = None
    ) -> Envelope[Message]:
        """Like `publish()`, awaiting async participants on the running loop."""
        if self._operators.waits_for(message):
            return await self._operators.send_async(message, correlation_id)
        binding = self._check_start(message)
        envelope = self.bus.envelope(message, correlation_id=correlation_id or new_id())
        opened, started = self._open(envelope, binding)
        if opened is None:
            return started
        try:
            if started is envelope:
                await self.bus.publish_async(envelope)
            else:
                await self._recovery.redeliver_async(opened)
        except BaseException:
            self._reactor.release(opened)
            raise
        return started

    def _open(
        self, envelope: Envelope[Message], binding: Binding
    ) -> tuple[Instance | None, Envelope[Message]]:
        """The instance to drive (None: nothing to run) and the envelope that started it.

        A new correlation gets a new instance started by `envelope`; a known one with the
        same start message is idempotent: it ran (or runs here) already, or it was left
        half done by an owner that is gone and is resumed.
        """
        plan = binding.plan
        correlation_id = envelope.correlation_id
        record, token = self.store.start_run(
            correlation_id,
            plan.name,
            envelope.message,
            owner=self._owner,
            now=self.clock.now(),
            shape=plan.shape,
            events=(envelope,),
        )
        if token is not None:
            return self._instance(record, token, binding, envelope.message_id), envelope
        same_start(record, plan.name, envelope.message)
        started = self.store.events_of(correlation_id)
        first = started[0] if started else envelope
        if record.status.finished or self.instances.get(correlation_id) is not None:
            return None, first  # the same start again: it ran (or runs here) already
        now = self.clock.now()
        token = claim_or_busy(self.store, record, self._owner, now, "wait for it to finish")
        return self._recovery.resumed(correlation_id, token, was=record.owner), first

    def _instance(
        self, record: Any, token: int, binding: Binding, start_id: str | None
    ) -> Instance:
        outbox = Outbox(self.bus, record.workflow_id)
        saga = Saga(
            binding.plan, record, token, self.store, self.clock, publishing=outbox,
            start_id=start_id, observers=self._observers,
        )  # fmt: skip
        instance = Instance(saga, binding, outbox)
        self.instances.add(instance)
        return instance

    # -- going on after a crash ---------------------------------------------------------

    def recover(
        self, *, max_recoveries: int = 5, on_problem: Problem | None = None
    ) -> list[ProcessView]:
        """Go on with this choreography's instances that owe work and whose owner is gone.

        What was not handled is delivered again (an action that started but never settled
        runs again under its idempotency key); an instance stopped by a changed set of
        actions (`FlowChanged`) or an unreadable row is left alone and reported to
        `on_problem(correlation_id, error)`. Returns the instances as they stand after.
        """
        return self._recovery.recover(max_recoveries, on_problem)

    # -- workers: instances shared by processes through the store -------------------------

    def submit(self, message: Message, *, correlation_id: str | None = None) -> str:
        """Start a flow instance for whichever worker delivers it first (`serve()`, in any
        process sharing the store); its correlation id. Idempotent by `correlation_id`,
        like `publish()`: nothing is delivered here, the start message is only logged."""
        if self._operators.waits_for(message):
            raise UsageError(
                f"{type(message).__name__} is an outside message: submit() starts flow "
                f"instances; deliver it with publish(message, correlation_id=...)"
            )
        binding = self._check_start(message, "submit")
        envelope = self.bus.envelope(message, correlation_id=correlation_id or new_id())
        record, token = self.store.start_run(
            envelope.correlation_id,
            binding.plan.name,
            message,
            owner=self._owner,
            now=self.clock.now(),
            shape=binding.plan.shape,
            events=(envelope,),
        )
        if token is None:
            same_start(record, binding.plan.name, message)
            return str(record.workflow_id)
        # Nobody's from now on, like an instance whose owner let go: a worker takes it.
        self.store.release_run(envelope.correlation_id, token, now=self.clock.now())
        if isinstance(self.store, WorkQueue):
            self.store.announce(self.name)
        return envelope.correlation_id

    def serve(
        self,
        *,
        workers: int = 1,
        poll: float = 1.0,
        stop: threading.Event | None = None,
        max_recoveries: int = 5,
        on_problem: Problem | None = None,
    ) -> None:
        """Deliver this choreography's instances that owe work, whichever process started
        them, until `stop` is set: `workers` loops, this thread and `workers - 1` more.

        Each loop claims one instance at a time (its lease and fencing token) and delivers
        what it owes, each handling committing its inbox mark, outputs and record together,
        so a participant's action runs once per message across all processes. On a store
        that can (PostgreSQL, SQLite), it claims the oldest instance with work (PostgreSQL:
        `FOR UPDATE SKIP LOCKED`); idle, it fires due timers, takes over dead owners'
        instances and sleeps until an announcement or `poll` seconds; on others it polls
        `recover()`. The same loop as `Orchestrator.serve()`.
        """
        if self._has_async and loop_running():
            raise UsageError(
                "this choreography has async actions and serve() was called inside a running "
                "event loop; call it outside the loop (or from a worker thread)"
            )
        serve(
            self, workers=workers, poll=poll, stop=stop, max_recoveries=max_recoveries,
            on_problem=on_problem,
        )  # fmt: skip

    def result(self, correlation_id: str, *, timeout: float | None = None) -> ProcessView:
        """Wait (in real time) until instance `correlation_id` finished or parked, wherever
        it runs. `WorkflowNotFound` for an unknown id; `WorkflowBusy` if it is still going
        after `timeout` seconds (None: as long as it takes)."""
        wait_for_result(self, correlation_id, timeout)
        return self.monitor.get(correlation_id)

    def _serve_next(
        self, queue: WorkQueue, max_recoveries: int, on_problem: Problem | None
    ) -> bool:
        return self._recovery.serve_next(queue, max_recoveries, on_problem)

    def _record(self, correlation_id: str) -> RunRecord:
        record = self.store.get_run(correlation_id)
        if record is None or record.flow != self.name:
            raise WorkflowNotFound(
                f"no flow instance {correlation_id!r} of {self.name!r} in {self.store!r}",
                workflow_id=correlation_id,
            )
        return record  # type: ignore[no-any-return]

    # -- operators ------------------------------------------------------------------------

    def retry(self, correlation_id: str) -> ProcessView:
        """Go on with an instance a human had to look at, to its end (see
        `Orchestrator.retry`): a PARKED one resumes where it stopped, a step that failed
        after the pivot running again under its key; a COMPENSATION_FAILED one tries the
        failed undo again and goes on undoing."""
        return self._operators.retry(correlation_id)

    def cancel(self, correlation_id: str) -> ProcessView:
        """Stop an instance that has not finished (or is parked): undo what it did, end
        CANCELLED. One this process is driving stops at its next step boundary; one another
        live process drives is left a durable cancel request, carried out there at its next
        step boundary (or by whoever recovers it). Past its pivot (the point of no return)
        nothing can be undone: `UsageError`."""
        return self._operators.cancel(correlation_id)

    def resume_due(self) -> list[ProcessView]:
        """Fire the timers that are due on this choreography's clock (see
        `Orchestrator.resume_due`); return the instances moved, as they stand after."""
        return self._operators.resume_due()

    def check_deadlines(self) -> list[str]:
        """Fail the instances whose produced inputs were not delivered within `join_timeout`."""
        return self._recovery.check_deadlines(self.join_timeout)

    def processes(self) -> list[ProcessView]:
        """Every instance the store keeps: running ones first, then finished ones."""
        return self.monitor.all()

    def __repr__(self) -> str:
        return (
            f"<Choreography {self.name!r} {len(self.graph.nodes)} actions, "
            f"{len(self.instances)} running>"
        )
