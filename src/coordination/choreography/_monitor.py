"""ProcessMonitor: the unseen orchestrator behind a choreography, made visible.

No component of a choreography knows the whole flow; the monitor reconstructs it for each
correlation from the journal and the participants' signatures: which actions ran, which
are pending, which failed or were undone, where the flow instance stands (the same status
vocabulary as a `WorkflowRun`), and which flows stalled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coordination._journal import EntryKind, Journal
from coordination._status import WorkflowStatus
from coordination.errors import WorkflowNotFound

if TYPE_CHECKING:
    from coordination.choreography._choreography import Choreography
    from coordination.choreography._process import Process

__all__ = ["ProcessMonitor", "ProcessView"]


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One flow instance as its journal tells it."""

    correlation_id: str
    status: WorkflowStatus
    start: str  #: the type of the message that started it
    done: tuple[str, ...]  #: actions that completed, in order
    pending: tuple[str, ...]  #: reachable actions that have not run (yet)
    failed: tuple[str, ...]  #: actions that failed after their retries
    compensated: tuple[str, ...]  #: actions undone, in the order they were undone
    failure: str | None  #: why it did not complete
    started_at: float
    updated_at: float  #: time of its latest journal entry
    journal: Journal

    def stalled(self, now: float, after: float) -> bool:
        """Unfinished with no journal entry for more than `after` seconds."""
        return not self.status.finished and now - self.updated_at > after

    def render(self) -> str:
        """A readable summary followed by the journal."""
        lines = [
            f"{self.correlation_id}: {self.status.name} (started by {self.start})",
            f"  done:        {', '.join(self.done) or '-'}",
            f"  pending:     {', '.join(self.pending) or '-'}",
            f"  failed:      {', '.join(self.failed) or '-'}",
            f"  compensated: {', '.join(self.compensated) or '-'}",
        ]
        if self.failure:
            lines.append(f"  failure:     {self.failure}")
        lines.extend(f"  {entry}" for entry in self.journal)
        return "\n".join(lines)


def reconstruct(process: Process) -> ProcessView:
    """Rebuild a view of `process` from its journal rows."""
    journal = process.journal
    done: list[str] = []
    failed: list[str] = []
    compensated: list[str] = []
    last_kind: dict[str, EntryKind] = {}
    status = WorkflowStatus.RUNNING
    failure: str | None = None
    for entry in journal:
        name = entry.name
        if entry.kind is EntryKind.WORKFLOW_FINISHED:
            status = WorkflowStatus(entry.detail or status.value)
            failure = entry.error
        elif entry.undoes is not None:
            if entry.kind is EntryKind.COMPENSATED:
                compensated.append(entry.undoes)
        elif entry.participant in ("subscriber", "choreography"):
            continue  # free-form subscribers never fail the flow
        elif entry.kind is EntryKind.COMPLETED:
            done.append(name)
        elif entry.kind in (EntryKind.FAILED, EntryKind.RETRIED):
            last_kind[name] = entry.kind
            if entry.kind is EntryKind.FAILED and (
                entry.detail is not None and "timed out" in entry.detail
            ):
                failed.append(name)
        elif (
            entry.kind is EntryKind.PUBLISHED
            and entry.action == "ActionFailed"
            and status is WorkflowStatus.RUNNING
        ):
            status = WorkflowStatus.COMPENSATING
    for name, kind in last_kind.items():
        if kind is EntryKind.FAILED and name not in done and name not in failed:
            failed.append(name)
    if failure is None and not status.finished:
        failure = process.failure
    with process.lock:
        waiting = set(process.joins)  # joins holding some inputs are pending too
    pending = (
        ()
        if status.finished
        else tuple(sorted((process.expected | waiting) - set(done) - set(failed)))
    )
    return ProcessView(
        correlation_id=process.correlation_id,
        status=status,
        start=process.start.__name__,
        done=tuple(done),
        pending=pending,
        failed=tuple(failed),
        compensated=tuple(compensated),
        failure=failure,
        started_at=process.started_at,
        updated_at=process.updated_at,
        journal=journal,
    )


class ProcessMonitor:
    """Read the process of each correlation of one `Choreography`."""

    def __init__(self, choreography: Choreography) -> None:
        self._choreography = choreography

    def get(self, correlation_id: str) -> ProcessView:
        """The process of `correlation_id`, reconstructed from its journal."""
        process = self._choreography.process(correlation_id)
        if process is None:
            raise WorkflowNotFound(
                f"no flow instance {correlation_id!r} in this choreography (never started "
                f"here, or forgotten after {self._choreography.max_finished} newer ones)",
                workflow_id=correlation_id,
            )
        return reconstruct(process)

    def all(self, status: WorkflowStatus | None = None) -> list[ProcessView]:
        """Every kept process, optionally only those in `status`."""
        views = [reconstruct(process) for process in self._choreography.processes()]
        return [view for view in views if status is None or view.status is status]

    def stalled(self, after: float) -> list[ProcessView]:
        """Unfinished processes with no journal entry for more than `after` seconds."""
        now = self._choreography.clock.now()
        return [view for view in self.all() if view.stalled(now, after)]
