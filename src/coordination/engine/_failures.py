"""An action's failure, recorded for one saga: what moves an instance to undo, or parks it.

The saga decides what runs (`Saga.next`); this writes how an action failed, through the
saga's recorder and under its lock, for both runners alike:

- an action that failed after its attempts (or a join refused: its inputs never came) is
  recorded FAILED; the first failure moves the instance to COMPENSATING and names the
  generation that runs to its end before the undo starts; late results held for it are
  owed undos, each under its own key;
- past the pivot (the point of no return) nothing is undone: the failure is journaled,
  the action stays unsettled to run again when an operator retries, and the instance
  parks once its generation settled.
"""

from __future__ import annotations

from coordination._journal import Rows
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._attempts import Attempts, describe
from coordination.engine._plan import PlannedAction
from coordination.engine._replay import PARKED, step_failed
from coordination.engine._saga_state import SagaState
from coordination.engine._undo_facts import NOTHING_TO_UNDO, UNDONE
from coordination.stores._records import StepOutcome, StepRecord

__all__ = ["Failures"]

_RUNNING = WorkflowStatus.RUNNING
_COMPENSATING = WorkflowStatus.COMPENSATING


class Failures:
    """Records the failures of one saga's actions (the saga's own state holds them)."""

    __slots__ = ("saga",)

    def __init__(self, saga: SagaState) -> None:
        self.saga = saga

    def failed(self, action: PlannedAction, error: BaseException, attempts: Attempts) -> None:
        """Record an action that failed after its attempts; the instance will compensate."""
        saga = self.saga
        text = describe(error)
        if saga.plan.past_pivot(action) and saga.past_point_of_no_return:
            self._failed_past_pivot(action, error, text, attempts)
            return
        publishing = saga.publishing
        events: tuple[Envelope[Message], ...] = ()
        with saga.lock:
            rows: Rows = tuple(attempts.rows)
            handled: tuple[tuple[str, str], ...] = ()
            if publishing is not None:
                causes = saga.progress.causes(action)
                events = publishing.failure(action, text, attempts.attempt, attempts.causation)
                handled = publishing.handled(action, causes)
                rows = saga.recorder.published(rows, events, action.step.action.participant)
            held = saga.late_held.pop(action.key, []) if saga.late_held else []
            late = saga.recorder.late
            records = (
                StepRecord(action.key, StepOutcome.FAILED, attempts.attempt, None, text, rows),
                *(
                    late(action, n, out, UNDONE if action.undoes(out) else NOTHING_TO_UNDO)
                    for n, out in held
                ),
            )
            self._fail(action, records, error, text, events, handled)
            for attempt, output in held:
                saga.undos.owe(action, attempt, output)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def _failed_past_pivot(
        self, action: PlannedAction, error: BaseException, text: str, attempts: Attempts
    ) -> None:
        """Record an action that failed for good after the pivot: it is never undone (nor is
        anything before it), so it stays unsettled, to run again when an operator retries;
        its failure is journaled, and the instance parks once its generation settled."""
        saga = self.saga
        with saga.lock:
            tries = sum(1 for s in saga.record.steps if s.key.startswith(action.key + PARKED))
            held = saga.late_held.pop(action.key, []) if saga.late_held else []
            late = saga.recorder.late
            records = (
                StepRecord(
                    f"{action.key}{PARKED}{tries + 1}",
                    StepOutcome.NOTED,
                    attempts.attempt,
                    None,
                    text,
                    tuple(attempts.rows),
                ),
                *(late(action, n, out, NOTHING_TO_UNDO) for n, out in held),
            )
            saga.recorder.write(records)
            saga.progress.park(action)
            if saga.failure is None:
                failure = step_failed(action, attempts.attempt, text)
                failure.__cause__ = error
                saga.failure = failure

    def refuse(self, action: PlannedAction, error: BaseException, detail: str) -> bool:
        """Fail an action that never started (a join whose inputs never came); False if it
        started meanwhile."""
        saga = self.saga
        text = describe(error)
        publishing = saga.publishing
        events: tuple[Envelope[Message], ...] = ()
        with saga.lock:
            if action.key in saga.progress.taken or saga.finished or saga.recorder.lost:
                return False
            saga.progress.taken.add(action.key)
            rows = saga.recorder.refusal(action, text, detail)
            if publishing is not None:
                events = publishing.failure(action, text, 0, None)
                rows = saga.recorder.published(rows, events, action.step.action.participant)
            record = StepRecord(action.key, StepOutcome.FAILED, 0, None, text, rows)
            self._fail(action, (record,), error, text, events, ())
        if events:
            assert publishing is not None
            publishing.committed(events)
        return True

    def _fail(
        self,
        action: PlannedAction,
        records: tuple[StepRecord, ...],
        error: BaseException,
        text: str,
        events: tuple[Envelope[Message], ...],
        handled: tuple[tuple[str, str], ...],
    ) -> None:
        """Write an action's failure (the first one moves the instance to COMPENSATING)."""
        saga = self.saga
        moving = saga.record.status is _RUNNING
        saga.recorder.write(
            records, status=_COMPENSATING if moving else None, events=events, handled=handled
        )
        saga.progress.settle(action, StepOutcome.FAILED, None)
        if saga.failure is None:
            failure = step_failed(action, records[0].attempts, text)
            failure.__cause__ = error
            saga.failure = failure
        if saga.progress.failing is None:
            saga.progress.failing = action.generation
