"""Workers: runs submitted by any process, run by whichever worker claims them first.

`submit()` stores a run nobody owns (as a run whose owner let go looks), so any process's
worker — or its `recover()` — takes it; `serve()` is that worker's loop, and `result()`
waits for a run to finish wherever it runs. On a store with the `WorkQueue` capability
(PostgreSQL) a worker claims the oldest free run with one `FOR UPDATE SKIP LOCKED`
statement and sleeps until a notification (LISTEN/NOTIFY) or its poll interval; on any
other store it polls `recover()`. Between claims, when idle, it fires the timers that came
due (`resume_due()`). Every claim is fenced like any other: a worker stopped past its
lease is fenced out when it wakes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from coordination.engine import Problem
from coordination.errors import StoreError, UsageError, WorkflowBusy
from coordination.stores._records import RunRecord
from coordination.stores._store import Store, WorkQueue

__all__ = ["serve", "wait_for_result"]

_log = logging.getLogger("coordination.worker")


class Served(Protocol):
    """What a worker needs of the orchestrator it serves (the orchestrator hands itself in;
    this module never imports it)."""

    store: Store

    @property
    def name(self) -> str: ...

    def recover(self, *, max_recoveries: int = ..., on_problem: Problem | None = ...) -> Any: ...

    def _serve_next(
        self, queue: WorkQueue, max_recoveries: int, on_problem: Problem | None
    ) -> bool: ...

    def _record(self, workflow_id: str) -> RunRecord: ...

    def resume_due(self) -> Any: ...


def _checked(workers: int, poll: float) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"serve(workers={workers!r}) takes an int of at least 1")
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not poll > 0:
        raise UsageError(f"serve(poll={poll!r}) takes seconds > 0")


def serve(
    orchestrator: Served,
    *,
    workers: int,
    poll: float,
    stop: threading.Event | None,
    max_recoveries: int,
    on_problem: Problem | None,
) -> None:
    """Run `workers` worker loops (this thread and `workers - 1` more) until `stop` is set."""
    _checked(workers, poll)
    stopping = stop if stop is not None else threading.Event()
    loop = _Loop(orchestrator, poll, stopping, max_recoveries, on_problem)
    threads = [
        threading.Thread(target=loop.run, name=f"coordination:worker-{n}", daemon=True)
        for n in range(1, workers)
    ]
    for thread in threads:
        thread.start()
    try:
        loop.run()
    finally:
        stopping.set()
        for thread in threads:
            thread.join()


class _Loop:
    """One worker's loop: claim the next free run and drive it; else wait for work."""

    def __init__(
        self,
        orchestrator: Served,
        poll: float,
        stop: threading.Event,
        max_recoveries: int,
        on_problem: Problem | None,
    ) -> None:
        self._orchestrator = orchestrator
        self._poll = poll
        self._stop = stop
        self._max_recoveries = max_recoveries
        self._on_problem = on_problem
        store = orchestrator.store
        self._queue = store if isinstance(store, WorkQueue) else None

    def run(self) -> None:
        orchestrator = self._orchestrator
        flow = orchestrator.name
        # recover() takes what a dead process of this host left under a lease still
        # running: with a queue once, at the start (claims take every free run, and a run
        # whose owner died once its lease ran out), else at every poll.
        recovered = False
        while not self._stop.is_set():
            try:
                if not recovered or self._queue is None:
                    orchestrator.recover(
                        max_recoveries=self._max_recoveries, on_problem=self._on_problem
                    )
                    recovered = True
                if self._queue is not None and orchestrator._serve_next(
                    self._queue, self._max_recoveries, self._on_problem
                ):
                    continue  # there may be more: claim again before waiting
                # Idle: fire the timers that came due (sleeps, wait timeouts).
                orchestrator.resume_due()
            except StoreError as error:  # the server is down: wait, then try again
                _log.warning("serve(): %s", error)
                self._stop.wait(self._poll)
                continue
            if self._queue is not None:
                self._wait_for_work(self._queue, flow)
            else:
                self._stop.wait(self._poll)

    def _wait_for_work(self, queue: WorkQueue, flow: str) -> None:
        """Until work is announced, `poll` seconds passed, or `stop` is set (looked at
        every fifth of a second: the queue's wake-up knows nothing of `stop`)."""
        deadline = time.monotonic() + self._poll
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if queue.wait_for_work(flow, min(left, 0.2)):
                    return
            except StoreError:
                self._stop.wait(left)
                return


def wait_for_result(orchestrator: Served, workflow_id: str, timeout: float | None) -> Any:
    """The run's record once it finished (or parked), polling the store in real time."""
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise UsageError(f"result(timeout={timeout!r}) takes seconds >= 0, or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        record = orchestrator._record(workflow_id)
        if record.status.finished:
            return record
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise WorkflowBusy(
                f"workflow {workflow_id!r} is still {record.status.name} after {timeout} s "
                f"(owner {record.owner!r}); wait longer, or look at it with get()",
                workflow_id=workflow_id,
            )
        time.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, 0.05)
