"""SQLiteStore: flow instances in one SQLite file (WAL), the embedded durable default.

It says what to read and write; the `SQLiteDatabase` it composes says how (connection,
lock, transactions, heartbeat, the one place errors are mapped), and the `Codec` turns
values into JSON and back. A write of one step record is one statement, fenced by its
claim token (`INSERT ... SELECT ... WHERE` the run still has that token), committed on its
own; a write of more is one `BEGIN IMMEDIATE` transaction that starts with the fence.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.errors import LeaseLost, StoreError
from coordination.stores._codec import (
    INTEGER,
    MAYBE_NUMBER,
    MAYBE_TEXT,
    NUMBER,
    TEXT,
    Codec,
    column,
)
from coordination.stores._group import GroupCommit
from coordination.stores._records import (
    DeadLetter,
    OwedRun,
    Request,
    RunRecord,
    StepOutcome,
    StepRecord,
    Write,
)
from coordination.stores._sqlite_database import Duplicate, SQLiteDatabase
from coordination.stores._sqlite_events import SQLiteEvents
from coordination.stores._sqlite_queue import SQLiteQueue
from coordination.stores._sqlite_schema import RUN_COLUMNS, SCHEMA_VERSION
from coordination.stores._starts import started, started_each

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

#: One b-tree keyed (run, step): the key enforces one record per step, `seq` (the run's
#: count of records so far) keeps their order, and the WHERE is the fence.
_INSERT_STEP = (
    "INSERT INTO steps (workflow_id, key, seq, outcome, attempts, output, error, rows) "
    "SELECT ?, ?, (SELECT COUNT(*) FROM steps WHERE workflow_id = ?), ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM runs WHERE workflow_id = ? AND token = ?)"
)
#: A run is created once: a second start of the same id changes nothing (and is told so).
_INSERT_RUN = (
    "INSERT OR IGNORE INTO runs (workflow_id, flow, start, status, owner, token, "
    "lease_expires, owed, created_at, updated_at, shape) VALUES (?, ?, ?, ?, ?, 1, ?, 1, ?, ?, ?)"
)
_RUNNING = WorkflowStatus.RUNNING.value
_FORGETTABLE = tuple(
    s.value
    for s in (WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED, WorkflowStatus.CANCELLED)
)


class SQLiteStore:
    """Runs and a choreography's event log in one SQLite file; safe for threads and processes.

    `synchronous="NORMAL"` (the default) survives a killed process; `"FULL"` also survives
    power loss, at the cost of a disk flush per commit. The file is created owner-only
    (0600). A file that is not ours, is corrupt, or has another schema raises `StoreError`
    and is left untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
        lease: float = 30.0,
    ) -> None:
        if not isinstance(synchronous, str) or synchronous.upper() not in (
            "NORMAL",
            "FULL",
            "EXTRA",
        ):
            raise StoreError(
                f"SQLiteStore(synchronous={synchronous!r}): use 'NORMAL' (survives a killed "
                f"process) or 'FULL' (also survives power loss)"
            )
        if not lease > 0:
            raise StoreError(f"SQLiteStore(lease={lease!r}) must be > 0 seconds")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.lease = lease
        self._codec = Codec()
        self._shapes: dict[str, str] = {}  # id -> text, both ways known to be stored
        self._shape_ids: dict[str, str] = {}  # text -> id, of shapes known to be stored
        self._db = SQLiteDatabase(
            self.path, synchronous=self.synchronous, busy_timeout=busy_timeout, lease=lease
        )
        self._queue = SQLiteQueue(self._db)
        self._events = SQLiteEvents(self._db, self._codec)
        self._group = GroupCommit(self._write_alone, self.write_many)

    def close(self) -> None:
        """Stop the background threads and close the connection (the file stays as it is)."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Learn the message types runs of a flow store; `StoreError` for an unreadable one."""
        self._codec.register(types)

    # -- starting and claiming ----------------------------------------------------------------

    def _shape_id(self, cursor: Any, shape: str) -> str:
        """Store the flow's shape once per version (inside the starting transaction); runs
        reference it by a hash. Known as stored only once that transaction commits."""
        shape_id = hashlib.sha256(shape.encode()).hexdigest()[:32]
        if shape_id not in self._shapes:
            cursor.execute(
                "INSERT OR IGNORE INTO shapes (id, shape) VALUES (?, ?)", (shape_id, shape)
            )
        return shape_id

    def start_run(
        self,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        shape: str | None = None,
        events: Sequence[Envelope[Message]] = (),
    ) -> tuple[RunRecord, int | None]:
        encoded = self._codec.message(start, f"the start message of {workflow_id!r}")
        lease_expires = now + self.lease
        doing = f"starting run {workflow_id!r}"
        shape_id = self._shape_ids.get(shape) if shape is not None else None
        if not events and (shape is None or shape_id is not None):
            # The common case, one statement committed on its own: no events to log with
            # it, and the flow's shape is stored already.
            created = self._db.execute(
                _INSERT_RUN, (workflow_id, flow, encoded, _RUNNING, owner, lease_expires, now,
                              now, shape_id), doing,
            ) == 1  # fmt: skip
        else:
            with self._db.transaction(doing) as cursor:
                shape_id = self._shape_id(cursor, shape) if shape is not None else None
                cursor.execute(
                    _INSERT_RUN, (workflow_id, flow, encoded, _RUNNING, owner, lease_expires,
                                  now, now, shape_id),
                )  # fmt: skip
                created = cursor.rowcount == 1
                if created and events:
                    self._events.insert(cursor, workflow_id, events)
            if shape is not None and shape_id is not None:
                self._shape_ids[shape] = shape_id  # committed: known to be stored
                self._shapes[shape_id] = shape
        return started(
            created, workflow_id, flow, start, owner=owner, now=now,
            lease_expires=lease_expires, shape=shape, hold=self._db.heartbeat.hold,
            stored=self.get_run,
        )  # fmt: skip

    def start_many(
        self,
        flow: str,
        starts: Sequence[tuple[str, Message]],
        *,
        owner: str,
        now: float,
        shape: str | None = None,
    ) -> list[tuple[RunRecord, int | None]]:
        encoded = self._codec.starts(starts)
        lease_expires = now + self.lease
        created: list[bool] = []
        with self._db.transaction(f"starting {len(starts)} runs of {flow!r}") as cursor:
            shape_id = self._shape_id(cursor, shape) if shape is not None else None
            for (workflow_id, _), text in zip(starts, encoded, strict=True):
                cursor.execute(
                    _INSERT_RUN, (workflow_id, flow, text, _RUNNING, owner, lease_expires, now,
                                  now, shape_id),
                )  # fmt: skip
                created.append(cursor.rowcount == 1)
        if shape is not None and shape_id is not None:
            self._shape_ids[shape] = shape_id  # committed: known to be stored
            self._shapes[shape_id] = shape
        heartbeat = self._db.heartbeat
        return started_each(
            starts, created, flow, owner=owner, now=now, lease_expires=lease_expires,
            shape=shape, hold=heartbeat.hold, stored=self.get_run,
        )  # fmt: skip

    def claim_run(
        self,
        workflow_id: str,
        owner: str,
        *,
        now: float,
        replacing: str | None = None,
        reopen: tuple[WorkflowStatus, WorkflowStatus] | None = None,
    ) -> int | None:
        lease_expires = now + self.lease
        with self._db.transaction(f"claiming run {workflow_id!r}") as cursor:
            # An owner that is not text, or one without a lease that is a number (a damaged
            # row: every claim sets both), holds nothing: claimed, then read, then reported.
            if reopen is None:
                cursor.execute(
                    "UPDATE runs SET owner = ?, token = token + 1, lease_expires = ?, "
                    "updated_at = ? WHERE workflow_id = ? AND owed = 1 AND (owner IS NULL "
                    "OR lease_expires < ? OR owner = ? OR typeof(owner) != 'text' "
                    "OR typeof(lease_expires) NOT IN ('integer', 'real'))",
                    (owner, lease_expires, now, workflow_id, now, replacing),
                )
            else:
                expected, status = reopen
                cursor.execute(
                    "UPDATE runs SET owner = ?, token = token + 1, lease_expires = ?, "
                    "updated_at = ?, status = ?, owed = 1, finished_at = NULL, recoveries = 0, "
                    "recovery_step = NULL, parked_reason = NULL WHERE workflow_id = ? AND "
                    "status = ? AND (owner IS NULL OR owner = ? OR owner = ?)",
                    (owner, lease_expires, now, status.value, workflow_id, expected.value,
                     owner, replacing),
                )  # fmt: skip
            if cursor.rowcount != 1:
                return None
            (token,) = cursor.execute(
                "SELECT token FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
            # A damaged token (text, a float, one past 64 bits) would fence nothing: refused,
            # and the claim rolled back.
            column(token, INTEGER, workflow_id, "token")
        self._db.heartbeat.hold(workflow_id, token)
        return int(token)

    def release_run(self, workflow_id: str, token: int, *, now: float) -> None:
        self._db.heartbeat.let_go(workflow_id)
        self._db.execute(
            "UPDATE runs SET owner = NULL, lease_expires = NULL, updated_at = ? "
            "WHERE workflow_id = ? AND token = ?",
            (now, workflow_id, token),
            f"releasing run {workflow_id!r}",
        )

    def note_recovery(self, workflow_id: str, token: int, position: str) -> int:
        with self._db.transaction(f"counting a recovery of {workflow_id!r}") as cursor:
            cursor.execute(
                "UPDATE runs SET recoveries = CASE WHEN recovery_step = ? "
                "THEN recoveries + 1 ELSE 1 END, recovery_step = ? "
                "WHERE workflow_id = ? AND token = ?",
                (position, position, workflow_id, token),
            )
            if cursor.rowcount != 1:
                raise self._refusal(cursor, workflow_id, token)
            (count,) = cursor.execute(
                "SELECT recoveries FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
        return int(count)

    # -- writing --------------------------------------------------------------------------

    def _step_values(self, write: Write, step: StepRecord) -> tuple[Any, ...]:
        workflow_id = write.workflow_id
        output = self._codec.output(step.output, workflow_id, f"the output of {step.key}")
        rows = self._codec.rows(step.rows)
        return (workflow_id, step.key, workflow_id, step.outcome.value, step.attempts,
                output, step.error, rows, workflow_id, write.token)  # fmt: skip

    def _run_update(self, write: Write) -> tuple[str, tuple[Any, ...]] | None:
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

    def _refusal(self, cursor: Any, workflow_id: str, token: int) -> StoreError | LeaseLost:
        """Why a fenced statement changed nothing: the run is gone, or claimed by another."""
        row = cursor.execute(
            "SELECT owner, token FROM runs WHERE workflow_id = ?", (workflow_id,)
        ).fetchone()
        if row is None:
            return StoreError(f"no run {workflow_id!r} in {self.path}")
        owner, current = row
        return LeaseLost(
            f"run {workflow_id!r} was claimed by {owner!r} (token {current}, this owner holds "
            f"{token}): this owner stops",
            workflow_id=workflow_id,
        )

    def _apply(self, cursor: Any, write: Write) -> None:
        """Apply one write inside an open transaction; raise (to roll back) if fenced out."""
        update = self._run_update(write)
        fenced = False
        if update is not None:
            cursor.execute(*update)
            if cursor.rowcount != 1:
                raise self._refusal(cursor, write.workflow_id, write.token)
            fenced = True
        for step in write.records:
            cursor.execute(_INSERT_STEP, self._step_values(write, step))
            if cursor.rowcount != 1:
                raise self._refusal(cursor, write.workflow_id, write.token)
            fenced = True
        if not fenced:
            row = cursor.execute(
                "SELECT 1 FROM runs WHERE workflow_id = ? AND token = ?",
                (write.workflow_id, write.token),
            ).fetchone()
            if row is None:
                raise self._refusal(cursor, write.workflow_id, write.token)
        if write.events:
            self._events.insert(cursor, write.workflow_id, write.events)
        if write.handled:
            self._events.mark(cursor, write.workflow_id, write.handled)

    def write(self, write: Write) -> None:
        # Threads writing at the same time share a commit; a lone writer writes at once.
        self._group.write(write)

    def _write_alone(self, write: Write) -> None:
        doing = f"writing run {write.workflow_id!r}"
        try:
            if (
                len(write.records) == 1
                and self._run_update(write) is None
                and not (write.events or write.handled)
            ):
                # One record and nothing else: one fenced statement, committed on its own.
                changed = self._db.execute(
                    _INSERT_STEP, self._step_values(write, write.records[0]), doing
                )
                if changed != 1:
                    with self._db.transaction(doing) as cursor:
                        raise self._refusal(cursor, write.workflow_id, write.token)
            else:
                with self._db.transaction(doing) as cursor:
                    self._apply(cursor, write)
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
                # A write's first statement is its fence (see `_apply`): refused there, it
                # changed nothing, so no savepoint is needed to take it back.
                try:
                    self._apply(cursor, write)
                except LeaseLost:
                    refused.append(write.workflow_id)
        for write in writes:
            if write.workflow_id in refused or write.finish is not None or write.release:
                self._db.heartbeat.let_go(write.workflow_id)
        return refused

    # -- reading --------------------------------------------------------------------------

    def _shape_text(self, workflow_id: str, shape_id: Any) -> str | None:
        if shape_id is None:
            return None
        column(shape_id, TEXT, workflow_id, "shape id")
        known = self._shapes.get(shape_id)
        if known is not None:
            return known
        rows = self._db.query(
            "SELECT shape FROM shapes WHERE id = ?", (shape_id,), "reading a shape"
        )
        if not rows:  # without it, a changed flow would resume it unchecked
            raise StoreError(
                f"run {workflow_id!r}: its flow shape {shape_id!r} is missing; the row is left "
                f"intact"
            )
        text: str = column(rows[0][0], TEXT, workflow_id, "flow shape")
        self._shapes[shape_id] = text
        return text

    def _record(self, row: tuple[Any, ...], steps: list[tuple[Any, ...]]) -> RunRecord:
        (workflow_id, flow, start, status, owner, token, lease_expires, owed, created_at,
         updated_at, finished_at, output, error, compensation_error, recoveries,
         recovery_step, shape, parked_reason) = row  # fmt: skip
        codec = self._codec
        column(workflow_id, TEXT, workflow_id, "id")
        try:
            run_status = WorkflowStatus(status)
        except ValueError as bad:
            raise StoreError(
                f"run {workflow_id!r} has an unknown status {status!r}; the row is left intact"
            ) from bad
        record = RunRecord(
            workflow_id=workflow_id,
            flow=column(flow, TEXT, workflow_id, "flow"),
            start=codec.read_message(start, workflow_id, "start message"),
            status=run_status,
            owner=column(owner, MAYBE_TEXT, workflow_id, "owner"),
            created_at=column(created_at, NUMBER, workflow_id, "created_at"),
            updated_at=column(updated_at, NUMBER, workflow_id, "updated_at"),
            token=column(token, INTEGER, workflow_id, "token"),
            lease_expires=column(lease_expires, MAYBE_NUMBER, workflow_id, "lease_expires"),
            finished_at=column(finished_at, MAYBE_NUMBER, workflow_id, "finished_at"),
            output=codec.read_output(output, workflow_id, "output"),
            error=codec.read_error(error, workflow_id),
            compensation_error=codec.read_error(compensation_error, workflow_id),
            shape=self._shape_text(workflow_id, shape),
            recoveries=column(recoveries, INTEGER, workflow_id, "recoveries"),
            recovery_step=column(recovery_step, MAYBE_TEXT, workflow_id, "recovery_step"),
            owed=bool(column(owed, INTEGER, workflow_id, "owed")),
            parked_reason=column(parked_reason, MAYBE_TEXT, workflow_id, "parked_reason"),
        )
        for key, outcome, attempts, step_output, step_error, rows in steps:
            column(key, TEXT, workflow_id, "step key")
            try:
                step_outcome = StepOutcome(outcome)
            except ValueError as bad:
                raise StoreError(
                    f"run {workflow_id!r}: step {key!r} has an unknown outcome {outcome!r}"
                ) from bad
            record.add_step(
                StepRecord(
                    key,
                    step_outcome,
                    column(attempts, INTEGER, workflow_id, f"attempts of {key}"),
                    codec.read_output(step_output, workflow_id, f"output of {key}"),
                    column(step_error, MAYBE_TEXT, workflow_id, f"error of {key}"),
                    codec.read_rows(rows, workflow_id, key),
                )
            )
        return record

    def get_run(self, workflow_id: str) -> RunRecord | None:
        with self._db.transaction(f"reading run {workflow_id!r}", read_only=True) as cursor:
            row = cursor.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
            if row is None:
                return None
            steps = cursor.execute(
                "SELECT key, outcome, attempts, output, error, rows FROM steps "
                "WHERE workflow_id = ? ORDER BY seq",
                (workflow_id,),
            ).fetchall()
        return self._record(row, steps)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        clauses: list[str] = []
        parameters: list[Any] = []
        if flow is not None:
            clauses.append("flow = ?")
            parameters.append(flow)
        if status is not None:
            clauses.append("status = ?")
            parameters.append(status.value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        ids = self._db.query(
            f"SELECT workflow_id FROM runs{where} ORDER BY created_at, workflow_id",
            parameters,
            "listing runs",
        )
        records = [self.get_run(workflow_id) for (workflow_id,) in ids]
        return [record for record in records if record is not None]

    def owed_runs(self, flow: str) -> list[OwedRun]:
        rows = self._db.query(
            "SELECT workflow_id, status, owner, lease_expires, token FROM runs "
            "INDEXED BY runs_owed WHERE flow = ? AND owed = 1 ORDER BY created_at",
            (flow,),
            "listing runs that owe work",
        )
        owed: list[OwedRun] = []
        for workflow_id, status, owner, lease_expires, token in rows:
            if not isinstance(workflow_id, str):
                continue  # a damaged id names no run that could be claimed
            try:
                run_status = WorkflowStatus(status)
            except ValueError:
                continue  # a tampered status: get_run names it when this run is read
            # A damaged owner (not text) is nobody's, here as in the claim: the read that
            # follows the claim reports the row.
            holder = owner if isinstance(owner, str) else None
            owed.append(OwedRun(workflow_id, run_status, holder, lease_expires, token))
        return owed

    def forget_finished(self, before: float) -> int:
        marks = ", ".join("?" for _ in _FORGETTABLE)
        with self._db.transaction("forgetting finished runs") as cursor:
            ids = [
                row[0]
                for row in cursor.execute(
                    f"SELECT workflow_id FROM runs WHERE finished_at IS NOT NULL AND "
                    f"finished_at < ? AND owed = 0 AND status IN ({marks})",
                    (before, *_FORGETTABLE),
                )
            ]
            pairs = [(workflow_id,) for workflow_id in ids]
            cursor.executemany("DELETE FROM steps WHERE workflow_id = ?", pairs)
            cursor.executemany("DELETE FROM requests WHERE workflow_id = ?", pairs)
            self._events.forget(cursor, pairs)
            cursor.executemany("DELETE FROM runs WHERE workflow_id = ?", pairs)
        return len(ids)

    # -- requests -------------------------------------------------------------------------

    def request(self, workflow_id: str, message: Message | None, *, now: float) -> bool:
        text = None if message is None else self._codec.message(message, "a request")
        changed = self._db.execute(
            "INSERT INTO requests (workflow_id, at, message) SELECT ?, ?, ? WHERE EXISTS "
            "(SELECT 1 FROM runs WHERE workflow_id = ? AND finished_at IS NULL)",
            (workflow_id, now, text, workflow_id),
            f"keeping a request for run {workflow_id!r}",
        )
        return changed == 1

    def requests(self, workflow_id: str) -> list[Request]:
        rows = self._db.query(
            "SELECT seq, at, message FROM requests WHERE workflow_id = ? ORDER BY seq",
            (workflow_id,),
            f"reading the requests of run {workflow_id!r}",
        )
        return [self._codec.read_request(workflow_id, *row) for row in rows]

    def drop_requests(self, workflow_id: str, token: int, upto: int) -> None:
        with self._db.transaction(f"dropping the requests of run {workflow_id!r}") as cursor:
            self._fence(cursor, workflow_id, token)
            cursor.execute(
                "DELETE FROM requests WHERE workflow_id = ? AND seq <= ?", (workflow_id, upto)
            )

    # -- the event log --------------------------------------------------------------------

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        return self._events.events_of(workflow_id)

    def handled_of(self, workflow_id: str) -> set[tuple[str, str]]:
        return self._events.handled_of(workflow_id)

    def count_delivery(self, workflow_id: str, token: int, message_id: str, subscriber: str) -> int:
        with self._db.transaction(f"counting a delivery of {message_id!r}") as cursor:
            self._fence(cursor, workflow_id, token)
            return self._events.count_delivery(cursor, workflow_id, message_id, subscriber)

    def dead_letter(
        self, workflow_id: str, token: int, message_id: str, subscriber: str, reason: str
    ) -> None:
        with self._db.transaction(f"setting {message_id!r} aside") as cursor:
            self._fence(cursor, workflow_id, token)
            self._events.dead_letter(cursor, workflow_id, message_id, subscriber, reason)

    def dead_letters(self) -> list[DeadLetter]:
        return self._events.dead_letters()

    def _fence(self, cursor: Any, workflow_id: str, token: int) -> None:
        row = cursor.execute(
            "SELECT 1 FROM runs WHERE workflow_id = ? AND token = ?", (workflow_id, token)
        ).fetchone()
        if row is None:
            raise self._refusal(cursor, workflow_id, token)

    # -- the queue of workers -------------------------------------------------------------

    def claim_next(
        self, flow: str, owner: str, *, now: float
    ) -> tuple[str, int, str | None] | None:
        """Claim the oldest free run of `flow` that owes work (one `BEGIN IMMEDIATE`)."""
        return self._queue.claim_next(flow, owner, now=now)

    def announce(self, flow: str) -> None:
        """Wake this store's idle workers (other processes' find the work when they poll)."""
        self._queue.announce(flow)

    def wait_for_work(self, flow: str, timeout: float) -> bool:
        """Wait for an announcement of work of `flow` here, at most `timeout` seconds."""
        return self._queue.wait_for_work(flow, timeout)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"
