"""The SQLite store as a queue of runs, for workers in several processes on one machine.

A submitted run is an unowned run that owes work; claiming the next one finds the oldest
such run of a flow (through the owed-work index) and takes it with a new fencing token in
one `BEGIN IMMEDIATE` transaction: SQLite lets one writer in at a time, so two workers
never both get a run, and neither waits behind the other's drive, only its claim. SQLite
has no notifications between processes: `announce()` wakes this store's own idle workers
at once, and workers in other processes find the work at their next poll.
"""

from __future__ import annotations

from coordination._status import WorkflowStatus
from coordination.stores._announcements import Announcements
from coordination.stores._codec import INTEGER, column
from coordination.stores._sqlite_database import SQLiteDatabase

__all__ = ["SQLiteQueue"]

# A run suspended WAITING (let go, for an outside message or a timer) is no free run: a
# message or a due timer takes it back, not the next claim.
_FREE = (
    "SELECT workflow_id, owner FROM runs INDEXED BY runs_owed WHERE flow = ? AND owed = 1 "
    "AND typeof(workflow_id) = 'text' "
    "AND (owner IS NULL OR lease_expires < ?) AND NOT (status = ? AND owner IS NULL) "
    "ORDER BY created_at LIMIT 1"
)
_TAKE = (
    "UPDATE runs SET owner = ?, token = token + 1, lease_expires = ?, updated_at = ? "
    "WHERE workflow_id = ? RETURNING token"
)
_WAITING = WorkflowStatus.WAITING.value


class SQLiteQueue:
    """Claims of the next free run of a flow, and this process's wake-ups."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db
        self._announced = Announcements()

    def claim_next(
        self, flow: str, owner: str, *, now: float
    ) -> tuple[str, int, str | None] | None:
        with self._db.transaction(f"claiming the next run of {flow!r}") as cursor:
            free = cursor.execute(_FREE, (flow, now, _WAITING)).fetchone()
            if free is None:
                return None
            workflow_id, previous = free
            (token,) = cursor.execute(
                _TAKE, (owner, now + self._db.lease, now, workflow_id)
            ).fetchone()
            # A damaged token would fence nothing: refused, and the claim rolled back.
            column(token, INTEGER, workflow_id, "token")
        self._db.heartbeat.hold(workflow_id, int(token))
        return str(workflow_id), int(token), previous if isinstance(previous, str) else None

    def announce(self, flow: str) -> None:
        self._announced.announce(flow)

    def wait_for_work(self, flow: str, timeout: float) -> bool:
        return self._announced.wait(flow, timeout)
