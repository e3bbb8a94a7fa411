"""What a store keeps: one record per run, and one appended record per settled step."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from coordination._journal import JournalEntry, Rows, entries_from_rows
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


@dataclass(slots=True, eq=False)
class RunRecord:
    """One workflow run as stored: who owns it, where it stands, and its appended steps."""

    workflow_id: str
    flow: str
    start: Message
    status: WorkflowStatus
    owner: str | None
    created_at: float
    updated_at: float
    lease_expires: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    #: Every journal entry of the run in store order, as chunks of flat rows.
    journal: list[Rows] = field(default_factory=list)
    output: Any = None
    #: Why it failed: a StepFailed (and, once compensation failed, a CompensationFailed).
    error: BaseException | None = None
    compensation_error: BaseException | None = None
