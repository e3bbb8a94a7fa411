"""What an operator may do with an instance, decided once for both runners.

`retry()` goes on with an instance a human had to look at (PARKED, or COMPENSATION_FAILED);
`cancel()` stops one that has not finished and undoes what it did. Which statuses allow
which, what an operator is told instead (a `UsageError` saying what to do, never the
lifecycle's internal `InvalidTransition`) and how a stopped instance is claimed back are
the same whether an orchestrator or a choreography runs it.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.engine._plan import FlowPlan, PlannedWait
from coordination.engine._saga import Saga
from coordination.engine._schedules import DueMessage, DueStart, due_message, due_start
from coordination.errors import CoordinationError, UsageError, WorkflowBusy
from coordination.stores._records import RunRecord, StepOutcome
from coordination.stores._store import Store

__all__ = [
    "REQUESTED",
    "Due",
    "DueRequests",
    "cancel_refusal",
    "due_instances",
    "due_timer",
    "due_work",
    "outside_wait",
    "past_pivot",
    "reopen",
    "retry_target",
    "wake",
]

_log = logging.getLogger("coordination.engine")

_S = WorkflowStatus


def past_pivot(record: RunRecord, plan: FlowPlan) -> bool:
    """Whether the instance's pivot completed: past its point of no return."""
    pivot = plan.pivot
    return pivot is not None and any(
        step.key == pivot.key and step.outcome is StepOutcome.COMPLETED for step in record.steps
    )


def retry_target(record: RunRecord) -> WorkflowStatus:
    """The status `retry()` reopens `record` in, or `UsageError` saying what it takes."""
    if record.status is _S.PARKED:
        return _S.RUNNING  # goes on where it stopped (a failed step after the pivot again)
    if record.status is _S.COMPENSATION_FAILED:
        return _S.COMPENSATING  # tries the failed undo again, then goes on undoing
    raise UsageError(
        f"workflow {record.workflow_id!r} is {record.status.name}; retry() takes a PARKED or "
        f"COMPENSATION_FAILED run"
    )


def cancel_refusal(record: RunRecord, plan: FlowPlan) -> UsageError | None:
    """Why `cancel()` must refuse `record` (None: it may be cancelled)."""
    status = record.status
    workflow_id = record.workflow_id
    if status is _S.COMPENSATION_FAILED:
        return UsageError(
            f"workflow {workflow_id!r} is COMPENSATION_FAILED: an undo failed and effects are "
            f"still applied; retry() it to finish undoing"
        )
    if status.finished and status is not _S.PARKED:
        return UsageError(
            f"workflow {workflow_id!r} already finished {status.name}; there is nothing to cancel"
        )
    if status is _S.COMPENSATING:
        return UsageError(f"workflow {workflow_id!r} is already COMPENSATING: it is being undone")
    if past_pivot(record, plan):
        assert plan.pivot is not None
        return UsageError(
            f"workflow {workflow_id!r} is past its point of no return ({plan.pivot.key} "
            f"completed): nothing can be undone; "
            + ("retry() it to go on" if status is _S.PARKED else "let it finish")
        )
    return None


def reopen(store: Store, record: RunRecord, owner: str, now: float, status: WorkflowStatus) -> int:
    """Claim a PARKED or COMPENSATION_FAILED instance back, moving it to `status`."""
    token = store.claim_run(
        record.workflow_id, owner, now=now, reopen=(record.status, status), replacing=record.owner
    )
    if token is None:
        raise WorkflowBusy(
            f"workflow {record.workflow_id!r} changed or is owned by someone else; look at it "
            f"again",
            workflow_id=record.workflow_id,
        )
    return token


def outside_wait(record: RunRecord, plan: FlowPlan, message: Message) -> PlannedWait | None:
    """The wait an outside message for `record` is for; None for a duplicate of one it
    received already (nothing to do: the instance is returned as it is).

    `UsageError`: the flow waits for no such message, a different one came for that wait
    already, or the instance finished before it came (it is never silently dropped).
    """
    planned = plan.wait_for(message)
    if planned is None:
        awaited = ", ".join(k.__name__ for w in plan.waits for k in w.types) or "nothing"
        raise UsageError(
            f"{plan.name} does not wait for {type(message).__name__} (it waits for "
            f"{awaited}); send it a message one of its wait(...) steps names"
        )
    for step in record.steps:
        if step.key == planned.key and step.outcome is StepOutcome.SKIPPED:
            raise UsageError(
                f"workflow {record.workflow_id!r} skipped {planned.wait!r}: no step after it "
                f"could use {type(message).__name__} any more (another outcome was taken)"
            )
        if step.key == planned.key and step.outcome is StepOutcome.FAILED:
            raise UsageError(
                f"workflow {record.workflow_id!r} stopped waiting for "
                f"{type(message).__name__}: {step.error}"
            )
        if step.key == planned.key and step.outcome is StepOutcome.COMPLETED:
            if step.output == message:
                return None  # a duplicate (a webhook delivered twice): a no-op
            raise UsageError(
                f"workflow {record.workflow_id!r} already received {step.output!r} for "
                f"{planned.wait!r}; a wait takes one message"
            )
    if record.status.finished:
        raise UsageError(
            f"workflow {record.workflow_id!r} finished {record.status.name} before "
            f"{type(message).__name__} came; nothing waits for it any more"
        )
    return planned


