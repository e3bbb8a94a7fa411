"""Writes of many instances gathered and committed together: one commit per round.

`run_many()` drives a batch of runs in lockstep. Each run's saga decides and records as it
would alone, but its `Recorder` hands its writes to the batch's `WriteBatch` instead of the
store; when every run of the batch has carried out its decision (a generation, or one
undo), the driver flushes the batch: one `Store.write_many`, one commit for all of them.

Every guarantee of a single run holds. A run's records are committed before its next
generation starts, as alone; a crash before the flush loses records whose effects happened,
exactly as a crash between an effect and its commit does alone (the step runs again under
its key). Each write is still fenced by its run's token: a run fenced out of the batch stops
alone (`write_many` refuses only its write), the others go on. Observers see a write once
it is committed.

A batch may be written to from several threads (a generation's actions with timeouts run on
threads, a timed-out attempt's late result arrives on its own), so it is locked; once
closed, a late writer writes directly, after everything the batch held.
"""

from __future__ import annotations

import threading
from typing import Protocol

from coordination._journal import Rows
from coordination.engine._observers import Observer, notify
from coordination.errors import LeaseLost, StoreError
from coordination.stores._records import Write
from coordination.stores._store import Store

__all__ = ["WriteBatch"]


class Writer(Protocol):
    """What a batch needs of the recorder a write came from (a `Recorder`)."""

    #: Set once its write was refused or failed: its instance is driven no further.
    lost: bool
    observers: tuple[Observer, ...]


class WriteBatch:
    """Writes of a batch of runs held until the driver flushes them in one commit."""

    __slots__ = ("_lock", "_pending", "closed", "commits", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: list[tuple[Writer, Write, list[Rows] | None]] = []
        self.closed = False
        #: Commits made so far (a figure the benchmarks and tests read).
        self.commits = 0

    def add(self, recorder: Writer, write: Write, chunks: list[Rows] | None) -> bool:
        """Hold `write` for the next flush; False once the batch is closed (write it alone).

        `chunks` are the journal rows observers get once it is committed (None: no observer).
        """
        with self._lock:
            if self.closed:
                return False
            self._pending.append((recorder, write, chunks))
            return True

    def flush(self) -> None:
        """Commit every held write at once; runs fenced out are lost, the others go on.

        A store error loses every run of the commit (none of it was applied) and is raised:
        each run is resumed later from what the store holds, as after a single run's failed
        write.
        """
        with self._lock:
            self._flush()

    def close(self) -> None:
        """Flush what is held and write nothing more through the batch."""
        with self._lock:
            try:
                self._flush()
            finally:
                self.closed = True

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        try:
            refused = set(self.store.write_many([write for _, write, _ in pending]))
        except (LeaseLost, StoreError):
            for recorder, _, _ in pending:
                recorder.lost = True
            raise
        self.commits += 1
        for recorder, write, chunks in pending:
            if write.workflow_id in refused:
                recorder.lost = True  # another owner took it: this copy drives it no further
            elif chunks is not None:
                notify(recorder.observers, chunks)
