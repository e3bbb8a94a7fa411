"""Where an interrupted flow instance stood, rebuilt from its records to go on with it.

A saga made for a stored instance (resumed after a crash, claimed from another owner,
woken from a wait) replays its step records into a fresh `Progress`: settled actions give
back their outputs (a choreography's message ids are derived again), undos recorded as
done are not run again, and an action of the open generation with no record runs again
under the same idempotency key. Replaying reads records only: it writes nothing, so a saga
that is refused its first write has changed nothing stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from coordination._status import WorkflowStatus
from coordination.engine._plan import FlowPlan, PlannedAction, PlannedWait
from coordination.engine._progress import Progress
from coordination.engine._undo import UndoBook, undo_progress
from coordination.errors import StepFailed
from coordination.stores._records import RunRecord, StepOutcome

if TYPE_CHECKING:
    from coordination._messages import Message
    from coordination.engine._publishing import Publishing

__all__ = ["PARKED", "Replayed", "replay", "step_failed"]

#: The key of an action's failure after the pivot: `Interface.action:parked<n>`.
PARKED = ":parked"


class Replayed(NamedTuple):
    """What replaying found beside the forward state it rebuilt into `Progress`."""

    #: The first failure (None: nothing failed).
    failure: StepFailed | None
    undos: UndoBook
    #: The generation open when the instance was resumed (its actions may have been in
    #: flight: their attempt numbers continue).
    resumed: int
    #: Undoing with no failure: an operator cancelled it.
    cancelling: bool


def replay(
    plan: FlowPlan, record: RunRecord, progress: Progress, publishing: Publishing | None
) -> Replayed:
    """Replay `record`'s steps into `progress` (fresh); what else the saga needs back."""
    failure: StepFailed | None = None
    recorded = plan.action  # a planned action, or an item of a mapped step
    waits = {planned.key: planned for planned in plan.waits}
    for step in record.steps:
        action = recorded(step.key)
        if action is None:
            arrived = waits.get(step.key)
            if arrived is None:
                continue
            if step.outcome is StepOutcome.SKIPPED:
                progress.passed = progress.passed | {arrived.key}
            elif step.outcome is StepOutcome.FAILED:  # timed out
                if failure is None:
                    failure = StepFailed(
                        f"{arrived.wait!r} failed: {step.error}", step=step.key, attempts=0
                    )
                progress.failing = arrived.before - 1
            elif arrived.is_sleep:
                progress.fired = progress.fired | {arrived.key}
            elif step.outcome is StepOutcome.COMPLETED:
                _keep(progress, publishing, arrived, step.output)
            continue
        progress.settle(action, step.outcome, step.output)
        if step.outcome is StepOutcome.COMPLETED and publishing is not None:
            progress.replayed_ids(action, step.output, publishing.outputs)
        if step.outcome is StepOutcome.FAILED and failure is None:
            failure = step_failed(action, step.attempts, step.error or "")
            progress.failing = action.generation
    done, retries, late = undo_progress(plan, record.steps)
    undos = UndoBook(done, retries)
    for action, attempt, output in late:
        if progress.outcomes.get(action.key) is False:
            undos.owe(action, attempt, output)
    for action, error in _parked_notes(plan, record, progress):
        progress.parked = progress.parked | {action.key}
        if failure is None:
            failure = step_failed(action, 0, error)
        progress.failing = action.generation
    progress.advance()
    resumed = progress.generation
    if progress.deliveries is not None:
        progress.deliveries.delivered_what_was_published()
    cancelling = record.status is WorkflowStatus.COMPENSATING and failure is None
    if cancelling:
        progress.failing = progress.last_started()
    progress.taken = set(progress.outcomes) | progress.parked
    return Replayed(failure, undos, resumed, cancelling)


def _parked_notes(
    plan: FlowPlan, record: RunRecord, progress: Progress
) -> list[tuple[PlannedAction, str]]:
    """Actions that failed for good after the pivot and never settled since (an
    operator's retry runs them again): each with the error of its latest failure."""
    latest: dict[str, tuple[PlannedAction, str]] = {}
    outcomes = progress.outcomes
    for step in record.steps:
        if step.outcome is not StepOutcome.NOTED or PARKED not in step.key:
            continue
        action = plan.action(step.key.rpartition(PARKED)[0])
        if action is not None and action.key not in outcomes:
            latest[action.key] = (action, step.error or "")
    return list(latest.values())


def _keep(
    progress: Progress, publishing: Publishing | None, planned: PlannedWait, message: Message
) -> None:
    """An outside message that arrived (its id derived again)."""
    slot = planned.slot_of(message)
    if slot is None:
        return
    progress.values[slot] = message
    if publishing is not None:
        progress.ids[slot] = publishing.arrived(planned, message).message_id


def step_failed(action: PlannedAction, attempts: int, text: str) -> StepFailed:
    """The failure an action's failure after its attempts gives the instance."""
    return StepFailed(
        f"step {action.key} failed after {attempts} attempt(s): {text}",
        step=action.key,
        attempts=attempts,
    )
