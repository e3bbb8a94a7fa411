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
from coordination.errors import StoreError
from coordination.stores._codec import (
    INTEGER,
    Codec,
    column,
)
from coordination.stores._group import GroupCommit
from coordination.stores._records import (
    DeadLetter,
    OwedRun,
    Request,
    RunRecord,
    Write,
)
from coordination.stores._sqlite_database import SQLiteDatabase
from coordination.stores._sqlite_events import SQLiteEvents
from coordination.stores._sqlite_queue import SQLiteQueue
from coordination.stores._sqlite_reads import SQLiteReads
from coordination.stores._sqlite_schema import SCHEMA_VERSION
from coordination.stores._sqlite_writes import SQLiteWrites
from coordination.stores._starts import started, started_each

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

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
        self._reads = SQLiteReads(self._db, self._codec, self._shapes)
        self._writes = SQLiteWrites(self._db, self._codec, self._events, self.path)
        self._group = GroupCommit(self._writes.write_alone, self._writes.write_many)

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
                raise self._writes.refusal(cursor, workflow_id, token)
            (count,) = cursor.execute(
                "SELECT recoveries FROM runs WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
        return int(count)

    # -- writing (`SQLiteWrites`) ------------------------------------------------------------

    def write(self, write: Write) -> None:
        # Threads writing at the same time share a commit; a lone writer writes at once.
        self._group.write(write)

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        return self._writes.write_many(writes)

    # -- reading (`SQLiteReads`) ------------------------------------------------------------

    def get_run(self, workflow_id: str) -> RunRecord | None:
        return self._reads.get_run(workflow_id)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        return self._reads.list_runs(flow=flow, status=status)

    def owed_runs(self, flow: str) -> list[OwedRun]:
        return self._reads.owed_runs(flow)

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
            raise self._writes.refusal(cursor, workflow_id, token)

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
