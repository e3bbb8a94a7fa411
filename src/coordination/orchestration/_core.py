"""The decision core of a run: what to do next, and what happened.

Like tenacity's `BaseRetrying.iter()`, nothing here does I/O or waits: `RunState.next()`
answers "run this group / undo this / done" and records each outcome (the attempts of one
step are `coordination._attempts.Attempts`, shared with the choreography). The sync and
async drivers only carry the answers out, so the saga logic exists once.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from coordination._attempts import Attempts, describe
from coordination._clock import Clock
from coordination._status import WorkflowStatus
from coordination.errors import CompensationFailed, StepFailed
from coordination.orchestration._flow import CompiledStep, FlowDefinition
from coordination.orchestration._lifecycle import check_move
from coordination.stores._records import RunRecord, StepOutcome, StepRecord
from coordination.stores._store import Store

__all__ = ["RunState", "Undo", "late_undo"]

_STEP_COMPLETED = StepOutcome.COMPLETED
# NamedTuple's generated __new__ is a Python function; the tuple constructor is not.
_new_step_record = functools.partial(tuple.__new__, StepRecord)
_RUNNING = WorkflowStatus.RUNNING
_COMPENSATING = WorkflowStatus.COMPENSATING


@dataclass(frozen=True, slots=True)
class Undo:
    """One compensation to run: the step it undoes and the message it receives."""

    step: CompiledStep
    message: Any
    #: Which late attempt's result this undoes (None: the step's own output or input).
    late_attempt: int | None = None
    #: How many earlier tries of this undo failed for good (an operator retried it).
    retry: int = 0

    @property
    def key(self) -> str:
        """The record key: one record per undo try, so a retried undo gets its own."""
        if self.late_attempt is not None:
            return f"{self.step.key}:late{self.late_attempt}:undo"
        if self.retry:
            return f"{self.step.key}:undo:retry{self.retry}"
        return f"{self.step.key}:undo"


class RunState:
    """One run in progress: which group is next, what completed, what must be undone."""

    __slots__ = (
        "_last",
        "cancelling",
        "clock",
        "compensation_error",
        "failure",
        "flow",
        "group",
        "late",
        "lock",
        "pending",
        "record",
        "recorded",
        "settled",
        "status",
        "store",
        "undo_queue",
        "undo_retries",
        "undone_steps",
        "values",
        "workflow_id",
    )

    def __init__(self, flow: FlowDefinition, store: Store, clock: Clock, record: RunRecord) -> None:
        self.flow = flow
        self.store = store
        self.clock = clock
        self.record = record
        self.workflow_id = record.workflow_id
        self.status = record.status
        self.values: list[Any] = [None] * len(flow.slot_types)
        self.values[0] = record.start
        self.group = 0
        #: (step index, outputs or None) in the order steps settled: the saga's undo order.
        self.settled: list[tuple[CompiledStep, Any, bool]] = []
        self.failure: StepFailed | None = None
        self.compensation_error: CompensationFailed | None = None
        self.undo_queue: list[Undo] = []
        #: Late results of timed-out attempts, per step index, held until the step settles.
        self.late: dict[int, list[tuple[int, Any]]] = {}
        self.lock = threading.Lock()
        #: The flow's last step when it runs alone and untimed: its record goes with the end.
        last_group = flow.groups[-1]
        self._last = (
            last_group[0] if len(last_group) == 1 and last_group[0].step.timeout is None else None
        )
        self.pending: StepRecord | None = None
        #: Keys of the step records already in the store (a resumed run never re-runs them).
        self.recorded: frozenset[str] = frozenset()
        #: Steps whose undo is recorded as done, and how often each one's undo failed.
        self.undone_steps: set[str] = set()
        self.undo_retries: dict[str, int] = {}
        #: An operator cancelled the run: undo everything, then end CANCELLED.
        self.cancelling = False
        if record.has_any_step():
            self._replay()

    def _replay(self) -> None:
        """Rebuild where an interrupted run stood from its records, to resume it.

        Completed steps give back their outputs, failed ones the failure; undos already
        recorded are not run again. A step that started but was not recorded runs again
        under the same idempotency key, so participants can tell it is a repeat.
        """
        by_key = {compiled.key: compiled for compiled in self.flow.steps}
        recorded: set[str] = set()
        for step in self.record.steps:
            recorded.add(step.key)
            compiled = by_key.get(step.key)
            if compiled is None:
                base, undo, _ = step.key.partition(":undo")
                if undo and ":late" not in base:
                    if step.outcome is StepOutcome.COMPENSATED:
                        self.undone_steps.add(base)
                    elif step.outcome is StepOutcome.COMPENSATION_FAILED:
                        self.undo_retries[base] = self.undo_retries.get(base, 0) + 1
                continue
            if step.outcome is StepOutcome.COMPLETED:
                slots = compiled.output_slots
                if len(slots) == 1:
                    self.values[slots[0]] = step.output
                else:
                    for slot, value in zip(slots, step.output or (), strict=True):
                        self.values[slot] = value
                self.settled.append((compiled, step.output, True))
            elif step.outcome is StepOutcome.FAILED:
                self.settled.append((compiled, None, False))
                if self.failure is None:
                    self.failure = StepFailed(
                        f"step {compiled.key} failed after {step.attempts} attempt(s): "
                        f"{step.error}",
                        step=compiled.key,
                        attempts=step.attempts,
                    )
        self.recorded = frozenset(recorded)
        settled = {compiled.key for compiled, _, _ in self.settled}
        while self.group < len(self.flow.groups) and all(
            member.key in settled for member in self.flow.groups[self.group]
        ):
            self.group += 1
        if self.status is _COMPENSATING:
            self._queue_undos()

    # -- deciding -------------------------------------------------------------------------

    def next(self) -> tuple[CompiledStep, ...] | Undo | None:
        """The next group of steps to run, the next undo, or None when the run is over."""
        if self.status is _RUNNING:
            if self.failure is None and not self.cancelling:
                if self.group < len(self.flow.groups):
                    group = self.flow.groups[self.group]
                    self.group += 1
                    if self.recorded:  # resumed: run only the branches not recorded yet
                        group = tuple(m for m in group if m.key not in self.recorded)
                        if not group:
                            return self.next()
                    return group
                self._finish(WorkflowStatus.COMPLETED)
                return None
            self._begin_compensation()
        if self.status is _COMPENSATING:
            if self.undo_queue:
                return self.undo_queue.pop(0)
            self._finish(
                WorkflowStatus.CANCELLED if self.cancelling else WorkflowStatus.COMPENSATED
            )
        return None

    def inputs(self, compiled: CompiledStep) -> list[Any]:
        values = self.values
        return [values[slot] for slot in compiled.input_slots]

    # -- recording ------------------------------------------------------------------------

    def completed(self, compiled: CompiledStep, output: Any, attempts: Attempts) -> None:
        """Record a completed step: its outputs become inputs of later groups."""
        slots = compiled.output_slots
        record = _new_step_record(
            (compiled.key, _STEP_COMPLETED, attempts.attempt, output, None, tuple(attempts.rows))
        )
        with self.lock:
            if compiled is self._last:
                # The last step's record is written with the run's end: one commit less,
                # and the same guarantee (nothing runs between the two).
                self.pending = record
            else:
                self.store.append_step(self.workflow_id, record, now=attempts.ended_at)
            if len(slots) == 1:
                self.values[slots[0]] = output
            elif slots:
                for slot, value in zip(slots, output, strict=True):
                    self.values[slot] = value
            self.settled.append((compiled, output, True))

    def failed(self, compiled: CompiledStep, error: BaseException, attempts: Attempts) -> None:
        """Record a step that failed after its attempts; the run will compensate."""
        text = describe(error)
        record = StepRecord(
            compiled.key,
            StepOutcome.FAILED,
            attempts.attempt,
            None,
            text,
            tuple(attempts.rows),
        )
        with self.lock:
            first = self.failure is None
            # The first failure also marks the run COMPENSATING in the same write.
            self.store.append_step(
                self.workflow_id,
                record,
                now=self.clock.now(),
                status=_COMPENSATING if first else None,
            )
            self.settled.append((compiled, None, False))
            if first:
                failure = StepFailed(
                    f"step {compiled.key} failed after {attempts.attempt} attempt(s): {text}",
                    step=compiled.key,
                    attempts=attempts.attempt,
                )
                failure.__cause__ = error
                self.failure = failure

    def hold_late(self, compiled: CompiledStep, attempt: int, output: Any) -> None:
        """Keep a late result until its step settles (under the run's lock)."""
        self.late.setdefault(compiled.index, []).append((attempt, output))

    def _begin_compensation(self) -> None:
        self._move(_COMPENSATING)
        self._queue_undos()

    def _queue_undos(self) -> None:
        queue: list[Undo] = []
        for compiled, output, completed in reversed(self.settled):
            if compiled.undo_output_member is not None and not completed:
                # Late results of a step that succeeded are the same effect as its live
                # result: they are left alone, and only the live result is undone.
                for attempt, late_output in self.late.get(compiled.index, ()):
                    undo = late_undo(compiled, late_output, attempt, self.values)
                    if undo is not None:
                        queue.append(undo)
            if compiled.compensation is None:
                continue
            if compiled.undo_output_member is not None:
                if completed:
                    message = (
                        output[compiled.undo_output_member]
                        if compiled.signature.returns_tuple
                        else output
                    )
                    queue.append(
                        Undo(compiled, message, None, self.undo_retries.get(compiled.key, 0))
                    )
            else:
                assert compiled.undo_input_slot is not None
                message = self.values[compiled.undo_input_slot]
                queue.append(Undo(compiled, message, None, self.undo_retries.get(compiled.key, 0)))
        if self.recorded:  # resumed: undos already recorded (or done) are not run again
            queue = [
                undo
                for undo in queue
                if undo.key not in self.recorded
                and (undo.late_attempt is not None or undo.step.key not in self.undone_steps)
            ]
        self.undo_queue = queue

    def undone(self, undo: Undo, output: Any, attempts: Attempts) -> None:
        """Record a compensation that succeeded (its output is kept with the record)."""
        record = StepRecord(
            undo.key,
            StepOutcome.COMPENSATED,
            attempts.attempt,
            output,
            None,
            tuple(attempts.rows),
        )
        self.append(record)

    def append(self, record: StepRecord) -> None:
        """Append one record to the run, under the run's lock."""
        with self.lock:
            self.store.append_step(self.workflow_id, record, now=self.clock.now())

    def undo_failed(self, undo: Undo, error: BaseException, attempts: Attempts) -> None:
        """Record a failed compensation; stop undoing (never undo a cause before its effect)."""
        remaining = [undo.step.key, *(left.step.key for left in self.undo_queue)]
        text = describe(error)
        record = StepRecord(
            undo.key,
            StepOutcome.COMPENSATION_FAILED,
            attempts.attempt,
            None,
            text,
            tuple(attempts.rows),
        )
        compensation = undo.step.compensation
        assert compensation is not None
        failure = CompensationFailed(
            f"compensation {compensation.qualname} of {undo.step.key} failed after "
            f"{attempts.attempt} attempt(s): {text}; still applied: {', '.join(remaining)}",
            step=undo.step.key,
            compensation=compensation.qualname,
            attempts=attempts.attempt,
        )
        failure.__cause__ = error
        with self.lock:
            self.store.append_step(self.workflow_id, record, now=self.clock.now())
            self.compensation_error = failure
            self.undo_queue = []
        self._finish(WorkflowStatus.COMPENSATION_FAILED)

    # -- finishing ------------------------------------------------------------------------

    def _move(self, status: WorkflowStatus) -> None:
        check_move(self.status, status)
        self.status = status

    def _finish(self, status: WorkflowStatus) -> None:
        output = None
        if status is WorkflowStatus.COMPLETED:
            last = self.flow.groups[-1]
            if len(last) == 1:
                output = self._output_of(last[0])
            else:
                output = tuple(self._output_of(member) for member in last)
        with self.lock:
            if status is WorkflowStatus.COMPENSATED and self.compensation_error is not None:
                status = WorkflowStatus.COMPENSATION_FAILED  # a late undo failed meanwhile
            self._move(status)
            pending, self.pending = self.pending, None
            self.store.finish_run(
                self.workflow_id,
                status,
                now=self.clock.now(),
                output=output,
                error=self.failure,
                compensation_error=self.compensation_error,
                last_step=pending,
            )

    def late_undo_failed(self, error: CompensationFailed) -> None:
        """A late result's undo failed: the run is (or will end) COMPENSATION_FAILED."""
        with self.lock:
            if self.compensation_error is None:
                self.compensation_error = error
            if not self.status.finished:
                return  # the saga is still running; _finish() will see the error
            if self.status is WorkflowStatus.COMPENSATION_FAILED:
                return
            self._move(WorkflowStatus.COMPENSATION_FAILED)
            self.store.finish_run(
                self.workflow_id,
                self.status,
                now=self.clock.now(),
                error=self.failure,
                compensation_error=self.compensation_error,
            )

    def _output_of(self, compiled: CompiledStep) -> Any:
        slots = compiled.output_slots
        if not slots:
            return None
        if compiled.signature.returns_tuple:
            return tuple(self.values[slot] for slot in slots)
        return self.values[slots[0]]


def late_undo(compiled: CompiledStep, output: Any, attempt: int, values: list[Any]) -> Undo | None:
    """The undo owed for a late result of a failed step, or None when nothing undoes it.

    An output-typed compensation receives the late output; an input-typed one runs again
    for that attempt, since its effect landed after all.
    """
    if compiled.compensation is None:
        return None
    if compiled.undo_output_member is not None:
        member = compiled.undo_output_member
        message = output[member] if compiled.signature.returns_tuple else output
        return Undo(compiled, message, attempt)
    assert compiled.undo_input_slot is not None
    return Undo(compiled, values[compiled.undo_input_slot], attempt)
