"""The SQLite store's event log: the outbox and inbox of durable choreographies.

Every envelope a durable choreography publishes is appended here before it is delivered,
and each handling's inbox mark is written in the same transaction as the instance's own
record; `SQLiteStore` calls these with the cursor of that transaction. After a crash,
recovery reads the log back; a delivery that keeps coming back is set aside as a dead letter
instead of looping.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from coordination._messages import Envelope, Message
from coordination.errors import StoreError
from coordination.stores._codec import INTEGER, MAYBE_TEXT, NUMBER, TEXT, Codec, column
from coordination.stores._records import DeadLetter
from coordination.stores._sqlite_database import SQLiteDatabase

__all__ = ["SQLiteEvents"]


class SQLiteEvents:
    """Reads and writes of the `events` and `inbox` tables."""

    __slots__ = ("_codec", "_db")

    def __init__(self, db: SQLiteDatabase, codec: Codec) -> None:
        self._db = db
        self._codec = codec

    def insert(
        self, cursor: sqlite3.Cursor, workflow_id: str, envelopes: Iterable[Envelope[Message]]
    ) -> None:
        """Append envelopes (one with a known message id is kept once)."""
        rows = []
        for envelope in envelopes:
            message = self._codec.message(
                envelope.message, f"a {type(envelope.message).__name__} of {workflow_id!r}"
            )
            rows.append(
                (envelope.message_id, workflow_id, workflow_id, envelope.causation_id,
                 envelope.timestamp, message)
            )  # fmt: skip
        cursor.executemany(
            "INSERT OR IGNORE INTO events (message_id, workflow_id, seq, causation_id, "
            "occurred_at, message) VALUES (?, ?, (SELECT COUNT(*) FROM events WHERE "
            "workflow_id = ?), ?, ?, ?)",
            rows,
        )

    def mark(
        self, cursor: sqlite3.Cursor, workflow_id: str, handled: Sequence[tuple[str, str]]
    ) -> None:
        cursor.executemany(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, handled) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (message_id, subscriber) DO UPDATE SET handled = 1",
            [(message_id, subscriber, workflow_id) for message_id, subscriber in handled],
        )

    def forget(self, cursor: sqlite3.Cursor, ids: Sequence[tuple[str]]) -> None:
        cursor.executemany("DELETE FROM events WHERE workflow_id = ?", ids)
        cursor.executemany("DELETE FROM inbox WHERE workflow_id = ?", ids)

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        rows = self._db.query(
            "SELECT message_id, causation_id, occurred_at, message FROM events "
            "WHERE workflow_id = ? ORDER BY seq",
            (workflow_id,),
            f"reading the events of {workflow_id!r}",
        )
        envelopes: list[Envelope[Message]] = []
        for message_id, causation_id, occurred_at, text in rows:
            column(message_id, TEXT, workflow_id, "event id")
            column(causation_id, MAYBE_TEXT, workflow_id, f"cause of event {message_id}")
            message = self._codec.read_message(text, workflow_id, f"event {message_id}")
            column(occurred_at, NUMBER, workflow_id, f"time of event {message_id}")
            envelopes.append(
                Envelope(message, workflow_id, causation_id, message_id, _moment(occurred_at))
            )
        return envelopes

    def handled_of(self, workflow_id: str) -> set[tuple[str, str]]:
        rows = self._db.query(
            "SELECT message_id, subscriber FROM inbox WHERE workflow_id = ? "
            "AND (handled = 1 OR dead = 1)",
            (workflow_id,),
            f"reading the inbox of {workflow_id!r}",
        )
        return {(message_id, subscriber) for message_id, subscriber in rows}

    @staticmethod
    def count_delivery(
        cursor: sqlite3.Cursor, workflow_id: str, message_id: str, subscriber: str
    ) -> int:
        cursor.execute(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, deliveries) "
            "VALUES (?, ?, ?, 1) ON CONFLICT (message_id, subscriber) DO UPDATE SET "
            "deliveries = deliveries + 1",
            (message_id, subscriber, workflow_id),
        )
        row = cursor.execute(
            "SELECT deliveries FROM inbox WHERE message_id = ? AND subscriber = ?",
            (message_id, subscriber),
        ).fetchone()
        # A damaged or tampered file can lose the row it just wrote (a broken index, a
        # trigger of someone else's): refused like any unreadable row, and rolled back.
        if row is None:
            raise StoreError(
                f"run {workflow_id!r}: the inbox lost the delivery of {message_id!r} to "
                f"{subscriber!r} as it counted it; the file is damaged, restore it from a backup"
            )
        return int(column(row[0], INTEGER, workflow_id, "delivery count"))

    @staticmethod
    def dead_letter(
        cursor: sqlite3.Cursor, workflow_id: str, message_id: str, subscriber: str, reason: str
    ) -> None:
        cursor.execute(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, dead, error, dead_at) "
            "VALUES (?, ?, ?, 1, ?, julianday('now')) ON CONFLICT (message_id, subscriber) "
            "DO UPDATE SET dead = 1, error = excluded.error, dead_at = excluded.dead_at",
            (message_id, subscriber, workflow_id, reason),
        )

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._db.query(
            "SELECT message_id, subscriber, deliveries, error, workflow_id FROM inbox "
            "WHERE dead = 1 ORDER BY dead_at, message_id",
            (),
            "reading dead letters",
        )
        return [DeadLetter(*row) for row in rows]


def _moment(timestamp: float) -> Any:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise StoreError(f"a stored event time {timestamp!r} is out of range") from error
