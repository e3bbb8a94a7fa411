"""Messages a participant scheduled (`ctx.schedule`): kept with the step, fired when due.

A schedule is durable with the step that made it: one NOTED record per scheduled message,
`Interface.action:schedule<n>`, written in the same commit as the step's own record (so a
failed attempt's schedules are never written). Its journal row carries when it was made
(`at`) and how long until it is due (`duration`); the instance it is for, when another, ends
its key, quoted (`Interface.action:schedule<n>>sub-7%3A2027-02`):

- **for the instance itself** (no `workflow_id`): one of its waits takes the message when
  due, exactly as if it had been sent (`send()`); the wait's own record is the proof it
  fired, so it fires once;
- **for the next instance** (a start message with `workflow_id`, a repeating process's next
  period): it starts that instance when due. The scheduling instance keeps owing work (it
  stays in the owed-work index, even once it ended) until a `:started` record says the
  start was made; starting is idempotent by workflow id, so a crash between the start and
  that record never starts a second instance.

Both runners decide here; each carries a due start out its own way (`run()`, `publish()`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar
from urllib.parse import quote, unquote

from coordination._clock import Clock
from coordination._context import Scheduled
from coordination._journal import EntryKind, row
from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.engine._plan import FlowPlan, PlannedAction, PlannedWait
from coordination.errors import UsageError, WorkflowConflict
from coordination.stores._records import RunRecord, StepOutcome, StepRecord, Write
from coordination.stores._store import Store

__all__ = [
    "DueMessage",
    "DueStart",
    "check_scheduled",
    "due_message",
    "due_start",
    "make_start",
    "mark_started",
    "owes_only_starts",
    "pending_starts",
    "scheduled_records",
]

T = TypeVar("T")
_log = logging.getLogger("coordination.engine")
_MARK = ":schedule"
_STARTED = ":started"
_FOR = ">"
#: In the key of a late result's record (`Interface.action:late<n>`).
_LATE = ":late"


class DueMessage(NamedTuple):
    """A message the instance scheduled for itself that came due: `planned` takes it."""

    planned: PlannedWait
    message: Message


class DueStart(NamedTuple):
    """A scheduled start message that came due: start `workflow_id` with `message`."""

    #: The key of the schedule's record (its `:started` record marks it made).
    key: str
    message: Message
    workflow_id: str


def check_scheduled(plan: FlowPlan, message: Message, target: str | None) -> None:
    """`UsageError` unless `message` can be scheduled by an instance of `plan`: a message one
    of its waits waits for (for itself), or its start message (for instance `target`)."""
    if target is None:
        if plan.wait_for(message) is None:
            awaited = ", ".join(k.__name__ for w in plan.waits for k in w.types) or "nothing"
            raise UsageError(
                f"ctx.schedule({type(message).__name__}): {plan.name} does not wait for it (it "
                f"waits for {awaited}); schedule a message one of its wait(...) steps names, "
                f"or a start message with workflow_id= for the next instance"
            )
        return
    if not isinstance(message, plan.start_type):
        raise UsageError(
            f"ctx.schedule({type(message).__name__}, workflow_id={target!r}): an instance of "
            f"{plan.name} starts with {plan.start_type.__name__}; schedule that to start the "
            f"next one"
        )


def scheduled_records(
    action: PlannedAction, scheduled: Sequence[Scheduled], workflow_id: str, now: float
) -> tuple[StepRecord, ...]:
    """The records of what a completed attempt of `action` scheduled, to write with it."""
    participant = action.step.action.participant
    name = action.step.action.name
    records = []
    for number, (message, after, target) in enumerate(scheduled, start=1):
        for_whom = "this instance" if target is None else f"instance {target!r}"
        entry = row(
            EntryKind.WAITING,
            participant,
            name,
            workflow_id,
            at=now,
            duration=after,
            detail=f"scheduled {type(message).__name__} in {after:g}s for {for_whom}",
        )
        # The id is quoted: no ':' of its own can read as a marker of another record kind.
        for_id = "" if target is None else _FOR + quote(target, safe="")
        key = f"{action.key}{_MARK}{number}{for_id}"
        records.append(StepRecord(key, StepOutcome.NOTED, 0, message, None, entry))
    return tuple(records)


class _Schedule(NamedTuple):
    key: str
    message: Message
    due: float
    #: None: for the instance itself.
    workflow_id: str | None


def _schedules(record: RunRecord) -> list[_Schedule]:
    found = []
    for step in record.steps:
        if step.outcome is not StepOutcome.NOTED or _MARK not in step.key:
            continue
        if step.key.endswith(_STARTED) or not step.rows:
            continue
        entry = step.entries[0]
        _, _, target_id = step.key.partition(_FOR)
        target = unquote(target_id) if target_id else None
        found.append(_Schedule(step.key, step.output, entry.at + (entry.duration or 0.0), target))
    return found


def pending_starts(record: RunRecord, *, made: str | None = None) -> bool:
    """Whether `record` scheduled a start that was not made yet (so it still owes work);
    `made`: the key of one being marked made now."""
    if _MARK not in "".join(record.step_keys()):
        # No key holds the mark (joined, a key can only gain a false match across its
        # neighbour, which the exact check below rules out): one C scan, every instance.
        return False
    return any(
        s.workflow_id is not None and s.key != made and not record.has_step(s.key + _STARTED)
        for s in _schedules(record)
    )


def owes_only_starts(record: RunRecord) -> bool:
    """Whether a finished instance owes nothing but scheduled starts: work for
    `resume_due()` when they come due, none for recovery or a worker's claim (which would
    only journal a takeover, and count it towards parking the instance)."""
    return (
        record.status.finished
        and pending_starts(record)
        and not any(_LATE in key for key in record.step_keys())
    )


def due_start(record: RunRecord, now: float) -> DueStart | None:
    """The earliest scheduled start of `record` due at `now` and not made yet."""
    due = [
        s
        for s in _schedules(record)
        if s.workflow_id is not None and s.due <= now and not record.has_step(s.key + _STARTED)
    ]
    if not due:
        return None
    first = min(due, key=lambda s: s.due)
    assert first.workflow_id is not None
    return DueStart(first.key, first.message, first.workflow_id)


def due_message(record: RunRecord, plan: FlowPlan, now: float) -> tuple[DueMessage, float] | None:
    """A message `record` scheduled for itself that is due at `now`, for a wait not settled
    yet: `(wait, message, due time)`, the earliest first. A message whose wait took another
    one meanwhile (the buyer cancelled first) is moot: nothing is owed for it."""
    if record.status is not WorkflowStatus.WAITING:
        return None
    best: tuple[DueMessage, float] | None = None
    for schedule in _schedules(record):
        if schedule.workflow_id is not None or schedule.due > now:
            continue
        planned = plan.wait_for(schedule.message)
        if planned is None or record.has_step(planned.key):
            continue
        if best is None or schedule.due < best[1]:
            best = (DueMessage(planned, schedule.message), schedule.due)
    return best


def make_start(
    store: Store,
    record: RunRecord,
    token: int,
    start: DueStart,
    clock: Clock,
    begin: Callable[[Message, str], T],
) -> T | None:
    """Make a due start with the runner's `begin(message, workflow_id)` (idempotent by the
    id: a start a crash left unmarked is not made twice), then mark it made.

    An instance of that id started with another message (`WorkflowConflict`) is not
    started again: the start is marked made with the conflict as its error, and logged.
    Anything else lets go of the scheduling instance and propagates (the start stays owed).
    """
    error: str | None = None
    started: T | None = None
    try:
        started = begin(start.message, start.workflow_id)
    except WorkflowConflict as conflict:
        error = f"WorkflowConflict: {conflict}"
        _log.warning("%s: a scheduled start was not made: %s", record.workflow_id, error)
    except BaseException:
        store.release_run(record.workflow_id, token, now=clock.now())
        raise
    mark_started(store, record, token, start, clock.now(), error)
    return started


def mark_started(
    store: Store,
    record: RunRecord,
    token: int,
    start: DueStart,
    now: float,
    error: str | None = None,
) -> None:
    """Record that a scheduled start was made (so it is never made again), and let go of
    the scheduling instance: it stops owing once nothing else is owed."""
    marker = StepRecord(start.key + _STARTED, StepOutcome.NOTED, 0, None, error, ())
    owes: bool | None = None  # unfinished: it owes work anyway
    if record.status.finished and not _owes_more(record, start):
        owes = False
    store.write(Write(record.workflow_id, token, now, (marker,), owes=owes))
    store.release_run(record.workflow_id, token, now=now)


def _owes_more(record: RunRecord, start: DueStart) -> bool:
    """Whether a finished instance may owe anything once `start` is made: another start,
    or an undo of a late result (recovery decides those: the flag is left for it)."""
    if pending_starts(record, made=start.key):
        return True
    return any(_LATE in key for key in record.step_keys())
