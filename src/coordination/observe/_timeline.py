"""Timelines: one run as a waterfall of attempts, the same structure for both runners.

A timeline is built from a run's journal alone, so a `WorkflowRun` and a `ProcessView` of
the same order give the same rows: forward actions by generation (derived from what caused
each one: the action named by an orchestrated entry, or the action that published the
message a choreographed entry consumed), then undos in the order they ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from coordination._journal import EntryKind, JournalEntry
from coordination._status import WorkflowStatus
from coordination.errors import UsageError
from coordination.observe._view import RunView, label

__all__ = ["Attempt", "Timeline", "TimelineRow", "timeline"]

_ENDS = {
    EntryKind.COMPLETED: "completed",
    EntryKind.FAILED: "failed",
    EntryKind.COMPENSATED: "compensated",
    EntryKind.COMPENSATION_FAILED: "compensation_failed",
}


@dataclass(slots=True)
class Attempt:
    """One attempt of an action or an undo: when it ran and how it ended."""

    number: int
    start: float  #: seconds since the instance started
    end: float | None = None  #: None while it runs (or if its end was never recorded)
    outcome: str = "running"  #: completed, failed, compensated, compensation_failed, running
    error: str | None = None
    #: What became of its result when it came back after its timeout, if it did.
    late: str | None = None
    #: The wait before the next attempt, when it was retried.
    retried_after: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(slots=True)
class TimelineRow:
    """One action (or one undo) of the run, with its attempts."""

    name: str  #: `Participant.action`
    participant: str
    action: str
    undoes: str | None = None  #: for an undo: the action it undoes
    generation: int | None = None  #: for a forward action: its generation, from 1
    attempts: list[Attempt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: skipped, waiting, recovered

    @property
    def is_undo(self) -> bool:
        return self.undoes is not None

    @property
    def outcome(self) -> str:
        """How its last attempt ended (`skipped` if it never ran)."""
        if not self.attempts:
            return "skipped" if "skipped" in self.notes else "pending"
        return self.attempts[-1].outcome


class Timeline:
    """One run as rows of attempts: `str()` plain text, `__rich__` a waterfall, `.mermaid()`."""

    def __init__(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        rows: list[TimelineRow],
        total: float,
        notes: list[str],
    ) -> None:
        self.workflow_id = workflow_id
        self.status = status
        self.rows: tuple[TimelineRow, ...] = tuple(rows)
        #: Seconds from the instance's start to its latest entry.
        self.total = total
        #: Instance-level notes (a recovery, a wait), in order.
        self.notes: tuple[str, ...] = tuple(notes)

    def structure(self) -> tuple[tuple[Any, ...], ...]:
        """The rows without times or ids: equal for equal runs, whichever runner ran them."""
        return tuple(
            (
                row.name,
                row.undoes,
                row.generation,
                tuple((a.number, a.outcome, a.late is not None) for a in row.attempts),
                tuple(row.notes),
            )
            for row in self.rows
        )

    def _lines(self) -> Iterator[str]:
        yield f"{self.workflow_id}: {self.status.name} ({_ms(self.total)})"
        for note in self.notes:
            yield f"  {note}"
        for row in self.rows:
            where = f"undo of {row.undoes}" if row.undoes else f"generation {row.generation}"
            yield f"  {row.name} ({where})"
            for note in row.notes:
                yield f"      {note}"
            for attempt in row.attempts:
                yield "      " + " ".join(_attempt_words(attempt))

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def __rich__(self) -> Any:
        """A waterfall: one bar per attempt, placed and sized by its time in the run."""
        from coordination.observe._waterfall import waterfall

        return waterfall(self)

    def mermaid(self) -> str:
        """The run as a Mermaid sequence diagram: the flow calls each participant in turn."""
        participants = list(dict.fromkeys(row.participant for row in self.rows))
        lines = ["sequenceDiagram", f"    participant flow as {label(self.workflow_id)}"]
        ids = {name: f"p{position}" for position, name in enumerate(participants)}
        lines.extend(f"    participant {ids[name]} as {label(name)}" for name in participants)
        for row in self.rows:
            who = ids[row.participant]
            call = label(row.action)
            if row.undoes:
                call += f" (undoes {label(row.undoes)})"
            if not row.attempts:
                lines.append(f"    Note over {who}: {call} {label(' '.join(row.notes))}")
            for attempt in row.attempts:
                lines.append(f"    flow->>{who}: {call} attempt {attempt.number}")
                if attempt.outcome in {"completed", "compensated"}:
                    lines.append(f"    {who}-->>flow: {attempt.outcome}")
                elif attempt.outcome == "running":
                    lines.append(f"    Note over {who}: running")
                else:
                    error = label((attempt.error or "").split(":", 1)[0])
                    lines.append(f"    {who}--xflow: {attempt.outcome} {error}".rstrip())
                if attempt.late is not None:
                    lines.append(f"    {who}-->>flow: late result of attempt {attempt.number}")
                if attempt.retried_after is not None:
                    lines.append(f"    Note over {who}: retried")
        lines.append(f"    Note over flow: {self.status.name}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"Timeline({self.workflow_id!r}, {self.status.name}, {len(self.rows)} rows)"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def _attempt_words(attempt: Attempt) -> Iterator[str]:
    yield f"attempt {attempt.number}"
    yield f"{attempt.outcome:<19}"
    yield f"at +{_ms(attempt.start)}"
    yield f"took {_ms(attempt.duration)}"
    if attempt.error:
        yield f"error: {attempt.error}"
    if attempt.late:
        yield f"| late: {attempt.late}"
    if attempt.retried_after:
        yield f"| retried {attempt.retried_after}"


class _Builder:
    """Reads a journal once, in order, into rows."""

    def __init__(self) -> None:
        self.rows: dict[str, TimelineRow] = {}
        self.start: float | None = None
        self.latest = 0.0
        self.notes: list[str] = []
        #: Choreography: message id -> the row of the action that published it.
        self.published: dict[str, TimelineRow] = {}
        self.last_of: dict[str, TimelineRow] = {}

    def row(self, entry: JournalEntry) -> TimelineRow:
        row = self.rows.get(entry.name)
        if row is None:
            row = TimelineRow(entry.name, entry.participant, entry.action, entry.undoes)
            if entry.undoes is None:
                row.generation = self.generation(entry)
            self.rows[entry.name] = row
        return row

    def generation(self, entry: JournalEntry) -> int:
        cause = entry.causation_id
        if cause is None:
            return 1
        row = self.rows.get(cause) or self.published.get(cause)
        if row is None or row.generation is None:
            return 1  # caused by the start message
        return row.generation + 1

    def read(self, entry: JournalEntry) -> None:
        if self.start is None:
            self.start = entry.at
        at = entry.at - self.start
        self.latest = max(self.latest, at)
        kind = entry.kind
        if kind in {EntryKind.WORKFLOW_STARTED, EntryKind.WORKFLOW_FINISHED}:
            return
        if kind is EntryKind.PUBLISHED:
            source = self.last_of.get(entry.participant)
            if source is not None and entry.detail:
                self.published[entry.detail] = source
            return
        if not entry.action:  # an instance-level note (a recovery, a wait)
            self.notes.append(f"{kind.value}{': ' + entry.detail if entry.detail else ''}")
            return
        row = self.row(entry)
        self.last_of[entry.participant] = row
        if kind is EntryKind.STARTED:
            row.attempts.append(Attempt(entry.attempt, at))
        elif kind in _ENDS:
            attempt = self._attempt(row, entry.attempt, at - (entry.duration or 0.0))
            attempt.end = at
            attempt.outcome = _ENDS[kind]
            attempt.error = entry.error
        elif kind is EntryKind.RETRIED:
            previous = self._attempt(row, entry.attempt - 1, at)
            previous.retried_after = entry.detail or "again"
        elif kind is EntryKind.LATE_RESULT:
            self._attempt(row, entry.attempt, at).late = entry.detail or "returned late"
        else:  # skipped, waiting, recovered: about the action, not one attempt
            row.notes.append(f"{kind.value}{': ' + entry.detail if entry.detail else ''}")

    @staticmethod
    def _attempt(row: TimelineRow, number: int, at: float) -> Attempt:
        for attempt in reversed(row.attempts):
            if attempt.number == number:
                return attempt
        attempt = Attempt(number, at)  # its start was recorded elsewhere (another process)
        row.attempts.append(attempt)
        row.attempts.sort(key=lambda a: a.number)
        return attempt

    def ordered(self) -> list[TimelineRow]:
        forward = [row for row in self.rows.values() if row.undoes is None]
        undos = [row for row in self.rows.values() if row.undoes is not None]
        # Siblings of one generation run in an order the runners may choose differently;
        # by name, the rows of one run read the same whichever runner ran it.
        forward.sort(key=lambda row: (row.generation or 0, row.name))
        return forward + undos


def timeline(run: RunView) -> Timeline:
    """The timeline of one run: a `WorkflowRun` or a `ProcessView` (anything with a journal)."""
    if not isinstance(run, RunView):
        raise UsageError(
            f"timeline(run) takes a WorkflowRun or a ProcessView, got {type(run).__name__}"
        )
    builder = _Builder()
    for entry in run.journal:
        builder.read(entry)
    return Timeline(run.workflow_id, run.status, builder.ordered(), builder.latest, builder.notes)
