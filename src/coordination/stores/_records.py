"""What a store keeps and what a runner hands it: runs, appended step records, fenced writes.

A store appends; it never rewrites a run. A flow instance (an orchestrated run or a
choreographed instance alike) is one `RunRecord` plus the `StepRecord`s appended to it, one
per settled action or undo. Every change after the start is one `Write`, fenced by the
claim token of the process that owns the instance, so a superseded owner's writes are
refused (`LeaseLost`) instead of silently mixing with the new owner's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from coordination._journal import EntryKind, JournalEntry, Rows, entries_from_rows, row
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus

__all__ = [
    "DeadLetter",
    "Finish",
    "OwedRun",
    "Request",
    "RunRecord",
    "StepOutcome",
    "StepRecord",
    "Write",
]


class StepOutcome(StrEnum):
    """How one step (or one undo) settled."""

    COMPLETED = "completed"
    FAILED = "failed"
    #: Its input was never produced (a business outcome took another branch).
    SKIPPED = "skipped"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    #: A timed-out attempt's result arrived after the step settled (kept, or owed an undo).
    LATE = "late"
    #: A journal-only record: a recovery, a subscriber's failure; no saga fact.
    NOTED = "noted"


class StepRecord(NamedTuple):
    """One settled step, appended to its run and never rewritten.

    `key` is unique within a run: `Interface.action` for a forward step,
    `Interface.action:undo` for its compensation, `Interface.action:late<n>` for a late
    result and `Interface.action:late<n>:undo` for its undo. `output` is the step's message
    (a tuple for tuple outputs, None for terminal actions or failures).
    """

    key: str
    outcome: StepOutcome
    attempts: int
    output: Any = None
    error: str | None = None
    #: The journal entries of this step as one flat tuple of rows (see `Journal.from_rows`).
    rows: Rows = ()

    @property
    def entries(self) -> tuple[JournalEntry, ...]:
        """The journal entries of this step."""
        return tuple(entries_from_rows((self.rows,)))


class Finish(NamedTuple):
    """A run's end (or a park), written with the write that carries it."""

    status: WorkflowStatus
    output: Any = None
    #: Why it did not complete: the `StepFailed` of the first failing step.
    error: BaseException | None = None
    #: The `CompensationFailed` of the undo that failed.
    compensation_error: BaseException | None = None
    #: Why a PARKED run waits for a human.
    parked_reason: str | None = None


class Write(NamedTuple):
    """Everything one commit changes for one run, fenced by `token`.

    The store applies it whole or not at all, and only while `token` is still the run's
    (else the write is refused and the writer gets `LeaseLost`). `records` are appended;
    `status` moves the run (`finish` ends it, releasing its owner); `owes` sets or clears
    the owed-work flag of a finished run (a late result's undo is owed); `events` go to
    the outbox and `handled` are inbox marks `(message_id, subscriber)`; `release` gives up
    ownership of an unfinished run. A tuple: one is made for every step of every run.
    """

    workflow_id: str
    token: int
    now: float
    records: tuple[StepRecord, ...] = ()
    status: WorkflowStatus | None = None
    finish: Finish | None = None
    owes: bool | None = None
    events: tuple[Envelope[Message], ...] = ()
    handled: tuple[tuple[str, str], ...] = ()
    release: bool = False


class OwedRun(NamedTuple):
    """A run that owes work, as the owed-work index lists it (nothing decoded)."""

    workflow_id: str
    status: WorkflowStatus
    owner: str | None
    lease_expires: float | None
    token: int


class Request(NamedTuple):
    """An operator's request for a run another process drives: a cancel (`message` None)
    or an outside message that came before the run reached its wait.

    Kept durably beside the run (not fenced: whoever asks does not own it) until its owner
    carries it out at a step boundary and drops it; a new owner after a crash finds it.
    `seq` orders a run's requests (the store numbers them)."""

    seq: int
    at: float
    message: Message | None = None

    @property
    def cancel(self) -> bool:
        return self.message is None


class DeadLetter(NamedTuple):
    """A delivery set aside after it kept failing or killing its process."""

    message_id: str
    subscriber: str
    deliveries: int
    error: str | None
    workflow_id: str = ""


_STEP_WIDTH = len(StepRecord._fields)
_ROWS = StepRecord._fields.index("rows")


