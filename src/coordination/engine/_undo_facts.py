"""The undo facts of one saga: compensations done and failed, late results, what is owed.

The saga decides what runs (`Saga.next`); this writes what came of its undos, through the
saga's recorder and under its lock, for both runners alike:

- a compensation that succeeded is recorded with its output (the last one ends the
  instance COMPENSATED, or CANCELLED after an operator's cancel);
- one that failed for good stops the undo (never undo a cause before its effect) and ends
  the instance COMPENSATION_FAILED, naming what is still applied;
- a late result (a timed-out attempt that returned after all) is held until its action
  settles, then left alone (it succeeded) or undone under its own key, recorded durably
  first so a crash never loses an owed undo;
- an ended instance keeps owing (the store's owed-work index) while an undo of a late
  result, an abandoned attempt or a scheduled start is still outstanding.
"""

from __future__ import annotations

from typing import Any

from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._attempts import Attempts, describe
from coordination.engine._plan import PlannedAction
from coordination.engine._saga_state import SagaState
from coordination.engine._schedules import pending_starts
from coordination.engine._undo import Undo
from coordination.errors import CompensationFailed
from coordination.stores._records import Finish, StepOutcome, StepRecord

__all__ = ["LEFT_ALONE", "NOTHING_TO_UNDO", "UNDONE", "UndoFacts"]

NOTHING_TO_UNDO = "nothing declared to undo it"
LEFT_ALONE = "left alone (the action succeeded)"
UNDONE = "undone (the action failed)"
_UNSETTLED: Any = object()