def due_timer(record: RunRecord, plan: FlowPlan, now: float) -> PlannedWait | None:
    """The wait or sleep of a WAITING, let-go instance whose timer is due at `now`.

    The timer is durable with the instance: its due time is the suspension's journal entry
    (when it was reached, plus how long it waits).
    """
    found = _due_timer(record, plan, now)
    return None if found is None else found[0]


def _due_timer(record: RunRecord, plan: FlowPlan, now: float) -> tuple[PlannedWait, float] | None:
    if record.status is not _S.WAITING or record.owner is not None:
        return None
    settled = {step.key for step in record.steps if step.outcome is not StepOutcome.NOTED}
    for planned in plan.waits:
        if planned.key in settled:
            continue
        note = next((s for s in record.steps if s.key == f"{planned.key}:waiting"), None)
        if note is None or not note.entries:
            return None  # not reached yet
        entry = note.entries[0]
        if entry.duration is None or entry.at + entry.duration > now:
            return None
        return planned, entry.at + entry.duration
    return None


class DueRequests:
    """Requests wait for an instance nobody holds (its owner let go to wait, then died
    before it looked for them): resuming it carries them out at its first boundary."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUESTED"


REQUESTED = DueRequests()

#: What came due for an instance: a timer (a sleep's end, a wait's timeout), a message it
#: scheduled for itself, a start it scheduled for the next instance, or requests left for
#: it.
Due = PlannedWait | DueMessage | DueStart | DueRequests


def due_work(record: RunRecord, plan: FlowPlan, now: float) -> Due | None:
    """What is due for `record` at `now` (the earliest of its timer and the messages it
    scheduled for itself first: the instance wakes for it), or None."""
    if record.status is _S.WAITING and record.owner is None:
        timer = _due_timer(record, plan, now)
        message = due_message(record, plan, now)
        if timer is not None and (message is None or timer[1] <= message[1]):
            return timer[0]
        if message is not None:
            return message[0]
    return due_start(record, now)


def due_instances(store: Store, plan: FlowPlan, now: float) -> list[tuple[RunRecord, Due]]:
    """The instances of `plan`'s flow with work due at `now` (see `due_work`), read from
    the owed-work index: a waiting instance is in it, and so is one, finished or not, that
    scheduled a start not made yet. A waiting instance nobody holds with requests left for
    it is due too (`REQUESTED`)."""
    due: list[tuple[RunRecord, Due]] = []
    for owed in store.owed_runs(plan.name):
        if owed.status is _S.WAITING:
            if owed.owner is not None:
                continue
        elif not owed.status.finished:
            continue  # running, or interrupted: recovery carries it to a wait or an end
        try:
            record = store.get_run(owed.workflow_id)
        except (CoordinationError, ValidationError) as error:
            # An unreadable row keeps only its own timers from firing, never the others'.
            _log.warning("resume_due(): left %s alone: %s", owed.workflow_id, error)
            continue
        if record is None:
            continue
        work = due_work(record, plan, now)
        if work is None and record.status is _S.WAITING and record.owner is None:
            work = _requested(store, record)
        if work is not None:
            due.append((record, work))
    return due


def wake(saga: Saga, due: PlannedWait | DueMessage | DueRequests) -> None:
    """Hand a claimed instance what came due for it (a start is made, not handed): a
    scheduled message arrives as if sent, a timer fires, and requests need nothing here (a
    claimed instance carries them out at its first boundary)."""
    if isinstance(due, DueMessage):
        saga.arrive(due.planned, due.message)
    elif isinstance(due, PlannedWait):
        saga.fire(due)


def _requested(store: Store, record: RunRecord) -> DueRequests | None:
    """`REQUESTED` if requests were left for waiting `record` (a cancel, a message that
    came while its owner let go and was not seen by it); an unreadable one is reported."""
    try:
        found = store.requests(record.workflow_id)
    except CoordinationError as error:
        _log.warning("resume_due(): left the requests of %s: %s", record.workflow_id, error)
        return None
    return REQUESTED if found else None
