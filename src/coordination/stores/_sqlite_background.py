"""The SQLite store's background threads: lease heartbeat and WAL checkpoints.

Both keep work off the path of a workflow's commits: leases are renewed every third of a
lease (so another host never takes over a run that is still making progress), and the WAL
is copied back into the database by `PASSIVE` checkpoints on a connection of their own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from coordination.errors import StoreError

__all__ = ["CHECKPOINT_BYTES", "Background"]

#: WAL size past which the background checkpointer copies it back (~1,000 pages).
CHECKPOINT_BYTES = 4 * 1024 * 1024


class Background:
    """Heartbeat and checkpointer threads (mixed into `SQLiteStore`, which has these)."""

    path: Path
    lease: float
    _lock: threading.RLock
    _owners: set[str]
    _heartbeat: threading.Thread | None
    _checkpointer: threading.Thread | None
    _closed: threading.Event
    _transaction: Callable[[], AbstractContextManager[sqlite3.Cursor]]

    def _start_checkpointer(self) -> None:
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="coordination:checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database whenever it grew past ~4 MB (PASSIVE: never
        blocks writers), on a connection of its own."""
        wal = Path(f"{self.path}-wal")
        try:
            connection = sqlite3.connect(self.path, timeout=5, check_same_thread=True)
        except sqlite3.Error:
            return
        try:
            while not self._closed.wait(0.05):
                try:
                    if wal.stat().st_size > CHECKPOINT_BYTES:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except (OSError, sqlite3.Error):
                    continue  # retried at the next tick
        finally:
            connection.close()

    def _keep_alive(self, owner: str) -> None:
        """Renew `owner`'s leases every third of a lease while this store is open.

        Appending a step renews a run's lease too; this covers steps that run longer than
        a lease, so another host never takes over a run that is still making progress.
        """
        if owner in self._owners:
            return
        with self._lock:
            self._owners.add(owner)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(
                    target=self._beat, name="coordination:lease-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def _beat(self) -> None:
        while not self._closed.wait(self.lease / 3):
            now = time.time()
            try:
                with self._transaction() as cursor:
                    for owner in list(self._owners):
                        cursor.execute(
                            "UPDATE runs SET lease_expires = ? WHERE owner = ? "
                            "AND finished_at IS NULL",
                            (now + self.lease, owner),
                        )
                        cursor.execute(
                            "UPDATE processes SET lease_expires = ? WHERE owner = ?",
                            (now + self.lease, owner),
                        )
            except (StoreError, sqlite3.Error):
                if self._closed.is_set():
                    return
