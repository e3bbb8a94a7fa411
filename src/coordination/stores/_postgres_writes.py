"""The PostgreSQL store's writes: each fenced by its run's row lock and claim token.

Every write for a run starts by locking its row under the token it was made with
(`UPDATE ... WHERE token = ...`, or `SELECT ... FOR UPDATE`), so a claim and a write of one
run are ordered one after the other, and a write whose token was superseded changes
nothing. Everything a write stores is encoded before its transaction opens: a value that
cannot be stored is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from coordination.errors import LeaseLost, StoreError
from coordination.stores._codec import Codec
from coordination.stores._postgres_database import Duplicate, PostgresDatabase
from coordination.stores._postgres_events import PostgresEvents
from coordination.stores._records import Write

__all__ = ["FENCE", "PostgresWrites", "refusal"]

_STEP_COLUMNS = "workflow_id, key, outcome, attempts, output, error, journal"
#: One record and nothing else: one statement, fenced by the row lock it takes.
_INSERTFENCED_STEP = (
    f"INSERT INTO steps ({_STEP_COLUMNS}) SELECT workflow_id, %s, %s, %s, %s, %s, %s "
    "FROM runs WHERE workflow_id = %s AND token = %s FOR UPDATE"
)
_INSERT_STEP = f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
FENCE = "SELECT 1 FROM runs WHERE workflow_id = %s AND token = %s FOR UPDATE"


class _Encoded(NamedTuple):
    """A `Write` as the statements it needs, every value already encoded."""

    write: Write
    update: tuple[str, tuple[Any, ...]] | None
    steps: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


def refusal(connection: Any, workflow_id: str, token: int) -> StoreError | LeaseLost:
    """Why a fenced statement changed nothing: the run is gone, or claimed by another."""
    row = connection.execute(
        "SELECT owner, token FROM runs WHERE workflow_id = %s", (workflow_id,)
    ).fetchone()
    if row is None:
        return StoreError(f"no run {workflow_id!r} in this store")
    owner, current = row
    return LeaseLost(
        f"run {workflow_id!r} was claimed by {owner!r} (token {current}, this owner holds "
        f"{token}): this owner stops",
        workflow_id=workflow_id,
    )


class PostgresWrites:
    """`write` and `write_many` of a `PostgresStore`."""

    __slots__ = ("_codec", "_db", "_events")

    def __init__(self, db: PostgresDatabase, codec: Codec, events: PostgresEvents) -> None:
        self._db = db
        self._codec = codec
        self._events = events

    def encode(self, write: Write) -> _Encoded:
        workflow_id = write.workflow_id
        codec = self._codec
        steps = [
            (workflow_id, step.key, step.outcome.value, step.attempts,
             codec.output(step.output, workflow_id, f"the output of {step.key}"),
             step.error, codec.rows(step.rows))
            for step in write.records
        ]  # fmt: skip
        events = self._events.encode(workflow_id, write.events)
        return _Encoded(write, self.run_update(write), steps, events)

    def run_update(self, write: Write) -> tuple[str, tuple[Any, ...]] | None:
        """The fenced UPDATE of the run's row this write needs, if any."""
        finish = write.finish
        codec = self._codec
        if finish is not None:
            finished = finish.status.finished
            return (
                "UPDATE runs SET status = %s, output = %s, error = %s, compensation_error = %s, "
                "parked_reason = %s, updated_at = %s, finished_at = CASE WHEN %s THEN %s ELSE "
                "finished_at END, owner = NULL, lease_expires = NULL, owed = %s "
                "WHERE workflow_id = %s AND token = %s",
                (finish.status.value,
                 codec.output(finish.output, write.workflow_id, "its output"),
                 codec.error(finish.error), codec.error(finish.compensation_error),
                 finish.parked_reason, write.now, finished, write.now,
                 bool(write.owes or not finished), write.workflow_id, write.token),
            )  # fmt: skip
        sets: list[str] = []
        values: list[Any] = []
        if write.status is not None:
            sets.append("status = %s")
            values.append(write.status.value)
        if write.owes is not None:
            sets.append("owed = (%s OR finished_at IS NULL)")
            values.append(bool(write.owes))
        if write.release:
            sets.append("owner = NULL, lease_expires = NULL")
        if not sets:
            return None
        sql = (
            f"UPDATE runs SET {', '.join(sets)}, updated_at = %s "
            f"WHERE workflow_id = %s AND token = %s"
        )
        return sql, (*values, write.now, write.workflow_id, write.token)

    def apply(self, connection: Any, encoded: _Encoded) -> None:
        """Apply one write inside an open transaction; raise (to roll back) if fenced out."""
        write = encoded.write
        # The fence first: it takes the run's row lock, so nothing below races a claim.
        if encoded.update is not None:
            changed = connection.execute(*encoded.update).rowcount
        else:
            changed = len(connection.execute(FENCE, (write.workflow_id, write.token)).fetchall())
        if changed != 1:
            raise refusal(connection, write.workflow_id, write.token)
        if encoded.steps:
            connection.cursor().executemany(_INSERT_STEP, encoded.steps)
        if encoded.events:
            self._events.insert(connection, encoded.events)
        if write.handled:
            self._events.mark(connection, write.workflow_id, write.handled)

    def write(self, write: Write) -> None:
        doing = f"writing run {write.workflow_id!r}"
        encoded = self.encode(write)
        try:
            if (
                len(encoded.steps) == 1
                and encoded.update is None
                and not (encoded.events or write.handled)
            ):
                # One record and nothing else: one fenced statement, committed on its own.
                values = (*encoded.steps[0][1:], write.workflow_id, write.token)
                if self._db.execute(_INSERTFENCED_STEP, values, doing) != 1:
                    raise self._db.run(
                        doing,
                        lambda connection: refusal(connection, write.workflow_id, write.token),
                    )
            else:
                self._db.run(doing, lambda connection: self.apply(connection, encoded))
        except Duplicate as error:
            keys = [step.key for step in write.records]
            raise StoreError(
                f"run {write.workflow_id!r} already has a record for one of {keys}; a step is "
                f"recorded once"
            ) from error
        except (LeaseLost, StoreError):
            self._db.heartbeat.let_go(write.workflow_id)  # no heartbeat for a lost run
            raise
        if write.finish is not None or write.release:
            self._db.heartbeat.let_go(write.workflow_id)

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        batch = [self.encode(write) for write in writes]

        def body(connection: Any) -> list[str]:
            refused: list[str] = []
            for encoded in batch:
                try:
                    with connection.transaction():  # a savepoint: one write rolls back alone
                        self.apply(connection, encoded)
                except LeaseLost:
                    refused.append(encoded.write.workflow_id)
            return refused

        refused = self._db.run(f"writing {len(writes)} runs", body)
        for write in writes:
            if write.workflow_id in refused or write.finish is not None or write.release:
                self._db.heartbeat.let_go(write.workflow_id)
        return refused