class UndoFacts:
    """Writes the undo facts of one saga (its own state: the saga's `UndoBook`)."""

    __slots__ = ("saga",)

    def __init__(self, saga: SagaState) -> None:
        self.saga = saga

    def finish(self) -> Finish:
        """How the instance ends once its last undo settled."""
        saga = self.saga
        if saga.undos.error is not None:
            status = WorkflowStatus.COMPENSATION_FAILED  # a late undo failed meanwhile
        else:
            status = WorkflowStatus.CANCELLED if saga.cancelling else WorkflowStatus.COMPENSATED
        return Finish(status, None, saga.failure, saga.undos.error)

    def undone(self, undo: Undo, output: Any, attempts: Attempts) -> None:
        """Record a compensation that succeeded (its output is kept with the record)."""
        saga = self.saga
        publishing = saga.publishing
        events: tuple[Envelope[Message], ...] = ()
        with saga.lock:
            rows = tuple(attempts.rows)
            if publishing is not None:
                events = publishing.undone(undo, output)
                rows = saga.recorder.published(rows, events, undo.action.step.action.participant)
            record = StepRecord(
                undo.key, StepOutcome.COMPENSATED, attempts.attempt, output, None, rows
            )
            if saga.finished:  # a late result's undo, owed after the end
                saga.undos.settled(undo)
                saga.recorder.write((record,), owes=bool(self.still_owing()), events=events)
            else:
                last = saga.undos.settled(undo)
                finish = self.finish() if last else None
                owes = self.still_owing() if finish is not None else None
                saga.recorder.write((record,), finish=finish, owes=owes, events=events)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def undo_failed(self, undo: Undo, error: BaseException, attempts: Attempts) -> None:
        """Record a failed compensation; stop undoing (never undo a cause before its effect)."""
        saga = self.saga
        text = describe(error)
        with saga.lock:
            compensation = undo.action.compensation
            assert compensation is not None
            what = f"a late result of {undo.action.key} (attempt {undo.late})" if undo.late else (
                undo.action.key
            )  # fmt: skip
            failure = CompensationFailed(
                f"compensation {compensation.qualname} of {what} failed after "
                f"{attempts.attempt} attempt(s): {text}; still applied: "
                f"{', '.join(saga.undos.still_applied(undo))}",
                step=undo.action.key,
                compensation=compensation.qualname,
                attempts=attempts.attempt,
            )
            failure.__cause__ = error
            record = StepRecord(
                undo.key,
                StepOutcome.COMPENSATION_FAILED,
                attempts.attempt,
                None,
                text,
                tuple(attempts.rows),
            )
            if saga.undos.error is None:
                saga.undos.error = failure
            if saga.record.status is WorkflowStatus.COMPENSATION_FAILED:
                saga.recorder.write((record,))
            else:
                finish = Finish(
                    WorkflowStatus.COMPENSATION_FAILED, None, saga.failure, saga.undos.error
                )
                saga.recorder.write((record,), finish=finish, owes=False)
            saga.undos.stop()

    def still_owing(self) -> bool | None:
        """True while something may still be owed after the end (an undo of a late result,
        an abandoned attempt whose result may come back, or a scheduled start not made
        yet); None when nothing is."""
        saga = self.saga
        owing = (
            saga.abandoned > 0
            or bool(saga.undos.owed_after_end(saga.plan, saga.inputs))
            or pending_starts(saga.record)
        )
        return True if owing else None

    def _settled_owing(self) -> bool | None:
        """After a late result that owes nothing: an ended instance stops owing once it was
        the last thing outstanding (False clears the owed flag; None leaves it alone)."""
        if self.saga.finished and not self.still_owing():
            return False
        return None

    def owed_after_end(self) -> list[Undo]:
        """Undos of late results still owed once the instance ended (run them, newest first).

        A COMPENSATION_FAILED instance owes them to the operator's `retry()` instead.
        """
        saga = self.saga
        with saga.lock:
            if not saga.finished or saga.record.status is WorkflowStatus.COMPENSATION_FAILED:
                return []
            owed = saga.undos.owed_after_end(saga.plan, saga.inputs)
            if (
                not owed
                and saga.record.owed
                and not saga.abandoned
                and not saga.recorder.lost
                and not pending_starts(saga.record)
            ):
                # It owed only what an abandoned attempt might return, and that attempt died
                # with its process: nothing can come back now, so stop owing.
                saga.recorder.write(owes=False)
            return owed

    def late(
        self,
        action: PlannedAction,
        attempt: int,
        ok: bool,
        value: Any,
        *,
        valid: bool,
        returned: bool = True,
    ) -> Undo | None:
        """A timed-out attempt of `action` returned after all (or failed): decide what it owes.

        Returns an undo for the caller to run now, on its own thread, when the undo is owed
        after the instance ended. `returned`: an abandoned attempt came back (not a late
        result injected with its timeout).
        """
        saga = self.saga
        recorder = saga.recorder
        with saga.lock:
            if returned and saga.abandoned:
                saga.abandoned -= 1
            if recorder.lost:
                return None
            progress = saga.progress
            outcome = progress.outcomes.get(action.key, _UNSETTLED)
            if not ok or not valid:
                error = describe(value) if not ok else (
                    f"OutputTypeError: returned {type(value).__name__}, not its output"
                )  # fmt: skip
                record = recorder.late(action, attempt, None, "nothing to undo", error)
                recorder.write((record,), owes=self._settled_owing())
                return None
            if outcome is _UNSETTLED and action.key not in progress.parked:
                saga.late_held.setdefault(action.key, []).append((attempt, value))
                return None
            # Failed past the pivot (parked, unsettled): nothing after the pivot is undone.
            if outcome is True or not action.undoes(value):
                detail = LEFT_ALONE if outcome is True else NOTHING_TO_UNDO
                recorder.write(
                    (recorder.late(action, attempt, value, detail),), owes=self._settled_owing()
                )
                return None
            undo = Undo(action, action.undo_message(value, saga.inputs(action)), attempt)
            record = recorder.late(action, attempt, value, UNDONE)
            saga.undos.owe(action, attempt, value)
            if saga.finished:
                if saga.record.status is WorkflowStatus.COMPENSATION_FAILED:
                    recorder.write((record,))  # the operator's retry() undoes it with the rest
                    return None
                recorder.write((record,), owes=True)  # durable first: a crash never loses it
                return undo
            recorder.write((record,))
            if saga.undos.planned:
                saga.undos.insert(undo)
            # else: planned with the rest once the failing generation settled
            return None
