"""SQLiteStore: runs kept in one SQLite file (WAL), the embedded durable default.

Each write is one transaction and one commit: creating a run, appending one step (with
the status move it may carry), finishing a run (with its last step). A run of N steps
costs N + 1 commits when it completes, N + 2 at most; leases are renewed and the WAL is
checkpointed by background threads, off that path. Opening a file that is not ours, is
corrupt, or has a newer schema raises `StoreError` and writes nothing. No `sqlite3` error
reaches callers unwrapped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coordination._messages import (
    Message,
    from_json,
    persistence_problem,
    to_json,
    type_name_of,
)
from coordination._status import WorkflowStatus
from coordination.errors import (
    MessageError,
    StoreError,
)
from coordination.stores._records import RunRecord, StepOutcome, StepRecord
from coordination.stores._sqlite_background import Background
from coordination.stores._sqlite_events import EVENT_SCHEMA, SQLiteEventLog
from coordination.stores._sqlite_schema import (
    APPLICATION,
    RUN_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    decode_error,
    encode_error,
    encode_output,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

#: One b-tree keyed (run, step): the key enforces one record per step, and `seq` (the
#: run's count of records so far) keeps their order.
_INSERT_STEP = (
    "INSERT INTO steps (workflow_id, key, seq, outcome, attempts, output, error, rows) "
    "VALUES (?, ?, (SELECT COUNT(*) FROM steps WHERE workflow_id = ?), ?, ?, ?, ?, ?)"
)


class SQLiteStore(SQLiteEventLog, Background):
    """Runs in one SQLite file in WAL mode; safe for several threads and processes.

    `synchronous="NORMAL"` (the default) survives a killed process; `"FULL"` also survives
    power loss, at the cost of a disk flush per commit. Message types are read back by name:
    runners register their flows' types, so explicit `type_name`s resolve.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
        lease: float = 30.0,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise StoreError(
                f"SQLiteStore(synchronous={synchronous!r}): use 'NORMAL' (survives a killed "
                f"process) or 'FULL' (also survives power loss)"
            )
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.lease = lease
        self._types: dict[str, type[Message]] = {}
        #: Owners that started or claimed runs through this store: their leases are renewed.
        self._owners: set[str] = set()
        self._heartbeat: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._background_checkpoints = self.synchronous == "NORMAL"
        self._closed = threading.Event()
        self._live: weakref.WeakValueDictionary[str, RunRecord] = weakref.WeakValueDictionary()
        self._lock = threading.RLock()
        try:
            self._connection = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open SQLite store {self.path}: {error}") from error
        try:
            self._open()
        except BaseException:
            self._connection.close()
            raise
        if self._background_checkpoints:
            self._start_checkpointer()

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        connection = self._connection
        try:
            tables = {
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
            }
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"{self.path} is not a readable SQLite database ({error}); it was left "
                f"untouched: point SQLiteStore at a new file or a coordination store"
            ) from error
        if tables and "coordination_meta" not in tables:
            raise StoreError(
                f"{self.path} is a SQLite database of something else (tables: "
                f"{', '.join(sorted(tables))}); it was left untouched: use a separate file "
                f"for coordination"
            )
        if tables:
            meta = dict(connection.execute("SELECT key, value FROM coordination_meta"))
            if meta.get("application") != APPLICATION:
                raise StoreError(f"{self.path} is not a coordination store; left untouched")
            version = int(meta.get("schema", "0"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this coordination "
                    f"(which reads up to {SCHEMA_VERSION}); upgrade coordination to open it"
                )
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            connection.execute("PRAGMA foreign_keys = ON")
            if self._background_checkpoints:
                # Checkpoints (copying the WAL back into the file) run on a thread of their
                # own, not in whichever commit crosses the threshold: measured, they added
                # ~40 µs to every workflow's path when done in line. (With FULL, their
                # flushes compete with the commits' own: measured slower, so in line.)
                connection.execute("PRAGMA wal_autocheckpoint = 0")
            if not tables or "events" not in tables:
                with self._transaction() as cursor:
                    for statement in EVENT_SCHEMA.split(";"):
                        if statement.strip():
                            cursor.execute(statement)
            if not tables:
                with self._transaction() as cursor:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            cursor.execute(statement)
                    cursor.executemany(
                        "INSERT INTO coordination_meta (key, value) VALUES (?, ?)",
                        [("application", APPLICATION), ("schema", str(SCHEMA_VERSION))],
                    )
        except sqlite3.Error as error:
            raise StoreError(f"cannot prepare SQLite store {self.path}: {error}") from error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreError(f"SQLite store {self.path} is unavailable: {error}") from error
            try:
                yield cursor
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            try:
                cursor.execute("COMMIT")
            except sqlite3.Error as error:
                try:
                    cursor.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise StoreError(f"SQLite store {self.path}: commit failed: {error}") from error

    def close(self) -> None:
        """Stop the background threads and close the connection (the file stays as it is)."""
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with self._lock:
            try:
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # closing anyway; the next opener checkpoints
            self._connection.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- types ----------------------------------------------------------------------------

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Learn the message types runs of a flow store, so they read back by name.

        Raises `StoreError` at once for a type that could not be read back (defined in a
        function or in `__main__` without a `type_name`), before anything is stored.
        """
        for message_type in types:
            problem = persistence_problem(message_type)
            if problem is not None:
                raise StoreError(f"a durable store cannot keep it: {problem}")
            self._types[type_name_of(message_type)] = message_type

    def _encode(self, message: Message, what: str) -> str:
        try:
            return to_json(message)
        except MessageError as error:
            raise StoreError(f"cannot store {what}: {error}") from error

    def _decode(self, text: str, workflow_id: str, what: str) -> Message:
        try:
            return from_json(text, self._types.values())
        except MessageError as error:
            raise StoreError(
                f"run {workflow_id!r}: cannot read its {what} ({error}); the row is left "
                f"intact: register the message type (construct the flow's orchestrator "
                f"with this store first) or add an upcaster"
            ) from error

    def _decode_output(self, text: str | None, workflow_id: str, what: str) -> Any:
        if text is None:
            return None
        document = json.loads(text)
        if isinstance(document, list):
            return tuple(self._decode(json.dumps(member), workflow_id, what) for member in document)
        return self._decode(text, workflow_id, what)

    # -- writing --------------------------------------------------------------------------

    def start_run(
        self,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        shape: str | None = None,
    ) -> tuple[RunRecord, bool]:
        encoded = self._encode(start, f"the start message of {workflow_id!r}")
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO runs (workflow_id, flow, start, status, owner, "
                "lease_expires, created_at, updated_at, shape) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    workflow_id,
                    flow,
                    encoded,
                    WorkflowStatus.RUNNING.value,
                    owner,
                    now + self.lease,
                    now,
                    now,
                    shape,
                ),
            )
            created = cursor.rowcount == 1
        self._keep_alive(owner)
        if created:
            record = RunRecord(
                workflow_id=workflow_id,
                flow=flow,
                start=start,
                status=WorkflowStatus.RUNNING,
                owner=owner,
                created_at=now,
                updated_at=now,
                lease_expires=now + self.lease,
                shape=shape,
            )
            self._live[workflow_id] = record
            return record, True
        existing = self.get_run(workflow_id)
        assert existing is not None
        return existing, False

    def append_step(
        self,
        workflow_id: str,
        step: StepRecord,
        *,
        now: float,
        status: WorkflowStatus | None = None,
    ) -> None:
        values = self._step_values(workflow_id, step)
        try:
            with self._transaction() as cursor:
                cursor.execute(_INSERT_STEP, values)
                # Only a status move touches the run's row: every extra page written costs
                # time in each commit (leases are renewed by the heartbeat instead).
                if status is not None:
                    cursor.execute(
                        "UPDATE runs SET status = ?, updated_at = ? WHERE workflow_id = ?",
                        (status.value, now, workflow_id),
                    )
        except sqlite3.IntegrityError as error:
            raise self._step_refused(workflow_id, step, error) from error
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        record = self._live.get(workflow_id)
        if record is not None:
            with self._lock:
                record.add_step(step)
                record.updated_at = now
                if status is not None:
                    record.status = status

    def _step_values(self, workflow_id: str, step: StepRecord) -> tuple[Any, ...]:
        output = _encode_output_safely(step.output, workflow_id, step.key)
        return (workflow_id, step.key, workflow_id, step.outcome.value, step.attempts,
                output, step.error, json.dumps(step.rows))  # fmt: skip

    def _step_refused(
        self, workflow_id: str, step: StepRecord, error: sqlite3.IntegrityError
    ) -> StoreError:
        if "UNIQUE" in str(error):
            return StoreError(
                f"run {workflow_id!r} already has a record for step {step.key!r}; a step is "
                f"recorded once"
            )
        return StoreError(f"no run {workflow_id!r} in {self.path}: {error}")

    def finish_run(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        now: float,
        output: Any = None,
        error: BaseException | None = None,
        compensation_error: BaseException | None = None,
        last_step: StepRecord | None = None,
    ) -> None:
        encoded = _encode_output_safely(output, workflow_id, "output")
        finished_at = now if status.finished else None
        step_values = None if last_step is None else self._step_values(workflow_id, last_step)
        try:
            with self._transaction() as cursor:
                if step_values is not None:
                    cursor.execute(_INSERT_STEP, step_values)
                cursor.execute(
                    "UPDATE runs SET status = ?, output = ?, error = ?, compensation_error = ?, "
                    "updated_at = ?, finished_at = COALESCE(?, finished_at), owner = NULL, "
                    "lease_expires = NULL WHERE workflow_id = ?",
                    (status.value, encoded, encode_error(error),
                     encode_error(compensation_error), now, finished_at, workflow_id),
                )  # fmt: skip
                if cursor.rowcount != 1:
                    raise StoreError(f"no run {workflow_id!r} in {self.path}")
        except sqlite3.IntegrityError as refused:
            assert last_step is not None
            raise self._step_refused(workflow_id, last_step, refused) from refused
        except sqlite3.Error as sqlite_error:
            raise StoreError(f"SQLite store {self.path}: {sqlite_error}") from sqlite_error
        record = self._live.get(workflow_id)
        if record is not None:
            with self._lock:
                if last_step is not None:
                    record.add_step(last_step)
                record.status = status
                record.output = output
                record.error = error
                record.compensation_error = compensation_error
                record.updated_at = now
                record.owner = None
                record.lease_expires = None
                if finished_at is not None:
                    record.finished_at = finished_at

    def claim_run(
        self, workflow_id: str, owner: str, *, now: float, replacing: str | None = None
    ) -> RunRecord | None:
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "UPDATE runs SET owner = ?, lease_expires = ?, updated_at = ? "
                    "WHERE workflow_id = ? AND finished_at IS NULL AND (owner IS NULL "
                    "OR lease_expires < ? OR owner = ?)",
                    (owner, now + self.lease, now, workflow_id, now, replacing),
                )
                claimed = cursor.rowcount == 1
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        if not claimed:
            return None
        self._keep_alive(owner)
        record = self._load(workflow_id)
        if record is not None:
            self._live[workflow_id] = record
        return record

    def reopen_run(
        self,
        workflow_id: str,
        *,
        expected: WorkflowStatus,
        status: WorkflowStatus,
        owner: str,
        now: float,
    ) -> RunRecord | None:
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "UPDATE runs SET status = ?, owner = ?, lease_expires = ?, updated_at = ?, "
                    "finished_at = NULL, recoveries = 0, recovery_step = NULL "
                    "WHERE workflow_id = ? AND status = ? AND (owner IS NULL OR owner = ?)",
                    (status.value, owner, now + self.lease, now, workflow_id, expected.value,
                     owner),
                )  # fmt: skip
                reopened = cursor.rowcount == 1
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        if not reopened:
            return None
        self._keep_alive(owner)
        self._live.pop(workflow_id, None)
        record = self._load(workflow_id)
        if record is not None:
            self._live[workflow_id] = record
        return record

    def note_recovery(self, workflow_id: str, position: str) -> int:
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "UPDATE runs SET recoveries = CASE WHEN recovery_step = ? "
                    "THEN recoveries + 1 ELSE 1 END, recovery_step = ? WHERE workflow_id = ?",
                    (position, position, workflow_id),
                )
                row = cursor.execute(
                    "SELECT recoveries FROM runs WHERE workflow_id = ?", (workflow_id,)
                ).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        if row is None:
            raise StoreError(f"no run {workflow_id!r} in {self.path}")
        count = int(row[0])
        record = self._live.get(workflow_id)
        if record is not None:
            record.recoveries, record.recovery_step = count, position
        return count

    def release_run(self, workflow_id: str, owner: str, *, now: float) -> None:
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    "UPDATE runs SET owner = NULL, lease_expires = NULL, updated_at = ? "
                    "WHERE workflow_id = ? AND owner = ?",
                    (now, workflow_id, owner),
                )
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        record = self._live.get(workflow_id)
        if record is not None and record.owner == owner:
            record.owner = None
            record.lease_expires = None

    # -- reading --------------------------------------------------------------------------

    def _load(self, workflow_id: str) -> RunRecord | None:
        try:
            with self._lock:
                row = self._connection.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?", (workflow_id,)
                ).fetchone()
                if row is None:
                    return None
                steps = self._connection.execute(
                    "SELECT key, outcome, attempts, output, error, rows FROM steps "
                    "WHERE workflow_id = ? ORDER BY seq",
                    (workflow_id,),
                ).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        return self._record(row, steps)

    def _record(self, row: tuple[Any, ...], steps: list[tuple[Any, ...]]) -> RunRecord:
        (workflow_id, flow, start, status, owner, lease_expires, created_at, updated_at,
         finished_at, output, error, compensation_error, recoveries,
         recovery_step, shape) = row  # fmt: skip
        record = RunRecord(
            workflow_id=workflow_id,
            flow=flow,
            start=self._decode(start, workflow_id, "start message"),
            status=WorkflowStatus(status),
            owner=owner,
            created_at=created_at,
            updated_at=updated_at,
            lease_expires=lease_expires,
            finished_at=finished_at,
            output=self._decode_output(output, workflow_id, "output"),
            error=decode_error(error),
            compensation_error=decode_error(compensation_error),
            recoveries=recoveries,
            recovery_step=recovery_step,
            shape=shape,
        )
        for key, outcome, attempts, step_output, step_error, rows in steps:
            record.add_step(
                StepRecord(
                    key,
                    StepOutcome(outcome),
                    attempts,
                    self._decode_output(step_output, workflow_id, f"output of {key}"),
                    step_error,
                    tuple(json.loads(rows)),
                )
            )
        return record

    def get_run(self, workflow_id: str) -> RunRecord | None:
        live = self._live.get(workflow_id)
        if live is not None:
            return live
        return self._load(workflow_id)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        query = "SELECT workflow_id FROM runs"
        clauses: list[str] = []
        parameters: list[Any] = []
        if flow is not None:
            clauses.append("flow = ?")
            parameters.append(flow)
        if status is not None:
            clauses.append("status = ?")
            parameters.append(status.value)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY created_at, workflow_id"
        try:
            with self._lock:
                ids = [row[0] for row in self._connection.execute(query, parameters)]
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        records = [self.get_run(workflow_id) for workflow_id in ids]
        return [record for record in records if record is not None]

    def forget_finished(self, before: float) -> int:
        """Delete runs that finished before `before` (epoch seconds), with their steps.

        Retention for a durable store: a forgotten `workflow_id` can be used again, so keep
        runs at least as long as callers may retry with the same id. Returns how many.
        """
        try:
            with self._transaction() as cursor:
                ids = [
                    row[0]
                    for row in cursor.execute(
                        "SELECT workflow_id FROM runs WHERE finished_at IS NOT NULL "
                        "AND finished_at < ?",
                        (before,),
                    )
                ]
                cursor.executemany("DELETE FROM steps WHERE workflow_id = ?", [(i,) for i in ids])
                cursor.executemany("DELETE FROM runs WHERE workflow_id = ?", [(i,) for i in ids])
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error
        for workflow_id in ids:
            self._live.pop(workflow_id, None)
        return len(ids)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"


def _encode_output_safely(output: Any, workflow_id: str, what: str) -> str | None:
    try:
        return encode_output(output)
    except MessageError as error:
        raise StoreError(f"run {workflow_id!r}: cannot store {what}: {error}") from error
