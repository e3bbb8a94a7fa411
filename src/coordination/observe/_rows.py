"""The rows of a timeline: one per action or undo, each with its attempts."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Attempt", "TimelineRow"]


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
            skipped = any(note.startswith("skipped") for note in self.notes)
            return "skipped" if skipped else "pending"
        return self.attempts[-1].outcome
