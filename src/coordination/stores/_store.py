"""The Store protocol: what both runners need from persistence, and nothing more.

A store appends; it never rewrites a run. A runner creates a run once (atomically, so a
`workflow_id` is never started twice), appends one record per settled step before the next
step starts, and finishes the run with its outcome. Backends (memory now, SQLite and
PostgreSQL later) are siblings behind this protocol, as eventsourcing's recorders are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.stores._records import RunRecord, StepRecord

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """Persistence for workflow runs."""

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Learn the message types a flow's runs hold, so they can be read back by name.

        Runners call it when they are built; a durable store raises `StoreError` here for a
        type it could not read back, before anything is stored.
        """
        ...

    def start_run(
        self,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        shape: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Create the run `workflow_id` owned by `owner`, or return the one already there.

        Returns `(record, created)`; atomic, so two callers never both create it.
        """
        ...

    def append_step(
        self,
        workflow_id: str,
        step: StepRecord,
        *,
        now: float,
        status: WorkflowStatus | None = None,
    ) -> None:
        """Append one settled step (and optionally move the run's status) in one write.

        A second record with the same `step.key` for the same run raises `StoreError`.
        """
        ...

    def finish_run(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        now: float,
        output: Any = None,
        error: BaseException | None = None,
        compensation_error: BaseException | None = None,
        last_step: StepRecord | None = None,
    ) -> None:
        """Record the run's outcome and release its owner, in one write.

        `last_step`, if given, is appended in the same write (a run's last step and its end
        need only one commit).
        """
        ...

    def claim_run(
        self, workflow_id: str, owner: str, *, now: float, replacing: str | None = None
    ) -> RunRecord | None:
        """Make `owner` the owner of an unfinished run; None if someone else holds it.

        Claims a run nobody owns, one whose lease expired before `now`, or one owned by
        `replacing` (an owner known to be dead). Atomic (a conditional update), so two
        callers never both resume one run.
        """
        ...

    def reopen_run(
        self,
        workflow_id: str,
        *,
        expected: WorkflowStatus,
        status: WorkflowStatus,
        owner: str,
        now: float,
    ) -> RunRecord | None:
        """Move a run from `expected` to `status` and make `owner` its owner (operators).

        Atomic: None unless the run is in `expected` and nobody else owns it. Clears its
        finished time and recovery count.
        """
        ...

    def note_recovery(self, workflow_id: str, position: str) -> int:
        """Count a recovery at `position`; the count of recoveries there in a row."""
        ...

    def release_run(self, workflow_id: str, owner: str, *, now: float) -> None:
        """Give up ownership of a run that stopped before finishing (if `owner` holds it)."""
        ...

    def get_run(self, workflow_id: str) -> RunRecord | None:
        """The run `workflow_id`, or None."""
        ...

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first, optionally only one flow's or one status's."""
        ...
