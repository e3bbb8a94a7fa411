"""The PostgreSQL store as a queue of runs: workers claim with `FOR UPDATE SKIP LOCKED` and
wake on LISTEN/NOTIFY, polling when no notification comes.

A submitted run is an unowned run that owes work, like one whose owner let go; claiming
the next one locks the oldest such run that no other worker has locked (`SKIP LOCKED`:
workers never queue behind each other's claims) and takes it with a new fencing token, in
one statement. `announce` notifies every listening process of new work for a flow; a
listener that lost its connection (a server restart) reconnects, and meanwhile waiting
workers simply poll.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from coordination.errors import StoreError
from coordination.stores._announcements import Announcements
from coordination.stores._postgres_database import PostgresDatabase

__all__ = ["PostgresQueue"]

#: The oldest run of a flow that owes work, is held by nobody (or its lease ran out) and is
#: not being claimed by another worker right now; rechecked after the lock, as two workers
#: may have read it free at once.
# A run suspended WAITING (let go, for an outside message or a timer) is no free run: a
# message (`send()`) or a due timer (`resume_due()`) takes it back, not the next claim.
_CLAIM_NEXT = (
    "WITH free AS (SELECT workflow_id, owner FROM runs WHERE flow = %s AND owed AND "
    "(owner IS NULL OR lease_expires IS NULL OR lease_expires < %s) "
    "AND NOT (status = 'waiting' AND owner IS NULL) "
    "ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "UPDATE runs AS r SET owner = %s, token = r.token + 1, lease_expires = %s, updated_at = %s "
    "FROM free WHERE r.workflow_id = free.workflow_id AND r.owed AND (r.owner IS NULL OR "
    "r.lease_expires IS NULL OR r.lease_expires < %s) RETURNING r.workflow_id, r.token, free.owner"
)


class PostgresQueue:
    """Claims of submitted runs, and the notifications that wake idle workers."""

    def __init__(self, db: PostgresDatabase, channel: str) -> None:
        self._db = db
        self._channel = channel
        #: Notifications not yet taken by a waiting worker: one that arrives while the
        #: workers are busy still wakes the next one that waits.
        self._heard = Announcements()
        self._started = threading.Lock()
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()

    def claim_next(
        self, flow: str, owner: str, *, now: float, lease: float
    ) -> tuple[str, int, str | None] | None:
        rows = self._db.fetch(
            _CLAIM_NEXT,
            (flow, now, owner, now + lease, now, now),
            f"claiming the next run of {flow!r}",
        )
        if not rows:
            return None
        workflow_id, token, previous = rows[0]
        return str(workflow_id), int(token), previous

    def announce(self, flow: str) -> None:
        self._db.execute(
            "SELECT pg_notify(%s, %s)", (self._channel, flow), f"announcing work of {flow!r}"
        )

    def wait_for_work(self, flow: str, timeout: float) -> bool:
        """Wait until work of `flow` is announced (True) or `timeout` seconds passed."""
        self._listen()
        return self._heard.wait(flow, timeout)

    def _listen(self) -> None:
        with self._started:
            if self._listener is None and not self._closed.is_set():
                self._listener = threading.Thread(
                    target=self._loop, name="coordination:listen", daemon=True
                )
                self._listener.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                for flow in self._notifications():
                    self._heard.announce(flow)
            except StoreError:
                pass  # the server went away: waiting workers poll until it is back
            self._closed.wait(0.5)

    def _notifications(self) -> Iterator[str]:
        """Payloads of this channel's notifications, until the store closes (or an error)."""
        return self._db.listen(self._channel, self._closed)

    def close(self) -> None:
        self._closed.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=5)
