"""What an operator, or an outside message, does to a choreography's instances.

`retry()` and `cancel()` follow the engine's operator rules (`coordination.engine`'s
`retry_target`, `cancel_refusal`); an outside message published for an instance is routed
to it like `Orchestrator.send()`: a live instance here takes it at once (kept for its
wait), a WAITING or interrupted one is claimed and carried on from it on this thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordination._clock import Clock
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._instances import Instance, Instances
from coordination.choreography._monitor import ProcessMonitor, ProcessView
from coordination.choreography._outbox import Outbox
from coordination.choreography._reactor import Reactor
from coordination.choreography._recovery import Recovery
from coordination.engine import (
    DueStart,
    FlowPlan,
    cancel_refusal,
    claim_or_busy,
    claim_or_request,
    due_instances,
    loop_running,
    make_start,
    outside_wait,
    reopen,
    retry_target,
    wake,
)
from coordination.errors import UsageError, WorkflowBusy, WorkflowNotFound
from coordination.stores._records import RunRecord

__all__ = ["Operators"]


class Operators:
    """Retry, cancel and outside messages for the instances of one choreography."""

    def __init__(
        self,
        *,
        bus: EventBus,
        store: Any,
        instances: Instances,
        reactor: Reactor,
        recovery: Recovery,
        monitor: ProcessMonitor,
        clock: Clock,
        owner: str,
        name: str,
        has_async: bool,
        start: Callable[[Message, str], object],
    ) -> None:
        self.bus = bus
        self.store = store
        self.instances = instances
        self._reactor = reactor
        self._recovery = recovery
        self.monitor = monitor
        self.clock = clock
        self._owner = owner
        self.name = name
        self._has_async = has_async
        #: Starts an instance with a start message (`publish`): a scheduled next period's.
        self._start = start

    def retry(self, correlation_id: str) -> ProcessView:
        """See `Choreography.retry`."""
        record, _ = self._stored(correlation_id)
        self._check_drivable("retry")
        token = reopen(self.store, record, self._owner, self.clock.now(), retry_target(record))
        instance = self._recovery.resumed(correlation_id, token, was=record.owner)
        instance.saga.retry_forward()
        self._carry_on(instance)
        return self.monitor.get(correlation_id)

    def cancel(self, correlation_id: str) -> ProcessView:
        """See `Choreography.cancel`."""
        record, plan = self._stored(correlation_id)
        refusal = cancel_refusal(record, plan)
        if refusal is not None:
            raise refusal
        live = self.instances.get(correlation_id)
        if live is not None:
            if not live.saga.request_cancel():
                raise cancel_refusal(live.saga.record, plan) or UsageError(
                    f"flow instance {correlation_id!r} cannot be cancelled now"
                )
            self.bus.call_later(0.0, lambda: self._reactor.advance(live))
            return self.monitor.get(correlation_id)
        self._check_drivable("cancel")
        now = self.clock.now()
        if record.status is WorkflowStatus.PARKED:
            token = reopen(self.store, record, self._owner, now, WorkflowStatus.COMPENSATING)
        else:
            claimed = claim_or_request(self.store, record, self._owner, now, None)
            if claimed is None:  # another live process drives it: it stops there and undoes
                return self.monitor.get(correlation_id)
            token = claimed
        instance = self._recovery.resumed(correlation_id, token, was=record.owner)
        instance.saga.cancel()
        self._carry_on(instance)
        return self.monitor.get(correlation_id)

    def _stored(self, correlation_id: str) -> tuple[RunRecord, FlowPlan]:
        record = self.store.get_run(correlation_id)
        binding = None if record is None else self.instances.binding_for(type(record.start))
        if record is None or record.flow != self.name or binding is None:
            raise WorkflowNotFound(
                f"no flow instance {correlation_id!r} of {self.name!r} in {self.store!r}",
                workflow_id=correlation_id,
            )
        return record, binding.plan

    def _check_drivable(self, method: str) -> None:
        if self._has_async and loop_running():
            raise UsageError(
                f"this choreography has async actions and {method}() was called inside a "
                f"running event loop; call it outside the loop (or from a worker thread)"
            )

    def _carry_on(self, instance: Instance) -> None:
        """Drive a claimed instance on from its records, on this thread."""
        try:
            self._recovery.redeliver(instance)
        except BaseException:
            self._reactor.release(instance)
            raise

    def resume_due(self) -> list[ProcessView]:
        """See `Choreography.resume_due`."""
        self._check_drivable("resume_due")
        moved: list[ProcessView] = []
        plans = {id(b.plan): b.plan for b in self.instances.bindings.values() if b.plan.waits}
        for plan in plans.values():
            for record, due in due_instances(self.store, plan, self.clock.now()):
                correlation_id = record.workflow_id
                try:
                    token = claim_or_busy(self.store, record, self._owner, self.clock.now(), "")
                except WorkflowBusy:
                    continue  # someone else fires it (or its message came meanwhile)
                if isinstance(due, DueStart):  # the next instance of a repeating process
                    begin = self._start
                    if make_start(self.store, record, token, due, self.clock, begin) is not None:
                        moved.append(self.monitor.get(due.workflow_id))
                    continue
                instance = self._recovery.resumed(correlation_id, token, was=record.owner)

                def fire(instance: Instance = instance, planned: Any = due) -> None:
                    wake(instance.saga, planned)
                    self._reactor.advance(instance)

                try:
                    self.bus.call_later(0.0, fire)
                except BaseException:
                    self._reactor.release(instance)
                    raise
                moved.append(self.monitor.get(correlation_id))
        return moved

    # -- outside messages ---------------------------------------------------------------

    def waits_for(self, message: Message) -> bool:
        return isinstance(message, Message) and any(
            binding.plan.wait_for(message) is not None
            for binding in self.instances.bindings.values()
        )

    def _arrival(
        self, message: Message, correlation_id: str | None
    ) -> tuple[Envelope[Message], Instance | None, Any]:
        """Where an outside message goes: its envelope, and the instance to drive (None:
        a live instance here took it, or it is a duplicate) with the wait it is for."""
        if correlation_id is None:
            raise UsageError(
                f"{type(message).__name__} is an outside message: publish it with the "
                f"correlation_id= of the flow instance it is for"
            )
        record, plan = self._stored(correlation_id)
        planned = outside_wait(record, plan, message)
        wanted = plan.wait_for(message)
        assert wanted is not None
        envelope = Outbox(self.bus, correlation_id).arrived(wanted, message)
        if planned is None:
            return envelope, None, None  # a duplicate of one it received: a no-op
        live = self.instances.get(correlation_id)
        if live is not None:
            with live.saga.lock:
                if live.saga.status is WorkflowStatus.RUNNING and not live.saga.lost:
                    live.saga.arrive(planned, message)  # kept for its wait, published
                    return envelope, None, None
        token = claim_or_request(self.store, record, self._owner, self.clock.now(), message)
        if token is None:  # another live process drives it: kept for it, taken there
            return envelope, None, None
        return envelope, self._recovery.resumed(correlation_id, token, was=record.owner), planned

    def send(self, message: Message, correlation_id: str | None) -> Envelope[Message]:
        if self._has_async and loop_running():
            raise UsageError(
                "this choreography has async actions and publish() was called inside a "
                "running event loop; use `await flow.publish_async(...)`"
            )
        envelope, instance, planned = self._arrival(message, correlation_id)
        if instance is not None:
            try:
                self.bus.call_later(0.0, lambda: self._woken(instance, planned, message))
            except BaseException:
                self._reactor.release(instance)
                raise
        return envelope

    async def send_async(self, message: Message, correlation_id: str | None) -> Envelope[Message]:
        envelope, instance, planned = self._arrival(message, correlation_id)
        if instance is not None:
            try:
                await self.bus.call_later_async(
                    0.0, lambda: self._woken(instance, planned, message)
                )
            except BaseException:
                self._reactor.release(instance)
                raise
        return envelope

    def _woken(self, instance: Instance, planned: Any, message: Message) -> None:
        """Inside a cascade: record the arrival (published), then carry on from it."""
        instance.saga.arrive(planned, message)
        self._reactor.advance(instance)
