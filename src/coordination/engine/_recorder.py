"""The writes of one flow instance: fenced by its claim, checked against the lifecycle.

A saga decides; its `Recorder` records: one `Write` per fact, carrying the claim token (a
superseded owner's write is refused with `LeaseLost`, and this recorder stops writing), each
status move checked against the one lifecycle table first, and, once the store accepted it,
applied to the instance's own record. It also builds the journal rows the saga writes
besides an action's attempts: what a choreography published, a late result.
"""

from __future__ import annotations

import functools
from typing import Any

from coordination._clock import Clock
from coordination._journal import EntryKind, Rows, row
from coordination._lifecycle import check_move
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._batch import WriteBatch
from coordination.engine._observers import EVERYWHERE, Observer, notify
from coordination.engine._plan import PlannedAction, PlannedWait
from coordination.errors import LeaseLost, StoreError
from coordination.stores._records import Finish, RunRecord, StepOutcome, StepRecord, Write
from coordination.stores._store import Store

__all__ = ["Recorder"]

# NamedTuples' generated __new__ is a Python function; the tuple constructor is not, and a
# write is made for every step of every instance.
_new_write = functools.partial(tuple.__new__, Write)
_PUBLISHED = EntryKind.PUBLISHED
_LATE = EntryKind.LATE_RESULT
_SKIPPED = EntryKind.SKIPPED


