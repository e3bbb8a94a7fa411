"""Group commit: writes that threads make at the same time share one commit.

Eight threads driving runs on one store each write after every step. Alone, each write is a
commit of its own, taken one at a time under the store's lock, so threads queue behind each
other's commits (and, with `synchronous="FULL"`, behind each other's disk flushes). Here
the first writer to arrive writes alone, as it would without any other thread; writers that
arrive while it does wait, and when it is done it commits all of them at once
(`write_many`: one commit, each write still fenced by its own token), then any that came
meanwhile, until none waits. A lone thread never waits and never batches.

Each writer gets its own outcome: a write fenced out raises `LeaseLost` for its writer
alone; if the shared commit fails as a whole (a duplicate record of one writer, a full disk),
every write of it is tried again alone, so one writer's fault is never another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from coordination.errors import LeaseLost, StoreError
from coordination.stores._records import Write

__all__ = ["GroupCommit"]


class _Waiting:
    """One writer's write, waiting for the leader to commit it, and what came of it."""

    __slots__ = ("done", "error", "write")

    def __init__(self, write: Write) -> None:
        self.write = write
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """Commits concurrent writes together; a lone writer commits alone, at once."""

    __slots__ = ("_alone", "_changed", "_leading", "_lock", "_many", "_waiting")

    def __init__(
        self, alone: Callable[[Write], None], many: Callable[[Sequence[Write]], list[str]]
    ) -> None:
        self._alone = alone
        self._many = many
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: list[_Waiting] = []
        self._leading = False

    def write(self, write: Write) -> None:
        """Commit `write`, with whatever other threads are writing at the same time."""
        with self._lock:
            if self._leading:
                waiting = _Waiting(write)
                self._waiting.append(waiting)
                while not waiting.done:
                    self._changed.wait()
                if waiting.error is not None:
                    raise waiting.error
                return
            self._leading = True
        try:
            self._alone(write)
        finally:
            self._lead()

    def _lead(self) -> None:
        """Commit what waited meanwhile, round after round, until nothing waits."""
        batch: list[_Waiting] = []
        try:
            while True:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                    if not batch:
                        self._leading = False
                        return
                self._commit(batch)
                with self._lock:
                    self._changed.notify_all()
        except BaseException as error:  # interrupted while writing for others
            with self._lock:
                for waiting in (*batch, *self._waiting):
                    if not waiting.done:
                        waiting.error = StoreError(f"the write was interrupted ({error!r})")
                        waiting.done = True
                self._waiting = []
                self._leading = False
                self._changed.notify_all()
            raise

    def _commit(self, batch: list[_Waiting]) -> None:
        if len(batch) > 1:
            try:
                refused = set(self._many([waiting.write for waiting in batch]))
            except StoreError:
                pass  # one write's fault, or the store's: each is tried alone below
            else:
                for waiting in batch:
                    workflow_id = waiting.write.workflow_id
                    if workflow_id in refused:
                        waiting.error = LeaseLost(
                            f"run {workflow_id!r} was claimed by another owner (this owner "
                            f"holds token {waiting.write.token}): this owner stops",
                            workflow_id=workflow_id,
                        )
                    waiting.done = True
                return
        for waiting in batch:
            try:
                self._alone(waiting.write)
            except (LeaseLost, StoreError) as error:
                waiting.error = error
            waiting.done = True
