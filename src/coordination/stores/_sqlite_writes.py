"""The SQLite store's writes: each fenced by its run's claim token, committed whole or not at all.

A write of one step record and nothing else is one statement (`INSERT ... SELECT ... WHERE`
the run still has that token), committed on its own; a write of more is one `BEGIN
IMMEDIATE` transaction that starts with the fence, so a write refused there changed
nothing. Writes of several runs share one transaction (`write_many`: a batch, or threads
writing at once through the store's group commit); a refused one is named, the others
land.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordination.errors import LeaseLost, StoreError
from coordination.stores._codec import Codec
from coordination.stores._records import StepRecord, Write
from coordination.stores._sqlite_database import Duplicate, SQLiteDatabase
from coordination.stores._sqlite_events import SQLiteEvents

__all__ = ["SQLiteWrites"]

#: One b-tree keyed (run, step): the key enforces one record per step, `seq` (the run's
#: count of records so far) keeps their order, and the WHERE is the fence.
_INSERT_STEP = (
    "INSERT INTO steps (workflow_id, key, seq, outcome, attempts, output, error, rows) "
    "SELECT ?, ?, (SELECT COUNT(*) FROM steps WHERE workflow_id = ?), ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM runs WHERE workflow_id = ? AND token = ?)"
)


class SQLiteWrites:
    """`write` and `write_many` of a `SQLiteStore` (and the fence's refusal, shared)."""

    __slots__ = ("_codec", "_db", "_events", "_path")

    def __init__(self, db: SQLiteDatabase, codec: Codec, events: SQLiteEvents, path: Path) -> None:
        self._db = db
        self._codec = codec
        self._events = events
        self._path = path

    def step_values(self, write: Write, step: StepRecord) -> tuple[Any, ...]:
        workflow_id = write.workflow_id
        output = self._codec.output(step.output, workflow_id, f"the output of {step.key}")
        rows = self._codec.rows(step.rows)
        return (workflow_id, step.key, workflow_id, step.outcome.value, step.attempts,
                output, step.error, rows, workflow_id, write.token)  # fmt: skip

    def run_update(self, write: Write) -> tuple[str, tuple[Any, ...]] | None:
        """The fenced UPDATE of the run's row this write needs, if any."""
        finish = write.finish
        codec = self._codec
        if finish is not None:
            finished = finish.status.finished
            return (
                "UPDATE runs SET status = ?, output = ?, error = ?, compensation_error = ?, "
                "parked_reason = ?, updated_at = ?, finished_at = CASE WHEN ? THEN ? ELSE "
                "finished_at END, owner = NULL, lease_expires = NULL, owed = ? "
                "WHERE workflow_id = ? AND token = ?",
                (finish.status.value,
                 codec.output(finish.output, write.workflow_id, "its output"),
                 codec.error(finish.error), codec.error(finish.compensation_error),
                 finish.parked_reason, write.now, finished, write.now,
                 1 if (write.owes or not finished) else 0, write.workflow_id, write.token),
            )  # fmt: skip
        sets: list[str] = []
        values: list[Any] = []
        if write.status is not None:
            sets.append("status = ?")
            values.append(write.status.value)
        if write.owes is not None:
            sets.append("owed = CASE WHEN ? OR finished_at IS NULL THEN 1 ELSE 0 END")
            values.append(1 if write.owes else 0)
        if write.release:
            sets.append("owner = NULL, lease_expires = NULL")
        if not sets:
            return None
        sql = (
            f"UPDATE runs SET {', '.join(sets)}, updated_at = ? WHERE workflow_id = ? AND token = ?"
        )
        return sql, (*values, write.now, write.workflow_id, write.token)

    def refusal(self, cursor: Any, workflow_id: str, token: int) -> StoreError | LeaseLost:
        """Why a fenced statement changed nothing: the run is gone, or claimed by another."""
        row = cursor.execute(
            "SELECT owner, token FROM runs WHERE workflow_id = ?", (workflow_id,)
        ).fetchone()
        if row is None:
            return StoreError(f"no run {workflow_id!r} in {self._path}")
        owner, current = row
        return LeaseLost(
            f"run {workflow_id!r} was claimed by {owner!r} (token {current}, this owner holds "
            f"{token}): this owner stops",
            workflow_id=workflow_id,
        )

    def apply(self, cursor: Any, write: Write) -> None:
        """Apply one write inside an open transaction; raise (to roll back) if fenced out."""
        update = self.run_update(write)
        fenced = False
        if update is not None:
            cursor.execute(*update)
            if cursor.rowcount != 1:
                raise self.refusal(cursor, write.workflow_id, write.token)
            fenced = True
        for step in write.records:
            cursor.execute(_INSERT_STEP, self.step_values(write, step))
            if cursor.rowcount != 1:
                raise self.refusal(cursor, write.workflow_id, write.token)
            fenced = True
        if not fenced:
            row = cursor.execute(
                "SELECT 1 FROM runs WHERE workflow_id = ? AND token = ?",
                (write.workflow_id, write.token),
            ).fetchone()
            if row is None:
                raise self.refusal(cursor, write.workflow_id, write.token)
        if write.events:
            self._events.insert(cursor, write.workflow_id, write.events)
        if write.handled:
            self._events.mark(cursor, write.workflow_id, write.handled)

    def write_alone(self, write: Write) -> None:
        doing = f"writing run {write.workflow_id!r}"
        try:
            if (
                len(write.records) == 1
                and self.run_update(write) is None
                and not (write.events or write.handled)
            ):
                # One record and nothing else: one fenced statement, committed on its own.
                changed = self._db.execute(
                    _INSERT_STEP, self.step_values(write, write.records[0]), doing
                )
                if changed != 1:
                    with self._db.transaction(doing) as cursor:
                        raise self.refusal(cursor, write.workflow_id, write.token)
            else:
                with self._db.transaction(doing) as cursor:
                    self.apply(cursor, write)
        except Duplicate as error:
            keys = [step.key for step in write.records]
            raise StoreError(
                f"run {write.workflow_id!r} already has a record for one of {keys}; a step is "
                f"recorded once"
            ) from error
        except (LeaseLost, StoreError):
            self._db.heartbeat.let_go(write.workflow_id)  # no heartbeat for a run this owner lost
            raise
        if write.finish is not None or write.release:
            self._db.heartbeat.let_go(write.workflow_id)

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        refused: list[str] = []
        with self._db.transaction(f"writing {len(writes)} runs") as cursor:
            for write in writes:
                # A write's first statement is its fence (see `apply`): refused there, it
                # changed nothing, so no savepoint is needed to take it back.
                try:
                    self.apply(cursor, write)
                except LeaseLost:
                    refused.append(write.workflow_id)
        for write in writes:
            if write.workflow_id in refused or write.finish is not None or write.release:
                self._db.heartbeat.let_go(write.workflow_id)
        return refused
