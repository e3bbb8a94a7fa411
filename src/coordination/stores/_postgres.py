"""PostgresStore: flow instances in a PostgreSQL schema, shared by processes on many machines.

It says what to write; the `PostgresDatabase` it composes says how (the pool,
transactions, heartbeat, the one place errors are mapped), `PostgresWrites` writes runs
(each fenced by the run's row lock: see there), `PostgresReads` reads them back,
`PostgresEvents` keeps the event log, `PostgresQueue` serves workers, and the `Codec`
turns values into JSON text and back. Everything a write stores is encoded before its
transaction opens: a value that cannot be stored is refused before anything is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores._codec import Codec
from coordination.stores._postgres_database import PostgresDatabase
from coordination.stores._postgres_events import PostgresEvents
from coordination.stores._postgres_queue import PostgresQueue
from coordination.stores._postgres_reads import PostgresReads
from coordination.stores._postgres_schema import check_schema_name
from coordination.stores._postgres_writes import FENCE, PostgresWrites, refusal
from coordination.stores._records import DeadLetter, OwedRun, Request, RunRecord, Write
from coordination.stores._starts import started, started_each

__all__ = ["PostgresStore"]

#: A run is created once: a second start of the same id changes nothing (and is told so).
_INSERT_RUN = (
    "INSERT INTO runs (workflow_id, flow, start, status, owner, token, lease_expires, owed, "
    "created_at, updated_at, shape) VALUES (%s, %s, %s, %s, %s, 1, %s, true, %s, %s, %s) "
    "ON CONFLICT (workflow_id) DO NOTHING"
)

_FORGETTABLE = [
    s.value
    for s in (WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED, WorkflowStatus.CANCELLED)
]


class PostgresStore:
    """Runs and a choreography's event log in a PostgreSQL schema; safe for threads, processes
    and machines sharing it.

    `dsn` is a libpq connection string or URL. The store keeps its tables in `schema`
    (created with them when absent), so it can share a database with other tables; a schema
    that holds something else, or another schema version, raises `StoreError` and is left
    untouched. Up to `max_connections` pooled connections serve this process's threads; one
    broken by a server restart is replaced when next used. `busy_timeout` bounds the wait for
    a row another process holds locked; `connect_timeout` the wait for a connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "coordination",
        lease: float = 30.0,
        busy_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        max_connections: int = 10,
    ) -> None:
        if not isinstance(dsn, str):
            raise StoreError(f"PostgresStore(dsn=...) must be a str, got {type(dsn).__name__}")
        check_schema_name(schema)
        if not lease > 0:
            raise StoreError(f"PostgresStore(lease={lease!r}) must be > 0 seconds")
        for name, value in (("busy_timeout", busy_timeout), ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise StoreError(f"PostgresStore({name}={value!r}) must be > 0 seconds")
        if isinstance(max_connections, bool) or not (
            isinstance(max_connections, int) and max_connections >= 1
        ):
            raise StoreError(f"PostgresStore(max_connections={max_connections!r}) must be >= 1")
        self.schema = schema
        self.lease = lease
        self._codec = Codec()
        self._shapes: dict[str, str] = {}  # id -> text, both ways known to be stored
        self._db = PostgresDatabase(
            dsn,
            schema=schema,
            lease=lease,
            busy_timeout=busy_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
        )
        self._events = PostgresEvents(self._db, self._codec)
        self._reads = PostgresReads(self._db, self._codec)
        self._writes = PostgresWrites(self._db, self._codec, self._events)
        # A channel name is an identifier of at most 63 bytes.
        channel = f"coordination:{schema}"
        if len(channel) > 63:
            channel = f"coordination:{hashlib.sha256(schema.encode()).hexdigest()[:32]}"
        self._queue = PostgresQueue(self._db, channel)

    def close(self) -> None:
        """Stop the heartbeat and the listener, and close the connections (the data stays)."""
        self._queue.close()
        self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Learn the message types runs of a flow store; `StoreError` for an unreadable one."""
        self._codec.register(types)

    # -- starting and claiming ------------------------------------------------------------

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
        event_rows = self._events.encode(workflow_id, events)
        shape_id = None if shape is None else hashlib.sha256(shape.encode()).hexdigest()[:32]
        lease_expires = now + self.lease

        def body(connection: Any) -> bool:
            if shape_id is not None and shape_id not in self._shapes:
                connection.execute(
                    "INSERT INTO shapes (id, shape) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (shape_id, shape),
                )
            created: bool = connection.execute(
                _INSERT_RUN,
                (workflow_id, flow, encoded, WorkflowStatus.RUNNING.value, owner,
                 lease_expires, now, now, shape_id),
            ).rowcount == 1  # fmt: skip
            if created and event_rows:
                self._events.insert(connection, event_rows)
            return created

        created = self._db.run(f"starting run {workflow_id!r}", body)
        if shape_id is not None and shape is not None:
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
        shape_id = None if shape is None else hashlib.sha256(shape.encode()).hexdigest()[:32]
        lease_expires = now + self.lease

        def body(connection: Any) -> list[bool]:
            if shape_id is not None and shape_id not in self._shapes:
                connection.execute(
                    "INSERT INTO shapes (id, shape) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (shape_id, shape),
                )
            created: list[bool] = []
            running = WorkflowStatus.RUNNING.value
            for (workflow_id, _), text in zip(starts, encoded, strict=True):
                values = (workflow_id, flow, text, running, owner, lease_expires, now, now)
                cursor = connection.execute(_INSERT_RUN, (*values, shape_id))
                created.append(cursor.rowcount == 1)
            return created

        created = self._db.run(f"starting {len(starts)} runs of {flow!r}", body)
        if shape_id is not None and shape is not None:
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
        doing = f"claiming run {workflow_id!r}"
        # One conditional UPDATE: of two claims at once, the second waits for the first's
        # row lock, then finds the run owned and changes nothing.
        if reopen is None:
            rows = self._db.fetch(
                "UPDATE runs SET owner = %s, token = token + 1, lease_expires = %s, "
                "updated_at = %s WHERE workflow_id = %s AND owed AND (owner IS NULL "
                "OR lease_expires IS NULL OR lease_expires < %s OR owner = %s) RETURNING token",
                (owner, lease_expires, now, workflow_id, now, replacing),
                doing,
            )
        else:
            expected, status = reopen
            rows = self._db.fetch(
                "UPDATE runs SET owner = %s, token = token + 1, lease_expires = %s, "
                "updated_at = %s, status = %s, owed = true, finished_at = NULL, recoveries = 0, "
                "recovery_step = NULL, parked_reason = NULL WHERE workflow_id = %s AND "
                "status = %s AND (owner IS NULL OR owner = %s OR owner = %s) RETURNING token",
                (owner, lease_expires, now, status.value, workflow_id, expected.value,
                 owner, replacing),
                doing,
            )  # fmt: skip
        if not rows:
            return None
        token = int(rows[0][0])
        self._db.heartbeat.hold(workflow_id, token)
        return token

    def release_run(self, workflow_id: str, token: int, *, now: float) -> None:
        self._db.heartbeat.let_go(workflow_id)
        self._db.execute(
            "UPDATE runs SET owner = NULL, lease_expires = NULL, updated_at = %s "
            "WHERE workflow_id = %s AND token = %s",
            (now, workflow_id, token),
            f"releasing run {workflow_id!r}",
        )

    def note_recovery(self, workflow_id: str, token: int, position: str) -> int:
        def body(connection: Any) -> int:
            row = connection.execute(
                "UPDATE runs SET recoveries = CASE WHEN recovery_step = %s "
                "THEN recoveries + 1 ELSE 1 END, recovery_step = %s "
                "WHERE workflow_id = %s AND token = %s RETURNING recoveries",
                (position, position, workflow_id, token),
            ).fetchone()
            if row is None:
                raise refusal(connection, workflow_id, token)
            return int(row[0])

        return self._db.run(f"counting a recovery of {workflow_id!r}", body)

    # -- writing (`PostgresWrites`) ----------------------------------------------------------

    def write(self, write: Write) -> None:
        self._writes.write(write)

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        return self._writes.write_many(writes)

    # -- reading --------------------------------------------------------------------------

    def get_run(self, workflow_id: str) -> RunRecord | None:
        return self._reads.get_run(workflow_id)

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        return self._reads.list_runs(flow=flow, status=status)

    def owed_runs(self, flow: str) -> list[OwedRun]:
        return self._reads.owed_runs(flow)

    def forget_finished(self, before: float) -> int:
        def body(connection: Any) -> int:
            ids = [
                workflow_id
                for (workflow_id,) in connection.execute(
                    "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < %s AND "
                    "NOT owed AND status = ANY(%s) RETURNING workflow_id",
                    (before, _FORGETTABLE),
                )
            ]
            if ids:
                connection.execute("DELETE FROM steps WHERE workflow_id = ANY(%s)", (ids,))
                connection.execute("DELETE FROM requests WHERE workflow_id = ANY(%s)", (ids,))
                self._events.forget(connection, ids)
            return len(ids)

        return self._db.run("forgetting finished runs", body)

    # -- requests -------------------------------------------------------------------------

    def request(self, workflow_id: str, message: Message | None, *, now: float) -> bool:
        text = None if message is None else self._codec.message(message, "a request")
        changed = self._db.execute(
            "INSERT INTO requests (workflow_id, at, message) SELECT %s, %s, %s WHERE EXISTS "
            "(SELECT 1 FROM runs WHERE workflow_id = %s AND finished_at IS NULL)",
            (workflow_id, now, text, workflow_id),
            f"keeping a request for run {workflow_id!r}",
        )
        return changed == 1

    def requests(self, workflow_id: str) -> list[Request]:
        rows = self._db.fetch(
            "SELECT seq, at, message FROM requests WHERE workflow_id = %s ORDER BY seq",
            (workflow_id,),
            f"reading the requests of run {workflow_id!r}",
        )
        return [self._codec.read_request(workflow_id, *row) for row in rows]

    def drop_requests(self, workflow_id: str, token: int, upto: int) -> None:
        def body(connection: Any) -> None:
            self._fence(connection, workflow_id, token)
            connection.execute(
                "DELETE FROM requests WHERE workflow_id = %s AND seq <= %s", (workflow_id, upto)
            )

        self._db.run(f"dropping the requests of run {workflow_id!r}", body)

    # -- the event log --------------------------------------------------------------------

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        return self._events.events_of(workflow_id)

    def handled_of(self, workflow_id: str) -> set[tuple[str, str]]:
        return self._events.handled_of(workflow_id)

    def count_delivery(self, workflow_id: str, token: int, message_id: str, subscriber: str) -> int:
        def body(connection: Any) -> int:
            self._fence(connection, workflow_id, token)
            return self._events.count_delivery(connection, workflow_id, message_id, subscriber)

        return self._db.run(f"counting a delivery of {message_id!r}", body)

    def dead_letter(
        self, workflow_id: str, token: int, message_id: str, subscriber: str, reason: str
    ) -> None:
        def body(connection: Any) -> None:
            self._fence(connection, workflow_id, token)
            self._events.dead_letter(connection, workflow_id, message_id, subscriber, reason)

        self._db.run(f"setting {message_id!r} aside", body)

    def dead_letters(self) -> list[DeadLetter]:
        return self._events.dead_letters()

    def _fence(self, connection: Any, workflow_id: str, token: int) -> None:
        if not connection.execute(FENCE, (workflow_id, token)).fetchall():
            raise refusal(connection, workflow_id, token)

    # -- the queue of workers -------------------------------------------------------------

    def claim_next(
        self, flow: str, owner: str, *, now: float
    ) -> tuple[str, int, str | None] | None:
        """Claim the oldest free run of `flow` that owes work (`FOR UPDATE SKIP LOCKED`)."""
        claimed = self._queue.claim_next(flow, owner, now=now, lease=self.lease)
        if claimed is not None:
            self._db.heartbeat.hold(claimed[0], claimed[1])
        return claimed

    def announce(self, flow: str) -> None:
        """NOTIFY every process listening on this schema that `flow` has work."""
        self._queue.announce(flow)

    def wait_for_work(self, flow: str, timeout: float) -> bool:
        """Wait for an announcement of work of `flow` (LISTEN), at most `timeout` seconds."""
        return self._queue.wait_for_work(flow, timeout)

    def __repr__(self) -> str:
        return f"PostgresStore(<{self._db.where}>)"
