"""The working state of one flow instance in a choreography, and its journal."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coordination._journal import EntryKind, Journal, Rows
from coordination._messages import Message
from coordination._status import WorkflowStatus

if TYPE_CHECKING:
    from coordination._attempts import Attempts

__all__ = ["Process", "Undo"]

_FINISHED = EntryKind.WORKFLOW_FINISHED.value


@dataclass(frozen=True, slots=True, eq=False)
class Undo:
    """One compensation owed: the wired action it undoes and the message it receives."""

    wired: Any
    message: Any


class Process:
    """What one correlation needs while it runs; released to a small record when finished.

    `settled` (what ran, in order: the saga's undo order), `joins` (inputs waiting for the
    rest), `retrying` (actions waiting for a retry), `late` (late results of timed-out
    attempts, held until their action settles) and `undo_queue` are working state, dropped
    at the end; `outcomes` (which actions settled, and how) stays, for late results;
    `rows` is the journal.
    """

    __slots__ = (
        "correlation_id",
        "done",
        "expected",
        "failure",
        "failure_id",
        "finished_at",
        "joins",
        "late",
        "lock",
        "outcomes",
        "retrying",
        "rows",
        "settled",
        "start",
        "started",
        "started_at",
        "status",
        "undo_queue",
        "undone",
        "updated_at",
    )

    def __init__(
        self,
        correlation_id: str,
        start: type[Message],
        expected: frozenset[str],
        now: float,
    ) -> None:
        self.correlation_id = correlation_id
        self.start = start
        #: Keys of every action reachable from the start: all done = COMPLETED.
        self.expected = expected
        self.status = WorkflowStatus.RUNNING
        self.lock = threading.Lock()
        self.joins: dict[str, dict[int, Message]] = {}
        self.started: set[str] | tuple[str, ...] = set()
        self.done: set[str] | tuple[str, ...] = set()
        self.undone: set[str] | tuple[str, ...] = set()
        self.settled: list[tuple[Any, Any, bool, list[Any]]] = []
        self.undo_queue: list[Undo] = []
        self.retrying: dict[str, tuple[Any, list[Any]]] = {}
        self.late: dict[str, list[tuple[int, bool, Any]]] = {}
        self.outcomes: dict[str, bool] = {}
        self.rows: list[Rows] | tuple[Rows, ...] = [
            (
                EntryKind.WORKFLOW_STARTED.value, "choreography", "", correlation_id, None, 0,
                now, None, None, None, start.__name__,
            )
        ]  # fmt: skip
        self.failure: str | None = None
        #: The message id of the ActionFailed that started the undos (their cause).
        self.failure_id: str | None = None
        self.started_at = now
        self.updated_at = now
        self.finished_at: float | None = None

    def add_rows(self, chunk: Rows) -> None:
        """Append journal rows (entries end to end)."""
        if isinstance(self.rows, tuple):
            self.rows = (*self.rows, chunk)  # finished: rare late entries
        else:
            self.rows.append(chunk)
        self.updated_at = chunk[-5]  # the `at` of the chunk's last entry

    def take_rows(self, attempts: Attempts) -> None:
        """Move the rows an `Attempts` wrote so far into the journal."""
        if attempts.rows:
            self.add_rows(tuple(attempts.rows))
            attempts.rows.clear()

    def undo_for(self, wired: Any, output: Any, completed: bool, inputs: list[Any]) -> Undo | None:
        """The undo owed for one settled action, or None when nothing undoes it."""
        compensation = wired.node.compensation
        if compensation is None:
            return None
        signature = wired.node.signature
        taken = compensation.signature.inputs[0]
        if taken in signature.outputs:
            if not completed:
                return None
            member = output[signature.outputs.index(taken)] if signature.returns_tuple else output
            return Undo(wired, member)
        if not inputs:
            return None
        return Undo(wired, inputs[signature.inputs.index(taken)])

    def undo_plan(self) -> list[Undo]:
        """Undos for everything settled, newest first (call under the lock)."""
        plan: list[Undo] = []
        for wired, output, completed, inputs in reversed(self.settled):
            undo = self.undo_for(wired, output, completed, inputs)
            if undo is not None:
                plan.append(undo)
        return plan

    def settle(self, key: str, succeeded: bool) -> list[tuple[int, bool, Any]]:
        """Record how action `key` ended; the late results held for it (call under the lock)."""
        self.outcomes[key] = succeeded
        return self.late.pop(key, [])

    def fail(self, failure: str) -> list[tuple[Any, int, bool, Any]]:
        """Start compensating: plan the undo of everything settled (call under the lock).

        Actions waiting for a retry have started: their retries are dropped and they count
        as failed (an input-typed undo is owed), and the late results held for them are
        undone too. Returns those late results, `(wired, attempt, ok, value)`, to journal.
        """
        self.status = WorkflowStatus.COMPENSATING
        self.failure = failure
        taken: list[tuple[Any, int, bool, Any]] = []
        for key, (wired, inputs) in self.retrying.items():
            for attempt, ok, value in self.settle(key, False):
                taken.append((wired, attempt, ok, value))
                if ok:
                    self.settled.append((wired, value, True, []))
            self.settled.append((wired, None, False, inputs))
        self.retrying = {}
        self.undo_queue = self.undo_plan()
        return taken

    def finish(self, status: WorkflowStatus, now: float) -> None:
        """Record the end and release the working state (call under the lock)."""
        self.status = status
        self.finished_at = now
        self.add_rows(
            (
                _FINISHED, "choreography", "", self.correlation_id, None, 0, now, None, None,
                self.failure, status.value,
            )
        )  # fmt: skip
        # Release the working state, and keep what stays as tuples: thousands of finished
        # processes are kept for the monitor, and tuples of strings are invisible to the
        # garbage collector while sets and lists are walked at every full collection.
        self.joins = {}
        self.settled = []
        self.undo_queue = []
        self.retrying = {}
        self.late = {}
        self.started = ()
        self.done = tuple(self.done)
        self.undone = tuple(self.undone)
        self.rows = tuple(self.rows)

    def mark_started(self, key: str) -> None:
        """Note that `key` took its inputs (only while running: call under the lock)."""
        assert isinstance(self.started, set), "a finished process starts nothing"
        self.started.add(key)

    def mark_done(self, key: str) -> bool:
        """Note that `key` completed; True when every expected action has (under the lock)."""
        assert isinstance(self.done, set), "a finished process completes nothing"
        self.done.add(key)
        return self.done >= self.expected

    def mark_undone(self, key: str) -> None:
        """Note that `key`'s undo ran (also after the end, for undos owed late)."""
        if isinstance(self.undone, tuple):
            self.undone = (*self.undone, key)
        else:
            self.undone.add(key)

    @property
    def journal(self) -> Journal:
        """Everything that happened to this flow instance, in order."""
        return Journal.from_rows(list(self.rows))

    def __repr__(self) -> str:
        return f"<Process {self.correlation_id} {self.status.name}>"
