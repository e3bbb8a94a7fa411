"""Going on with a choreography's instances after a crash or an interruption.

The engine's recovery claims what owes work (`coordination.engine.recover`); here a claimed
instance gets its saga back from its records (message ids derived again from the event log's
start) and its inputs delivered again: the actions of the open generation that never
settled run again under their keys, a delivery counted past `max_deliveries` is set aside
as a dead letter (the instance is PARKED), and undos owed go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordination._clock import Clock
from coordination._journal import EntryKind, row
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._events import HandlerFailed
from coordination.choreography._instances import Binding, Instance, Instances
from coordination.choreography._monitor import ProcessView, view_of
from coordination.choreography._reactor import Reactor
from coordination.engine import (
    Observer,
    PlannedAction,
    Problem,
    check_shape,
    note,
    note_takeover,
    recover,
    resume_next,
    take_over,
)
from coordination.errors import FlowChanged, JoinTimeout, LeaseLost, StoreError
from coordination.stores._records import RunRecord, StepOutcome
from coordination.stores._store import WorkQueue

__all__ = ["Recovery"]


def _undelivered(record: RunRecord, events: list[Envelope[Message]]) -> bool:
    """Whether nothing of an instance was delivered yet: its start message is all its log
    holds and nothing but takeover notes is recorded (a submitted instance, or one whose
    first delivery never committed)."""
    return (
        record.status is WorkflowStatus.RUNNING
        and len(events) == 1
        and all(step.outcome is StepOutcome.NOTED for step in record.steps)
    )


OpenInstance = Callable[[RunRecord, int, Binding, "str | None"], Instance]


class Recovery:
    """Resumes claimed instances and delivers what they were owed."""

    def __init__(
        self,
        *,
        bus: EventBus,
        store: Any,
        instances: Instances,
        reactor: Reactor,
        clock: Clock,
        owner: str,
        open_instance: OpenInstance,
        max_deliveries: int,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self.bus = bus
        self.store = store
        self.instances = instances
        self.reactor = reactor
        self.clock = clock
        self.owner = owner
        self.open_instance = open_instance
        self.max_deliveries = max_deliveries
        #: The choreography's observers: they see each takeover's journal entry.
        self.observers = observers

    def recover(self, max_recoveries: int, on_problem: Problem | None) -> list[ProcessView]:
        check, resume, parked = self._takeover(deliver_start=False)

        # A delivery that keeps killing its process is set aside by its own count (naming the
        # message and the action); the crash-loop park stays the backstop for what no
        # delivery counts (an undo that kills its process), so it waits one recovery longer.
        return recover(
            self.store,
            self.instances.name,
            self.owner,
            self.clock,
            max_recoveries=max(max_recoveries, self.max_deliveries + 1),
            resume=resume,
            parked=parked,
            check=check,
            on_problem=on_problem,
            observers=self.observers,
        )

    def serve_next(self, queue: WorkQueue, max_recoveries: int, on_problem: Problem | None) -> bool:
        """Claim the next instance of this choreography with work owed and deliver it; False
        if there was none. One never delivered (submitted) gets its start message published
        here, free-form subscribers of this process included, as `publish()` would have."""
        check, resume, parked = self._takeover(deliver_start=True)
        return resume_next(
            queue, self.store, self.instances.name, self.owner, self.clock,
            max_recoveries=max(max_recoveries, self.max_deliveries + 1), resume=resume,
            parked=parked, check=check, on_problem=on_problem, observers=self.observers,
        )  # fmt: skip

    def _takeover(
        self, *, deliver_start: bool
    ) -> tuple[
        Callable[[RunRecord, int], None],
        Callable[[RunRecord, int], ProcessView],
        Callable[[RunRecord], ProcessView],
    ]:
        """What the engine's takeover calls: check (read before anything is written),
        resume (deliver what is owed), parked (the view of one parked instead)."""
        opening: dict[str, tuple[Binding, list[Envelope[Message]]]] = {}

        def check(record: RunRecord, token: int) -> None:
            opening[record.workflow_id] = self._opening_log(record, token)

        def resume(record: RunRecord, token: int) -> ProcessView:
            binding, events = opening.pop(record.workflow_id)
            start = events[0] if events else None
            instance = self.open_instance(
                record, token, binding, start.message_id if start else None
            )
            if deliver_start and start is not None and _undelivered(record, events):
                try:
                    self.bus.publish(start)
                except BaseException:
                    self.reactor.release(instance)  # interrupted: it is owed again
                    raise
            else:
                self.redeliver(instance)
            return view_of(instance.saga.record, instance.binding.plan, instance.saga)

        def parked(record: RunRecord) -> ProcessView:
            binding = self.instances.binding_for(type(record.start))
            return view_of(record, binding.plan if binding else None, None)

        return check, resume, parked

    def resumed(self, correlation_id: str, token: int, *, was: str | None) -> Instance:
        """The instance of a claimed correlation, journaled as taken over."""
        record = self.store.get_run(correlation_id)
        if record is None:
            raise StoreError(f"flow instance {correlation_id!r} vanished while resuming it")
        binding, start_id = self._opening(record, token)
        note_takeover(self.store, record, token)
        instance = self.open_instance(record, token, binding, start_id)
        take_over(
            self.store, instance.saga.record, token, self.clock, was=was,
            observers=self.observers,
        )  # fmt: skip
        return instance

    def _opening(self, record: RunRecord, token: int) -> tuple[Binding, str | None]:
        """What resuming a claimed instance needs, read before anything is written to it: its
        binding and its start message's id (see `_opening_log`)."""
        binding, events = self._opening_log(record, token)
        return binding, events[0].message_id if events else None

    def _opening_log(
        self, record: RunRecord, token: int
    ) -> tuple[Binding, list[Envelope[Message]]]:
        """Its binding and its event log (the start message first). `FlowChanged`
        (released) if this choreography's actions cannot resume it; `StoreError` if its
        event log cannot be read."""
        binding = self.instances.binding_for(type(record.start))
        if binding is None:
            self.store.release_run(record.workflow_id, token, now=self.clock.now())
            raise FlowChanged(
                f"flow instance {record.workflow_id!r} was started by "
                f"{type(record.start).__name__}, which starts no flow of this choreography; "
                f"resume it with the participants that started it",
                workflow_id=record.workflow_id,
            )
        check_shape(self.store, record, token, binding.plan, self.clock.now())
        return binding, self.store.events_of(record.workflow_id)

    # -- delivering again -------------------------------------------------------------------

    def redeliver(self, instance: Instance) -> None:
        """Deliver again what the open generation had not handled, in a cascade of its own."""
        self.bus.call_later(0.0, lambda: self._redeliver(instance))

    async def redeliver_async(self, instance: Instance) -> None:
        await self.bus.call_later_async(0.0, lambda: self._redeliver(instance))

    def _redeliver(self, instance: Instance) -> None:
        saga = instance.saga
        if saga.finished:
            for undo in saga.owed_after_end():  # late undos a crash left owed
                owed = self.reactor.undo_run(instance, undo)
                self.bus.call_later(0.0, lambda r=owed: self.reactor.attempt(instance, r))  # type: ignore[misc]
            self.reactor.release(instance)
            return

        def admit(planned: PlannedAction) -> bool:
            """Count this delivery; past `max_deliveries`, set it aside and park."""
            message_id = saga.progress.cause(planned) or ""  # an item's own, of a fan-out
            count = self.store.count_delivery(saga.workflow_id, saga.token, message_id, planned.key)
            if count <= self.max_deliveries:
                return True
            reason = (
                f"{message_id} was delivered to {planned.key} {count - 1} times without being "
                f"handled: set aside as a dead letter"
            )
            self.store.dead_letter(saga.workflow_id, saga.token, message_id, planned.key, reason)
            saga.park(f"{planned.key}: {reason}")
            self.reactor.release(instance)
            return False

        try:
            self.reactor.advance(instance, admit)
        except (LeaseLost, StoreError):
            self.reactor.release(instance)
            raise

    # -- deadlines and subscribers' failures ------------------------------------------------

    def check_deadlines(self, join_timeout: float) -> list[str]:
        failed: list[str] = []
        now = self.clock.monotonic()
        for instance in self.instances.active():
            saga = instance.saga
            if now - saga.opened_at <= join_timeout:
                continue
            for planned, missing in saga.undelivered():
                if not missing:
                    continue
                names = ", ".join(planned.signature.inputs[i].__name__ for i in missing)
                error = JoinTimeout(
                    f"{planned.key} waited {join_timeout:g}s for {names} of correlation "
                    f"{saga.workflow_id}"
                )
                if saga.refuse(planned, error, "join timed out"):
                    failed.append(saga.workflow_id)
            if saga.workflow_id in failed:
                self.bus.call_later(0.0, lambda i=instance: self.reactor.advance(i))  # type: ignore[misc]
        return list(dict.fromkeys(failed))

    def on_handler_failed(self, failure: HandlerFailed) -> None:
        """Journal a free-form subscriber's failure with its flow (which goes on regardless)."""
        if failure.handler.startswith("coordination.choreography"):
            return  # the reactor's own handlers journal their actions themselves
        entry = row(
            EntryKind.FAILED,
            "subscriber",
            failure.handler,
            failure.correlation_id,
            causation_id=failure.message_id,
            attempt=1,
            at=self.clock.now(),
            error=failure.error,
            detail=f"a subscriber failed on {failure.message_type}; the flow goes on",
        )
        key = f"subscriber:{failure.message_id}:{failure.handler}"
        try:
            instance = self.instances.get(failure.correlation_id)
            if instance is not None:
                instance.saga.note(key, entry)
                return
            # Often the instance has ended by then (the failure is delivered behind what
            # the flow published): journal it into the stored record.
            record = self.store.get_run(failure.correlation_id)
            if record is not None and record.flow == self.instances.name:
                note(self.store, record, record.token, key, entry, self.clock.now())
        except (LeaseLost, StoreError):
            pass  # journaling a subscriber's failure never stops the flow
