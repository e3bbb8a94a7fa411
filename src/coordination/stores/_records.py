"""What a store keeps: one record per run, and one appended record per settled step."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from coordination._journal import EntryKind, JournalEntry, Rows, entries_from_rows
from coordination._messages import Message
from coordination._status import WorkflowStatus

__all__ = ["RunRecord", "StepOutcome", "StepRecord"]


class StepOutcome(StrEnum):
    """How one step (or one undo) settled."""

    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    #: A timed-out attempt's result arrived after the step settled (kept or undone).
    LATE = "late"


class StepRecord(NamedTuple):
    """One settled step, appended to its run and never rewritten.

    `key` is unique within a run: `Interface.action` for a forward step,
    `Interface.action:undo` for its compensation. `output` is the step's message (a tuple
    for tuple outputs, None for terminal actions or failures).
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


_STEP_WIDTH = len(StepRecord._fields)
_ROWS = StepRecord._fields.index("rows")
_STARTED = EntryKind.WORKFLOW_STARTED.value
_FINISHED = EntryKind.WORKFLOW_FINISHED.value
_NO_DETAIL = (None, None, None, None)


@dataclass(slots=True, eq=False, weakref_slot=True)
class RunRecord:
    """One workflow run as stored: who owns it, where it stands, and its appended steps.

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
    lease_expires: float | None = None
    #: When the run last reached a finished status (None while it has not).
    finished_at: float | None = None
    output: Any = None
    #: Why it failed: a StepFailed (and, once compensation failed, a CompensationFailed).
    error: BaseException | None = None
    compensation_error: BaseException | None = None
    #: The flow definition's shape when the run started (see `FlowDefinition.shape`).
    shape: str | None = None
    #: How often recovery resumed it at the same position (`recovery_step`) in a row.
    recoveries: int = 0
    recovery_step: str | None = None
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
            (_STARTED, self.flow, "", self.workflow_id, None, 0, self.created_at, *_NO_DETAIL)
        ]
        chunks.extend(self._flat_steps[_ROWS::_STEP_WIDTH])
        if self.finished_at is not None:
            chunks.append(
                (
                    _FINISHED, self.flow, "", self.workflow_id, None, 0, self.finished_at,
                    None, None, None, self.status.value,
                )
            )  # fmt: skip
        return chunks

    def has_any_step(self) -> bool:
        """Whether any step record was appended."""
        return bool(self._flat_steps)

    def has_step(self, key: str) -> bool:
        """Whether a step record with this key was appended."""
        return key in self._flat_steps[::_STEP_WIDTH]

    def add_step(self, step: StepRecord) -> None:
        """Append a step record (the store checks and locks)."""
        self._flat_steps += step