class Recorder:
    """Writes one instance's facts through its store, under the claim `token`."""

    __slots__ = ("batch", "clock", "lost", "observers", "record", "store", "token", "workflow_id")

    def __init__(
        self,
        store: Store,
        record: RunRecord,
        token: int,
        clock: Clock,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self.store = store
        self.observers = observers
        self.record = record
        self.token = token
        self.clock = clock
        self.workflow_id = record.workflow_id
        #: Set once a write was refused or failed: this copy can no longer be trusted, and
        #: the instance is resumed from the store (by its new owner, or by recovery).
        self.lost = False
        #: Set while the instance runs in a batch (`run_many`): writes wait for its flush.
        self.batch: WriteBatch | None = None

    def write(
        self,
        records: tuple[StepRecord, ...] = (),
        *,
        status: WorkflowStatus | None = None,
        finish: Finish | None = None,
        owes: bool | None = None,
        events: tuple[Envelope[Message], ...] = (),
        handled: tuple[tuple[str, str], ...] = (),
        release: bool = False,
    ) -> None:
        """One fenced write; once the store took it, applied to this instance's record."""
        record = self.record
        if finish is not None:
            check_move(record.status, finish.status)
        elif status is not None and status is not record.status:
            check_move(record.status, status)
        write = _new_write(
            (self.workflow_id, self.token, self.clock.now(), records, status, finish, owes,
             events, handled, release)
        )  # fmt: skip
        batch = self.batch
        if batch is not None:
            # Applied now, committed at the batch's flush (before this instance's next
            # generation starts); a fenced-out write loses this copy, so nothing reads it.
            record.apply(write)
            chunks = self._chunks(records, finish) if self.observers or EVERYWHERE else None
            if batch.add(self, write, chunks):
                return
            self.batch = None  # the batch closed meanwhile (a late result): written alone
            try:
                self.store.write(write)
            except (LeaseLost, StoreError):
                self.lost = True
                raise
            if chunks is not None:
                notify(self.observers, chunks)
            return
        try:
            self.store.write(write)
        except (LeaseLost, StoreError):
            self.lost = True  # another owner took over, or the store failed: stop here
            raise
        record.apply(write)
        if self.observers or EVERYWHERE:
            notify(self.observers, self._chunks(records, finish))

    def drop_requests(self, upto: int) -> None:
        """Drop the instance's requests up to `upto`, carried out: after what carrying
        them out wrote is committed (a batch's writes first)."""
        batch = self.batch
        if batch is not None:
            batch.flush()
        try:
            self.store.drop_requests(self.workflow_id, self.token, upto)
        except (LeaseLost, StoreError):
            self.lost = True
            raise

    def _chunks(self, records: tuple[StepRecord, ...], finish: Finish | None) -> list[Rows]:
        """The journal rows observers get for a write (asked only when someone observes:
        most instances have no observer, and every write would build them for nobody)."""
        chunks = [step.rows for step in records]
        if finish is not None and self.record.finished_at is not None:
            chunks.append(self.record.journal[-1])  # workflow_finished, as the journal shows
        return chunks

    def published(self, rows: Rows, envelopes: tuple[Envelope[Message], ...], who: str) -> Rows:
        """`rows` plus one `published` row per envelope (a choreography's journal)."""
        for envelope in envelopes:
            rows += row(
                _PUBLISHED,
                who,
                type(envelope.message).__name__,
                self.workflow_id,
                causation_id=envelope.causation_id,
                at=self.clock.now(),
                detail=envelope.message_id,
            )
        return rows

    def late(
        self,
        action: PlannedAction,
        attempt: int,
        output: Any,
        detail: str,
        error: str | None = None,
    ) -> StepRecord:
        """The record of a timed-out attempt's late result (or late failure)."""
        entry = row(
            _LATE,
            action.step.action.participant,
            action.step.action.name,
            self.workflow_id,
            attempt=attempt,
            at=self.clock.now(),
            error=error,
            detail=f"timed-out attempt {attempt} {'failed' if error else 'returned'} late: "
            f"{detail}",
        )
        return StepRecord(
            f"{action.key}:late{attempt}", StepOutcome.LATE, attempt, output, error, entry
        )

    def skipped(
        self, action: PlannedAction | PlannedWait, missing: list[type[Message]]
    ) -> StepRecord:
        """The record of an action skipped: its inputs were not produced (a business
        outcome took another branch); or of a wait whose message nothing could use."""
        if isinstance(action, PlannedWait):
            participant, _, name = action.key.partition(".")
            entry = row(
                _SKIPPED,
                participant,
                name,
                self.workflow_id,
                at=self.clock.now(),
                detail="skipped: no step after it could use its message any more",
            )
            return StepRecord(action.key, StepOutcome.SKIPPED, 0, None, None, entry)
        names = ", ".join(kind.__name__ for kind in missing)
        detail = f"skipped: no {names} was produced (another outcome was)"
        if not missing and action.mapped_slot is not None:
            kind = action.signature.inputs[action.input_slots.index(action.mapped_slot)]
            detail = f"skipped: the fan-out has no {kind.__name__} (zero items)"
        entry = row(
            _SKIPPED,
            action.step.action.participant,
            action.step.action.name,
            self.workflow_id,
            at=self.clock.now(),
            detail=detail,
        )
        return StepRecord(action.key, StepOutcome.SKIPPED, 0, None, None, entry)

    def waiting(self, planned: PlannedWait) -> Rows:
        """The row of an instance suspended at a wait: its `duration` is how long until its
        timer fires (a sleep's end, a wait's timeout), so the timer is durable with it."""
        names = " or ".join(kind.__name__ for kind in planned.types)
        due_in = planned.due_in
        what = f"sleeping {due_in:g}s" if planned.is_sleep else f"waiting for {names}"
        if due_in is not None and not planned.is_sleep:
            what += f" (timeout {due_in:g}s)"
        participant, _, name = planned.key.partition(".")
        return row(
            EntryKind.WAITING,
            participant,
            name,
            self.workflow_id,
            at=self.clock.now(),
            duration=due_in,
            detail=f"{what}; no thread, no lease held",
        )

    def timer(self, planned: PlannedWait, error: str | None = None) -> Rows:
        """The row of a timer that fired: a sleep that ended, or a wait that timed out."""
        participant, _, name = planned.key.partition(".")
        return row(
            EntryKind.FAILED if error else EntryKind.COMPLETED,
            participant,
            name,
            self.workflow_id,
            at=self.clock.now(),
            error=error,
            detail="timed out" if error else "the timer fired",
        )

    def arrival(self, planned: PlannedWait, message: Message, *, timed_out: bool = False) -> Rows:
        """The row of an outside message that arrived for a wait (what it produced), or of
        the timeout outcome the engine built when the wait's timer fired."""
        detail = f"{type(message).__name__} arrived"
        if timed_out:
            detail = f"timed out after {planned.due_in:g}s: {type(message).__name__}"
        return row(
            EntryKind.COMPLETED,
            "wait",
            planned.key.removeprefix("wait."),
            self.workflow_id,
            at=self.clock.now(),
            detail=detail,
        )

    def refusal(self, action: PlannedAction, error: str, detail: str) -> Rows:
        """The row of an action failed without an attempt (a join whose inputs never came)."""
        return row(
            EntryKind.FAILED,
            action.step.action.participant,
            action.step.action.name,
            self.workflow_id,
            at=self.clock.now(),
            error=error,
            detail=detail,
        )
