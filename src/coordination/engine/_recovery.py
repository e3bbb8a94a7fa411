"""Taking instances over: claiming one, and recovering every instance of a flow that owes work.

Both runners recover the same way. Recovery lists, through the store's owed-work index,
the instances of a flow that are unfinished or owe an undo (never reading finished ones),
claims each one it may take (`takeover`, then the store's fenced claim), journals the
takeover, parks one that keeps killing its process at the same position, and hands the rest
to the runner to drive. One instance that cannot be resumed (`FlowChanged`, an unreadable
row) is released and reported; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from coordination._clock import Clock
from coordination._journal import EntryKind, Rows, row
from coordination._lifecycle import MOVES
from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.engine._observers import Observer, notify
from coordination.engine._ownership import ACTIVE, Takeover, takeover
from coordination.engine._plan import FlowPlan, shape_difference
from coordination.engine._schedules import owes_only_starts
from coordination.errors import (
    CompensationFailed,
    CoordinationError,
    FlowChanged,
    LeaseLost,
    StepFailed,
    StoreError,
    UsageError,
    WorkflowBusy,
    WorkflowConflict,
)
from coordination.stores._records import Finish, OwedRun, RunRecord, StepOutcome, StepRecord, Write
from coordination.stores._store import Store

__all__ = [
    "Problem",
    "check_shape",
    "claim",
    "claim_or_busy",
    "note",
    "note_takeover",
    "position_of",
    "recover",
    "resume_claimed",
    "same_start",
    "take_over",
]

_log = logging.getLogger("coordination.recovery")

T = TypeVar("T")
#: Told about each instance recovery had to leave alone: (workflow_id, why).
Problem = Callable[[str, BaseException], None]


def _log_problem(workflow_id: str, error: BaseException) -> None:
    _log.warning("recover(): left %s alone: %s", workflow_id, error)


def position_of(record: RunRecord) -> str:
    """Where an instance stands, for counting recoveries in a row at the same point (its saga
    records only: the notes a takeover writes are no progress)."""
    facts = sum(1 for step in record.steps if step.outcome is not StepOutcome.NOTED)
    return f"{facts} records"


def note_takeover(store: Store, record: RunRecord, token: int) -> None:
    """Count a takeover at the instance's position (attempt numbers continue from it).

    A WAITING instance was let go with nothing in flight: taking it back (an outside
    message came, an operator cancels it) is no recovery, and is not counted as one.
    """
    if record.status is WorkflowStatus.WAITING:
        record.token = token
        return
    position = position_of(record)
    record.recoveries = store.note_recovery(record.workflow_id, token, position)
    record.recovery_step, record.token = position, token


def check_shape(store: Store, record: RunRecord, token: int, plan: FlowPlan, now: float) -> None:
    """Refuse to resume `record` with a plan of another shape: release it, `FlowChanged`.

    Retries and timeouts may change between versions; actions and their messages may not
    (the records would no longer mean what they say).
    """
    if record.shape is None:
        return
    difference = shape_difference(record.shape, plan.shape)
    if difference is None:
        return
    store.release_run(record.workflow_id, token, now=now)
    raise FlowChanged(
        f"{record.workflow_id!r} was started by another definition of {plan.name!r}: "
        f"{difference}. Resume it with the code that started it, or cancel it",
        workflow_id=record.workflow_id,
    )


def claim(
    store: Store, workflow_id: str, owner: str | None, me: str, now: float, *, held: bool = False
) -> int | None:
    """Claim an instance `owner` holds, if `me` may take it; its new token, or None."""
    decision = takeover(owner, me, workflow_id, held=held)
    if decision is Takeover.BUSY:
        return None
    replacing = owner if decision is Takeover.REPLACE else None
    return store.claim_run(workflow_id, me, now=now, replacing=replacing)


def same_start(record: RunRecord, flow: str, start: Message) -> None:
    """`WorkflowConflict` unless `record` is a run of `flow` started by `start`: an id names
    one run of one message (starting it again is idempotent, never a second run)."""
    if record.flow != flow:
        raise WorkflowConflict(
            f"{record.workflow_id!r} is a run of flow {record.flow!r}, not {flow!r}; use "
            f"another id",
            workflow_id=record.workflow_id,
        )
    if record.start != start:
        raise WorkflowConflict(
            f"{record.workflow_id!r} was already started with a different message "
            f"({record.start!r}); an id names one run of one message",
            workflow_id=record.workflow_id,
        )


def claim_or_busy(store: Store, record: RunRecord, me: str, now: float, advice: str) -> int:
    """Claim an unfinished run whose owner let go or is gone; `WorkflowBusy` if live."""
    token = claim(store, record.workflow_id, record.owner, me, now)
    if token is None:
        raise WorkflowBusy(
            f"{record.workflow_id!r} is {record.status.name} under owner {record.owner!r}; "
            f"{advice}",
            workflow_id=record.workflow_id,
        )
    return token


def take_over(
    store: Store,
    record: RunRecord,
    token: int,
    clock: Clock,
    *,
    was: str | None,
    observers: tuple[Observer, ...] = (),
) -> None:
    """Journal that this process took `record` over from `was` (fenced by `token`); its
    observers see the entry once, like any other."""
    if record.status is WorkflowStatus.WAITING:
        return  # resumed from a wait: its arrival is journaled instead
    now = clock.now()
    entry = row(
        EntryKind.RECOVERED,
        record.flow,
        "",
        record.workflow_id,
        at=now,
        detail=f"taken over from {was or 'an owner that let go'} (recovery {record.recoveries})",
    )
    if note(store, record, token, f"recovered:{token}", entry, now) and observers:
        notify(observers, [entry])


def note(store: Store, record: RunRecord, token: int, key: str, rows: Rows, now: float) -> bool:
    """Journal something that is no saga fact into `record` (fenced by `token`); False if
    it was journaled already."""
    if record.has_step(key):
        return False
    write = Write(
        record.workflow_id, token, now, (StepRecord(key, StepOutcome.NOTED, 0, None, None, rows),)
    )
    store.write(write)
    record.apply(write)
    return True


def recover(
    store: Store,
    flow: str,
    me: str,
    clock: Clock,
    *,
    max_recoveries: int,
    resume: Callable[[RunRecord, int], T],
    parked: Callable[[RunRecord], T],
    check: Callable[[RunRecord, int], None],
    on_problem: Problem | None = None,
    observers: tuple[Observer, ...] = (),
) -> list[T]:
    """Resume every instance of `flow` that owes work and that `me` may take over.

    `check(record, token)` runs before anything is written: it raises `FlowChanged` or
    `StoreError` for an instance this process cannot resume, which is then left exactly as
    it was (never journaled as taken over, never counted towards parking it).
    """
    if (
        isinstance(max_recoveries, bool)
        or not isinstance(max_recoveries, int)
        or max_recoveries < 1
    ):
        raise UsageError(f"max_recoveries={max_recoveries!r} must be an int of at least 1")
    report = on_problem or _log_problem
    results: list[T] = []
    for owed in store.owed_runs(flow):
        if owed.status is WorkflowStatus.WAITING and owed.owner is None:
            continue  # suspended for an outside message: nothing to do until it comes
        if owed.status.finished and owed.owner is None:
            try:
                record = store.get_run(owed.workflow_id)
            except (CoordinationError, ValidationError) as error:
                report(owed.workflow_id, error)  # an unreadable row: this run only, untouched
                continue
            if record is not None and owes_only_starts(record):
                continue  # ended, with the next instance to start when due: resume_due's
        # Held from the claim to the end of the drive: another thread of this process (a
        # second worker) that read the same owed run must not take it over meanwhile.
        if not ACTIVE.hold(owed.workflow_id):
            continue  # this process drives it, or another of its threads claims it now
        try:
            result = _claim_and_resume(
                store, owed, me, clock, max_recoveries=max_recoveries, resume=resume,
                parked=parked, check=check, report=report, observers=observers,
            )  # fmt: skip
        finally:
            ACTIVE.leave(owed.workflow_id)
        if result is not None:
            results.append(result)
    return results


def _claim_and_resume(
    store: Store,
    owed: OwedRun,
    me: str,
    clock: Clock,
    *,
    max_recoveries: int,
    resume: Callable[[RunRecord, int], T],
    parked: Callable[[RunRecord], T],
    check: Callable[[RunRecord, int], None],
    report: Problem,
    observers: tuple[Observer, ...],
) -> T | None:
    try:
        token = claim(store, owed.workflow_id, owed.owner, me, clock.now(), held=True)
    except StoreError as error:  # a damaged row (the claim rolled back), a failing disk
        report(owed.workflow_id, error)
        return None
    if token is None:
        return None  # a live owner holds it, or another recoverer claimed it first
    return resume_claimed(
        store, owed.workflow_id, token, clock, was=owed.owner,
        max_recoveries=max_recoveries, resume=resume, parked=parked, check=check,
        on_problem=report, observers=observers,
    )  # fmt: skip


def resume_claimed(
    store: Store,
    workflow_id: str,
    token: int,
    clock: Clock,
    *,
    was: str | None,
    max_recoveries: int,
    resume: Callable[[RunRecord, int], T],
    parked: Callable[[RunRecord], T],
    check: Callable[[RunRecord, int], None],
    on_problem: Problem | None = None,
    observers: tuple[Observer, ...] = (),
) -> T | None:
    """Take over one instance this process just claimed (from `was`), as `recover` does
    each: check it, journal the takeover, park it after too many, else `resume` it.

    None when it was left alone: gone, taken by another process meanwhile, or one that
    cannot be resumed (released and reported to `on_problem`).
    """
    report = on_problem or _log_problem
    try:
        record = store.get_run(workflow_id)
        if record is None:
            return None
        check(record, token)
        if owes_only_starts(record):
            # Ended, owing only a start when due: resume_due's. The claim is kept until its
            # lease runs out, so a worker's next claim does not take it again at once.
            return None
        if never_driven(record, was):
            # A submitted run a worker takes first (or one let go before it recorded
            # anything): no takeover to journal or count, and two commits fewer a run.
            record.token = token
            return resume(record, token)
        note_takeover(store, record, token)
        if record.recoveries > max_recoveries:
            _park(store, record, token, clock)
            return parked(record)
        take_over(store, record, token, clock, was=was, observers=observers)
        return resume(record, token)
    except LeaseLost:
        return None  # another process took it meanwhile: it is theirs
    # FlowChanged, an unreadable row (StoreError), records that contradict each other
    # (InvalidTransition from a tampered status, say): this instance only.
    except (CoordinationError, ValidationError) as error:
        try:
            store.release_run(workflow_id, token, now=clock.now())
        except StoreError:
            pass  # its lease runs out: recovery tries again later
        report(workflow_id, error)
        return None


def never_driven(record: RunRecord, was: str | None) -> bool:
    """Whether nobody ever drove `record` past its start: it was let go (a submitted run,
    or one interrupted before its first record), never taken over, and has no record."""
    return (
        was is None
        and record.recoveries == 0
        and record.status is WorkflowStatus.RUNNING
        and not record.has_any_step()
    )


def _park(store: Store, record: RunRecord, token: int, clock: Clock) -> None:
    """Park an instance recovered too often at one position: a human decides."""
    count = record.recoveries - 1
    reason = (
        f"recovered {count} times in a row at the same point ({record.recovery_step}) "
        f"without progress: a step keeps killing its process"
    )
    now = clock.now()
    if WorkflowStatus.PARKED in MOVES[record.status]:
        finish = Finish(
            WorkflowStatus.PARKED,
            error=record.error or StepFailed(f"parked: {reason}", step="", attempts=count),
            compensation_error=record.compensation_error,
            parked_reason=reason,
        )
    else:  # a finished instance owing a late undo that keeps crashing: stop owing it
        finish = Finish(
            WorkflowStatus.COMPENSATION_FAILED,
            error=record.error,
            compensation_error=CompensationFailed(
                f"gave up an owed undo: {reason}", step="", compensation="", attempts=count
            ),
        )
    write = Write(record.workflow_id, token, now, finish=finish, owes=False)
    store.write(write)
    record.apply(write)
