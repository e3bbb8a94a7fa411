"""The SQLite store's event log, for durable choreographies.

Every envelope a durable choreography publishes is appended here (the outbox) before it is
delivered. Handling one envelope commits, in one transaction, its inbox mark (message,
subscriber), the envelopes the handling produced, and the flow instance's state. After a
crash, what has no inbox mark is delivered again; a delivery that keeps coming back is set
aside as a dead letter instead of looping.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from coordination._messages import Envelope, Message, to_json
from coordination._status import WorkflowStatus
from coordination.errors import MessageError, StoreError

__all__ = ["EVENT_SCHEMA", "DeadLetter", "SQLiteEventLog"]

EVENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    correlation_id TEXT NOT NULL,
    causation_id TEXT,
    occurred_at TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_correlation ON events (correlation_id, seq);
CREATE TABLE IF NOT EXISTS inbox (
    message_id TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (message_id, subscriber)
);
CREATE TABLE IF NOT EXISTS processes (
    correlation_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""


class DeadLetter(NamedTuple):
    """A delivery set aside after it kept failing or killing its process."""

    message_id: str
    subscriber: str
    deliveries: int
    error: str | None


def _encode_envelope(envelope: Envelope[Message]) -> tuple[Any, ...]:
    try:
        message = to_json(envelope.message)
    except MessageError as error:
        raise StoreError(f"cannot store {type(envelope.message).__name__}: {error}") from error
    return (
        envelope.message_id,
        envelope.correlation_id,
        envelope.causation_id,
        envelope.occurred_at.isoformat(),
        message,
    )


class SQLiteEventLog:
    """Event log, inbox and flow instance state (mixed into `SQLiteStore`, which has these)."""

    path: Path
    _lock: threading.RLock
    _connection: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[sqlite3.Cursor]]
    _decode: Callable[[str, str, str], Message]

    def _insert_events(
        self, cursor: sqlite3.Cursor, envelopes: Iterable[Envelope[Message]]
    ) -> None:
        cursor.executemany(
            "INSERT OR IGNORE INTO events (message_id, correlation_id, causation_id, "
            "occurred_at, message) VALUES (?, ?, ?, ?, ?)",
            [_encode_envelope(envelope) for envelope in envelopes],
        )

    def _save_state(
        self,
        cursor: sqlite3.Cursor,
        correlation_id: str,
        status: WorkflowStatus,
        state: dict[str, Any],
        now: float,
    ) -> None:
        cursor.execute(
            "INSERT INTO processes (correlation_id, status, state, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (correlation_id) DO UPDATE SET "
            "status = excluded.status, state = excluded.state, updated_at = excluded.updated_at",
            (correlation_id, status.value, json.dumps(state), now),
        )

    def save_process(
        self,
        correlation_id: str,
        status: WorkflowStatus,
        state: dict[str, Any],
        *,
        now: float,
        events: Iterable[Envelope[Message]] = (),
    ) -> None:
        """Save a flow instance's state, and append `events` to the log, in one commit."""
        try:
            with self._transaction() as cursor:
                self._insert_events(cursor, events)
                self._save_state(cursor, correlation_id, status, state, now)
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error

    def record_handled(
        self,
        message_id: str,
        subscriber: str,
        correlation_id: str,
        status: WorkflowStatus,
        state: dict[str, Any],
        *,
        now: float,
        events: Iterable[Envelope[Message]] = (),
    ) -> None:
        """In one commit: mark `message_id` handled by `subscriber`, append what it produced
        (`events`) and save the flow instance's state."""
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "INSERT INTO inbox (message_id, subscriber, handled) VALUES (?, ?, 1) "
                    "ON CONFLICT (message_id, subscriber) DO UPDATE SET handled = 1",
                    (message_id, subscriber),
                )
                self._insert_events(cursor, events)
                self._save_state(cursor, correlation_id, status, state, now)
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error

    def unfinished_processes(self) -> list[tuple[str, dict[str, Any]]]:
        """(correlation id, state) of every flow instance not finished, oldest first."""
        finished = tuple(status.value for status in WorkflowStatus if status.finished)
        marks = ", ".join("?" for _ in finished)
        rows = self._query(
            f"SELECT correlation_id, state FROM processes WHERE status NOT IN ({marks}) "
            f"ORDER BY updated_at",
            finished,
        )
        return [(correlation_id, json.loads(state)) for correlation_id, state in rows]

    def process_status(self, correlation_id: str) -> WorkflowStatus | None:
        """The stored status of a flow instance, or None if it was never stored."""
        rows = self._query(
            "SELECT status FROM processes WHERE correlation_id = ?", (correlation_id,)
        )
        return WorkflowStatus(rows[0][0]) if rows else None

    def events_of(self, correlation_id: str) -> Iterator[Envelope[Message]]:
        """The logged envelopes of one flow instance, in the order they were appended."""
        rows = self._query(
            "SELECT message_id, correlation_id, causation_id, occurred_at, message FROM events "
            "WHERE correlation_id = ? ORDER BY seq",
            (correlation_id,),
        )
        for message_id, correlation, causation, occurred_at, message in rows:
            decoded = self._decode(message, correlation, "event")
            yield Envelope(
                decoded, correlation, causation, message_id, datetime.fromisoformat(occurred_at)
            )

    def handled(self, correlation_id: str) -> set[tuple[str, str]]:
        """(message id, subscriber) pairs of one flow instance already handled or dead."""
        rows = self._query(
            "SELECT inbox.message_id, inbox.subscriber FROM inbox JOIN events "
            "ON events.message_id = inbox.message_id "
            "WHERE events.correlation_id = ? AND (inbox.handled = 1 OR inbox.dead = 1)",
            (correlation_id,),
        )
        return {(message_id, subscriber) for message_id, subscriber in rows}

    def count_delivery(self, message_id: str, subscriber: str) -> int:
        """Count one more delivery of `message_id` to `subscriber`; the count so far."""
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "INSERT INTO inbox (message_id, subscriber, deliveries) VALUES (?, ?, 1) "
                    "ON CONFLICT (message_id, subscriber) DO UPDATE SET "
                    "deliveries = deliveries + 1",
                    (message_id, subscriber),
                )
                row = cursor.execute(
                    "SELECT deliveries FROM inbox WHERE message_id = ? AND subscriber = ?",
                    (message_id, subscriber),
                ).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        return int(row[0])

    def dead_letter(self, message_id: str, subscriber: str, error: str) -> None:
        """Set a delivery aside: it is never delivered again by recovery."""
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "INSERT INTO inbox (message_id, subscriber, dead, error) VALUES (?, ?, 1, ?) "
                    "ON CONFLICT (message_id, subscriber) DO UPDATE SET dead = 1, "
                    "error = excluded.error",
                    (message_id, subscriber, error),
                )
        except sqlite3.Error as sqlite_error:
            raise StoreError(f"SQLite store {self.path}: {sqlite_error}") from sqlite_error

    def dead_letters(self) -> list[DeadLetter]:
        """Every delivery set aside, oldest first."""
        rows = self._query(
            "SELECT message_id, subscriber, deliveries, error FROM inbox WHERE dead = 1 "
            "ORDER BY rowid",
            (),
        )
        return [DeadLetter(*row) for row in rows]

    def _query(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return list(self._connection.execute(sql, parameters))
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
