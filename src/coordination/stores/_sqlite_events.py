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
    updated_at REAL NOT NULL,
    owner TEXT,
    lease_expires REAL
)
"""

_FINISHED = tuple(status.value for status in WorkflowStatus if status.finished)
_NOT_FINISHED = f"status NOT IN ({', '.join(repr(value) for value in _FINISHED)})"


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
    _keep_alive: Callable[[str], None]
    lease: float

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
        owner: str | None,
    ) -> None:
        # The first save makes `owner` the flow's owner; a finished flow has none.
        owner = None if status.finished else owner
        cursor.execute(
            "INSERT INTO processes (correlation_id, status, state, updated_at, owner, "
            "lease_expires) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (correlation_id) DO UPDATE "
            "SET status = excluded.status, state = excluded.state, "
            "updated_at = excluded.updated_at, owner = CASE WHEN excluded.owner IS NULL "
            "THEN NULL ELSE processes.owner END",
            (correlation_id, status.value, json.dumps(state), now, owner,
             None if owner is None else now + self.lease),
        )  # fmt: skip
        if owner is not None:
            self._keep_alive(owner)

    def save_process(
        self,
        correlation_id: str,
        status: WorkflowStatus,
        state: dict[str, Any],
        *,
        now: float,
        events: Iterable[Envelope[Message]] = (),
        owner: str | None = None,
    ) -> None:
        """Save a flow instance's state, and append `events` to the log, in one commit."""
        try:
            with self._transaction() as cursor:
                self._insert_events(cursor, events)
                self._save_state(cursor, correlation_id, status, state, now, owner)
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
        owner: str | None = None,
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
                self._save_state(cursor, correlation_id, status, state, now, owner)
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error

    def unfinished_processes(self) -> list[tuple[str, str | None]]:
        """(correlation id, owner) of every flow instance not finished, oldest first."""
        rows = self._query(
            f"SELECT correlation_id, owner FROM processes WHERE {_NOT_FINISHED} "
            f"ORDER BY updated_at",
            (),
        )
        return [(correlation_id, owner) for correlation_id, owner in rows]

    def claim_process(
        self, correlation_id: str, owner: str, *, now: float, replacing: str | None = None
    ) -> dict[str, Any] | None:
        """Make `owner` the owner of an unfinished flow instance; its state, or None.

        Claims one nobody owns, whose lease expired, or owned by `replacing` (known dead):
        a conditional update, so two recovering processes never both take one.
        """
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    f"UPDATE processes SET owner = ?, lease_expires = ? WHERE correlation_id = ? "
                    f"AND {_NOT_FINISHED} AND (owner IS NULL OR lease_expires < ? OR owner = ?)",
                    (owner, now + self.lease, correlation_id, now, replacing),
                )
                if cursor.rowcount != 1:
                    return None
                (state,) = cursor.execute(
                    "SELECT state FROM processes WHERE correlation_id = ?", (correlation_id,)
                ).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        self._keep_alive(owner)
        loaded: dict[str, Any] = json.loads(state)
        return loaded

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
