"""ProcessMonitor: the unseen orchestrator behind a choreography, made visible.

No participant of a choreography knows the whole flow; the engine does. The monitor shows,
for each correlation, what its saga and its stored record say — never by parsing journal
text: which actions ran, which are pending and what a join still waits for, which failed
or were undone, where the instance stands (the status vocabulary of a `WorkflowRun`), and
which instances stalled. Live instances come from this process's registry; finished ones,
of this process or an earlier one, from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coordination._clock import Clock
from coordination._journal import Journal
from coordination._status import WorkflowStatus
from coordination.choreography._instances import Instances
from coordination.engine import FlowPlan, Saga
from coordination.errors import WorkflowNotFound
from coordination.stores._records import RunRecord, StepOutcome, StepRecord

__all__ = ["ProcessMonitor", "ProcessView", "view_of"]


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One flow instance as the engine knows it."""

    correlation_id: str
    status: WorkflowStatus
    start: str  #: the type of the message that started it
    done: tuple[str, ...]  #: actions that completed, in order
    pending: tuple[str, ...]  #: actions of the flow that have not settled (yet)
    #: actions that failed after their retries (past the pivot: parked, to run again)
    failed: tuple[str, ...]
    compensated: tuple[str, ...]  #: actions undone, in the order they were undone
    failure: str | None  #: why it did not complete
    started_at: float
    updated_at: float  #: time of its latest record
    journal: Journal
    #: Actions of the open generation still waiting for inputs: action -> missing types.
    waiting: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Why a PARKED instance waits for a human.
    parked_reason: str | None = None
    steps: tuple[StepRecord, ...] = ()
    #: Actions skipped: their input was not produced (a business outcome took another branch).
    skipped: tuple[str, ...] = ()
    #: The outside message types a WAITING instance waits for (either will do).
    awaiting: tuple[str, ...] = ()

    @property
    def workflow_id(self) -> str:
        """The same id as `correlation_id` (a view of a run reads the same way)."""
        return self.correlation_id

    def stalled(self, now: float, after: float) -> bool:
        """Unfinished with no record for more than `after` seconds."""
        return not self.status.finished and now - self.updated_at > after

    def render(self) -> str:
        """A readable summary followed by the journal."""
        lines = [
            f"{self.correlation_id}: {self.status.name} (started by {self.start})",
            f"  done:        {', '.join(self.done) or '-'}",
            f"  pending:     {', '.join(self.pending) or '-'}",
            f"  failed:      {', '.join(self.failed) or '-'}",
            f"  compensated: {', '.join(self.compensated) or '-'}",
        ]
        if self.skipped:
            lines.append(f"  skipped:     {', '.join(self.skipped)}")
        if self.awaiting:
            lines.append(f"  awaiting:    {' or '.join(self.awaiting)}")
        for action, missing in self.waiting.items():
            lines.append(f"  waiting:     {action} for {', '.join(missing)}")
        if self.failure:
            lines.append(f"  failure:     {self.failure}")
        lines.extend(f"  {entry}" for entry in self.journal)
        return "\n".join(lines)


def view_of(record: RunRecord, plan: FlowPlan | None, saga: Saga | None) -> ProcessView:
    """The view of one instance: from its record, and its live saga when it has one."""
    done: list[str] = []
    skipped: list[str] = []
    parked: list[str] = []  # failed after the pivot, each try; run again by retry()
    failed: list[str] = []
    compensated: list[str] = []
    settled: set[str] = set()
    for step in record.steps:
        action = plan.action(step.key) if plan is not None else None
        if action is not None or (plan is None and ":" not in step.key):
            settled.add(step.key)
            if action is not None and action.item is not None:
                settled.add(action.step.key)  # a mapped step's item: the step has started
            if step.outcome is StepOutcome.COMPLETED:
                done.append(step.key)
            elif step.outcome is StepOutcome.FAILED:
                failed.append(step.key)
            elif step.outcome is StepOutcome.SKIPPED:
                skipped.append(step.key)
        elif step.outcome is StepOutcome.COMPENSATED:
            compensated.append(step.key.split(":", 1)[0])
        elif step.outcome is StepOutcome.NOTED and ":parked" in step.key:
            parked.append(step.key.split(":", 1)[0])
    failed.extend(dict.fromkeys(key for key in parked if key not in settled))
    status = record.status
    awaiting: tuple[str, ...] = ()
    if status is WorkflowStatus.WAITING and plan is not None:
        arrived = {step.key for step in record.steps if step.outcome is StepOutcome.COMPLETED}
        waits = [planned for planned in plan.waits if planned.key not in arrived]
        if waits:
            awaiting = tuple(kind.__name__ for kind in waits[0].types)
    pending: tuple[str, ...] = ()
    if plan is not None and not status.finished:
        pending = tuple(a.key for a in plan.actions if a.key not in settled)
    waiting: dict[str, tuple[str, ...]] = {}
    if saga is not None:
        for key, missing in saga.waiting().items():
            inputs = saga.plan.by_key[key].signature.inputs
            waiting[key] = tuple(inputs[i].__name__ for i in missing)
    error: Any = record.compensation_error or record.error
    if error is None and saga is not None:
        error = saga.compensation_error or saga.failure  # recorded at the end; known now
    return ProcessView(
        correlation_id=record.workflow_id,
        status=status,
        start=type(record.start).__name__,
        done=tuple(done),
        pending=pending,
        failed=tuple(failed),
        compensated=tuple(compensated),
        failure=None if error is None else str(error),
        started_at=record.created_at,
        updated_at=record.updated_at,
        journal=Journal.from_rows(record.journal),
        waiting=waiting,
        parked_reason=record.parked_reason,
        steps=tuple(s for s in record.steps if s.outcome is not StepOutcome.NOTED),
        skipped=tuple(skipped),
        awaiting=awaiting,
    )


class ProcessMonitor:
    """Read the instances of one choreography: live ones here, finished ones from the store."""

    def __init__(self, instances: Instances, store: Any, clock: Clock) -> None:
        self._instances = instances
        self._store = store
        self._clock = clock

    def _plan_for(self, record: RunRecord) -> FlowPlan | None:
        binding = self._instances.binding_for(type(record.start))
        return binding.plan if binding is not None else None

    def get(self, correlation_id: str) -> ProcessView:
        """The instance of `correlation_id`, as the engine knows it now."""
        live = self._instances.get(correlation_id)
        if live is not None:
            with live.saga.lock:
                return view_of(live.saga.record, live.binding.plan, live.saga)
        record = self._store.get_run(correlation_id)
        if record is None or record.flow != self._instances.name:
            raise WorkflowNotFound(
                f"no flow instance {correlation_id!r} of {self._instances.name!r} in "
                f"{self._store!r} (never started, or forgotten after newer ones)",
                workflow_id=correlation_id,
            )
        return view_of(record, self._plan_for(record), None)

    def all(self, status: WorkflowStatus | None = None) -> list[ProcessView]:
        """Every instance kept, running ones first; optionally only those in `status`."""
        views: dict[str, ProcessView] = {}
        for live in self._instances.active():
            with live.saga.lock:
                views[live.saga.workflow_id] = view_of(
                    live.saga.record, live.binding.plan, live.saga
                )
        for record in self._store.list_runs(flow=self._instances.name):
            if record.workflow_id not in views:
                views[record.workflow_id] = view_of(record, self._plan_for(record), None)
        return [view for view in views.values() if status is None or view.status is status]

    def stalled(self, after: float) -> list[ProcessView]:
        """Unfinished instances with no record for more than `after` seconds."""
        now = self._clock.now()
        return [view for view in self.all() if view.stalled(now, after)]
