"""The journal: what happened in one flow instance, in order, the same shape for both runners.

Entries are small immutable tuples (they are written several times per step, so they must
be cheap); their order is the store's order, never wall-clock time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Any, NamedTuple, overload

__all__ = [
    "ROW_WIDTH",
    "EntryKind",
    "Journal",
    "JournalEntry",
    "Row",
    "Rows",
    "entries_from_rows",
    "row",
]

#: How stores keep an entry: a plain tuple of `JournalEntry`'s fields with `kind` as its
#: string value. Stores keep a step's entries as one flat tuple (`Rows`), several rows end
#: to end. Tuples of strings and numbers are invisible to the garbage collector once it has
#: looked at them, and one flat tuple per step is one object instead of one per entry:
#: runs kept by the thousand must not make every collection walk them (measured: the
#: collector was a third of the orchestrator's overhead).
Row = tuple[
    str, str, str, str, str | None, int, float, float | None, str | None, str | None, str | None
]
#: Entries end to end: `ROW_WIDTH` values per entry.
Rows = tuple[Any, ...]
ROW_WIDTH = 11


def entries_from_rows(chunks: Iterable[Rows]) -> Iterator[JournalEntry]:
    """The entries stored as `chunks` of flat rows, in order."""
    for chunk in chunks:
        for start in range(0, len(chunk), ROW_WIDTH):
            yield JournalEntry(EntryKind(chunk[start]), *chunk[start + 1 : start + ROW_WIDTH])


def row(
    kind: EntryKind,
    participant: str,
    action: str,
    correlation_id: str,
    *,
    causation_id: str | None = None,
    attempt: int = 0,
    at: float = 0.0,
    duration: float | None = None,
    undoes: str | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> Row:
    """One journal row, as stores keep it, built by field name.

    The one place rows are made: a row is a plain tuple for the garbage collector's sake
    (see `Row`), and naming every field here keeps callers from writing positions by hand.
    """
    return (
        _KIND_VALUES[kind], participant, action, correlation_id, causation_id, attempt, at,
        duration, undoes, error, detail,
    )  # fmt: skip


class EntryKind(StrEnum):
    """What an entry records."""

    WORKFLOW_STARTED = "workflow_started"
    PUBLISHED = "published"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRIED = "retried"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    #: A timed-out attempt returned after all: left alone (the step succeeded) or undone.
    LATE_RESULT = "late_result"
    #: An action whose input was never produced (a business outcome took another branch).
    SKIPPED = "skipped"
    #: The instance suspended for an outside message or a timer.
    WAITING = "waiting"
    #: A process took the instance over after its owner stopped (a crash, an expired lease).
    RECOVERED = "recovered"
    WORKFLOW_FINISHED = "workflow_finished"


#: Each kind's plain string (a dict lookup: reading `.value` of an enum member is a Python
#: call, and rows are built several times per step).
_KIND_VALUES: dict[EntryKind, str] = {kind: kind.value for kind in EntryKind}


class JournalEntry(NamedTuple):
    """One thing that happened.

    `participant` and `action` name the interface and method (a compensation entry names
    the compensation method, and `undoes` the action it undoes). `at` is wall-clock time
    (seconds since the epoch) from the runner's clock; `duration` is in seconds.
    """

    kind: EntryKind
    participant: str
    action: str
    correlation_id: str
    causation_id: str | None = None
    attempt: int = 0
    at: float = 0.0
    duration: float | None = None
    undoes: str | None = None
    error: str | None = None
    detail: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> JournalEntry:
        """The entry a store kept as `row`."""
        return cls(EntryKind(row[0]), *row[1:])

    def row(self) -> Row:
        """This entry as a store keeps it."""
        return (self.kind.value, *self[1:])

    @property
    def name(self) -> str:
        """`Participant.action`, or just the flow name for workflow-level entries."""
        return f"{self.participant}.{self.action}" if self.action else self.participant

    def __str__(self) -> str:
        parts = [f"{self.kind.value:<19}", self.name]
        if self.undoes:
            parts.append(f"(undoes {self.undoes})")
        if self.attempt:
            parts.append(f"attempt {self.attempt}")
        if self.duration is not None:
            parts.append(f"{self.duration * 1000:.2f} ms")
        if self.detail:
            parts.append(self.detail)
        if self.error:
            parts.append(f"error: {self.error}")
        return " ".join(parts)


class Journal(Sequence[JournalEntry]):
    """A read-only, ordered list of journal entries with a few ways to look into it."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[JournalEntry] = ()) -> None:
        self._entries = tuple(entries)

    @classmethod
    def from_rows(cls, chunks: Iterable[Rows]) -> Journal:
        """A journal of entries kept by a store as flat rows."""
        return cls(entries_from_rows(chunks))

    @overload
    def __getitem__(self, index: int) -> JournalEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Journal: ...
    def __getitem__(self, index: int | slice) -> JournalEntry | Journal:
        if isinstance(index, slice):
            return Journal(self._entries[index])
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Journal):
            return self._entries == other._entries
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._entries)

    def of_kind(self, *kinds: EntryKind) -> Journal:
        """Only the entries of these kinds, in order."""
        return Journal(entry for entry in self._entries if entry.kind in kinds)

    def names(self, *kinds: EntryKind) -> list[str]:
        """`Participant.action` of each entry of these kinds, in order: handy in assertions."""
        return [entry.name for entry in self._entries if entry.kind in kinds]

    def render(self) -> str:
        """One readable line per entry."""
        return "\n".join(str(entry) for entry in self._entries)

    def __repr__(self) -> str:
        return f"Journal({len(self._entries)} entries)"
