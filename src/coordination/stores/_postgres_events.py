"""The PostgreSQL store's event log: the outbox and inbox of durable choreographies.

The writes take the connection of the transaction that holds the instance's row lock
(`PostgresStore` calls them inside its fenced writes), so an envelope, an inbox mark and
the instance's own record commit together. Reads decode every message through the codec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from coordination._messages import Envelope, Message
from coordination.errors import StoreError
from coordination.stores._codec import MAYBE_TEXT, NUMBER, TEXT, Codec, column
from coordination.stores._postgres_database import PostgresDatabase
from coordination.stores._records import DeadLetter

__all__ = ["PostgresEvents"]


class PostgresEvents:
    """Reads and writes of the `events` and `inbox` tables."""

    __slots__ = ("_codec", "_db")

    def __init__(self, db: PostgresDatabase, codec: Codec) -> None:
        self._db = db
        self._codec = codec

    def encode(
        self, workflow_id: str, envelopes: Iterable[Envelope[Message]]
    ) -> list[tuple[Any, ...]]:
        """The rows of `insert`, encoded before any transaction opens."""
        return [
            (envelope.message_id, workflow_id, envelope.causation_id,
             envelope.occurred_at.timestamp(),
             self._codec.message(
                 envelope.message, f"a {type(envelope.message).__name__} of {workflow_id!r}"
             ))
            for envelope in envelopes
        ]  # fmt: skip

    @staticmethod
    def insert(connection: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append encoded envelopes (one with a known message id is kept once)."""
        connection.cursor().executemany(
            "INSERT INTO events (message_id, workflow_id, causation_id, occurred_at, message) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
            rows,
        )

    @staticmethod
    def mark(connection: Any, workflow_id: str, handled: Sequence[tuple[str, str]]) -> None:
        connection.cursor().executemany(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, handled) "
            "VALUES (%s, %s, %s, true) ON CONFLICT (message_id, subscriber) "
            "DO UPDATE SET handled = true",
            [(message_id, subscriber, workflow_id) for message_id, subscriber in handled],
        )

    @staticmethod
    def forget(connection: Any, ids: list[str]) -> None:
        connection.execute("DELETE FROM events WHERE workflow_id = ANY(%s)", (ids,))
        connection.execute("DELETE FROM inbox WHERE workflow_id = ANY(%s)", (ids,))

    @staticmethod
    def count_delivery(connection: Any, workflow_id: str, message_id: str, subscriber: str) -> int:
        row = connection.execute(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, deliveries) "
            "VALUES (%s, %s, %s, 1) ON CONFLICT (message_id, subscriber) DO UPDATE SET "
            "deliveries = inbox.deliveries + 1 RETURNING deliveries",
            (message_id, subscriber, workflow_id),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def dead_letter(
        connection: Any, workflow_id: str, message_id: str, subscriber: str, reason: str
    ) -> None:
        connection.execute(
            "INSERT INTO inbox (message_id, subscriber, workflow_id, dead, error, dead_at) "
            "VALUES (%s, %s, %s, true, %s, extract(epoch FROM clock_timestamp())) "
            "ON CONFLICT (message_id, subscriber) DO UPDATE SET dead = true, "
            "error = excluded.error, dead_at = excluded.dead_at",
            (message_id, subscriber, workflow_id, reason),
        )

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        rows = self._db.fetch(
            "SELECT message_id, causation_id, occurred_at, message FROM events "
            "WHERE workflow_id = %s ORDER BY seq",
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
        rows = self._db.fetch(
            "SELECT message_id, subscriber FROM inbox WHERE workflow_id = %s AND (handled OR dead)",
            (workflow_id,),
            f"reading the inbox of {workflow_id!r}",
        )
        return {(message_id, subscriber) for message_id, subscriber in rows}

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._db.fetch(
            "SELECT message_id, subscriber, deliveries, error, workflow_id FROM inbox "
            "WHERE dead ORDER BY dead_at, message_id",
            (),
            "reading dead letters",
        )
        return [DeadLetter(*row) for row in rows]


def _moment(timestamp: float) -> datetime:
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise StoreError(f"a stored event time {timestamp!r} is out of range") from error