@dataclass(slots=True, eq=False, weakref_slot=True)
class RunRecord:
    """One flow instance as stored: who owns it, where it stands, and its appended steps.

    Steps are kept flat (one list of their fields end to end) rather than as one object
    per step, and the run's own journal entries (started, finished) are derived from its
    fields rather than kept: a store keeps thousands of runs, and every kept object is one
    more for each garbage collection to walk. `steps` and `journal` rebuild them on read.
    """

    workflow_id: str
    flow: str
    start: Message
    status: WorkflowStatus
    owner: str | None
    created_at: float
    updated_at: float
    #: The fencing token of the latest claim: every write must carry it.
    token: int = 1
    lease_expires: float | None = None
    #: When the run last reached a finished status (None while it has not).
    finished_at: float | None = None
    output: Any = None
    #: Why it failed: a StepFailed (and, once compensation failed, a CompensationFailed).
    error: BaseException | None = None
    compensation_error: BaseException | None = None
    #: The flow definition's shape when the run started (see `FlowPlan.shape`).
    shape: str | None = None
    #: How often recovery resumed it at the same position (`recovery_step`) in a row.
    recoveries: int = 0
    recovery_step: str | None = None
    #: Unfinished, or finished but owing an undo (a late result): recovery looks at it.
    owed: bool = True
    #: Why it is PARKED (a crash loop at a step, a failure after the pivot, an operator).
    parked_reason: str | None = None
    _flat_steps: list[Any] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> list[StepRecord]:
        """The appended step records, in the order they were appended."""
        flat = self._flat_steps
        return [
            StepRecord._make(flat[start : start + _STEP_WIDTH])
            for start in range(0, len(flat), _STEP_WIDTH)
        ]

    @property
    def journal(self) -> list[Rows]:
        """Every journal entry in store order, as chunks of flat rows.

        Opens with `workflow_started` and, once finished, closes with `workflow_finished`
        carrying the current status.
        """
        chunks: list[Rows] = [
            row(
                EntryKind.WORKFLOW_STARTED,
                self.flow,
                "",
                self.workflow_id,
                at=self.created_at,
                detail=type(self.start).__name__,
            )
        ]
        chunks.extend(self._flat_steps[_ROWS::_STEP_WIDTH])
        if self.finished_at is not None:
            chunks.append(
                row(
                    EntryKind.WORKFLOW_FINISHED,
                    self.flow,
                    "",
                    self.workflow_id,
                    at=self.finished_at,
                    error=self.parked_reason,
                    detail=self.status.value,
                )
            )
        return chunks

    @classmethod
    def started(
        cls,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        lease_expires: float,
        shape: str | None,
    ) -> RunRecord:
        """A run as its store has just created it: RUNNING, first claimed (token 1)."""
        return cls(
            workflow_id=workflow_id,
            flow=flow,
            start=start,
            status=WorkflowStatus.RUNNING,
            owner=owner,
            created_at=now,
            updated_at=now,
            token=1,
            lease_expires=lease_expires,
            shape=shape,
        )

    def copy(self) -> RunRecord:
        """An independent copy (the steps list is not shared)."""
        return RunRecord(
            self.workflow_id, self.flow, self.start, self.status, self.owner, self.created_at,
            self.updated_at, self.token, self.lease_expires, self.finished_at, self.output,
            self.error, self.compensation_error, self.shape, self.recoveries,
            self.recovery_step, self.owed, self.parked_reason, list(self._flat_steps),
        )  # fmt: skip

    def has_any_step(self) -> bool:
        """Whether any step record was appended."""
        return bool(self._flat_steps)

    def has_step(self, key: str) -> bool:
        """Whether a step record with this key was appended."""
        return key in self._flat_steps[::_STEP_WIDTH]

    def step_keys(self) -> list[str]:
        """The keys of the appended step records, in order (a new list)."""
        return self._flat_steps[::_STEP_WIDTH]

    def add_step(self, step: StepRecord) -> None:
        """Append a step record (the store checks and locks)."""
        self._flat_steps += step

    def add_new_step(self, step: StepRecord) -> bool:
        """Append a step record unless one with its key is there (False: nothing added)."""
        flat = self._flat_steps
        if step[0] in flat[::_STEP_WIDTH]:
            return False
        flat += step
        return True

    def apply(self, write: Write) -> None:
        """Apply what `write` changes to this in-memory copy (its store accepted it)."""
        for record in write.records:
            self._flat_steps += record
        self.updated_at = write.now
        finish = write.finish
        if finish is not None:
            self.status = finish.status
            self.output = finish.output
            self.error = finish.error
            self.compensation_error = finish.compensation_error
            self.parked_reason = finish.parked_reason
            self.owner = None
            self.lease_expires = None
            if finish.status.finished:
                self.finished_at = write.now
            self.owed = bool(write.owes) or not finish.status.finished
        elif write.status is not None:
            self.status = write.status
        if write.owes is not None and finish is None:
            self.owed = write.owes or not self.status.finished
        if write.release:
            self.owner = None
            self.lease_expires = None
