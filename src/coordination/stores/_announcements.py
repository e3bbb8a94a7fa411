"""Announcements of work inside one process: what wakes a store's idle workers.

A worker that found nothing to claim waits here until an announcement of its flow (or its
timeout); one made while every worker is busy is kept, so the next worker that waits sees
it at once instead of sleeping a whole poll interval. The PostgreSQL store feeds it from
LISTEN/NOTIFY (so announcements cross processes and machines); the SQLite store from its
own `announce()` calls only, its workers in other processes polling instead.
"""

from __future__ import annotations

import threading

__all__ = ["Announcements"]

#: Announcements kept per flow at most: a flow nobody here waits for must not grow forever.
_KEPT = 1_000


class Announcements:
    """Pending announcements by flow, and the condition idle workers wait on."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._pending: dict[str, int] = {}

    def announce(self, flow: str) -> None:
        with self._wake:
            self._pending[flow] = min(self._pending.get(flow, 0) + 1, _KEPT)
            self._wake.notify_all()

    def wait(self, flow: str, timeout: float) -> bool:
        """Take one announcement of `flow` (True), waiting at most `timeout` seconds."""
        with self._wake:
            if not self._wake.wait_for(lambda: self._pending.get(flow, 0) > 0, max(timeout, 0)):
                return False
            self._pending[flow] -= 1
            return True
