"""Workers: instances submitted by any process, driven by whichever worker claims them first.

One loop for both runners. `submit()` stores an instance nobody owns (as one whose owner
let go looks: an orchestrated run, or a choreography's instance with its start message in
the event log, not yet delivered), so any process's worker — or its `recover()` — takes
it; `serve()` is that worker's loop, and `result()` waits for an instance to finish
wherever it runs. On a store with the `WorkQueue` capability (PostgreSQL, SQLite) a worker
claims the oldest free instance (PostgreSQL: one `FOR UPDATE SKIP LOCKED` statement) and
sleeps until an announcement (PostgreSQL: LISTEN/NOTIFY, from any process) or its poll
interval; on any other store it polls `recover()`. When idle it fires the timers that came
due (`resume_due()`) and, at most once a poll interval, takes over what dead owners left
(`recover()`: an owner gone from this host at once, any other once its lease ran out).
Every claim is fenced like any other: a worker stopped past its lease is fenced out when
it wakes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from coordination._clock import Clock
from coordination.engine._ownership import ACTIVE
from coordination.engine._recovery import Problem, resume_claimed
from coordination.errors import StoreError, UsageError, WorkflowBusy
from coordination.stores._records import RunRecord
from coordination.stores._store import Store, WorkQueue

__all__ = ["Served", "resume_next", "serve", "wait_for_result"]

T = TypeVar("T")

_log = logging.getLogger("coordination.worker")


class Served(Protocol):
    """What a worker needs of the runner it serves, an orchestrator or a choreography (it
    hands itself in: the engine never imports a runner)."""

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
    runner: Served,
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
    loop = _Loop(runner, poll, stopping, max_recoveries, on_problem)
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
        runner: Served,
        poll: float,
        stop: threading.Event,
        max_recoveries: int,
        on_problem: Problem | None,
    ) -> None:
        self._runner = runner
        self._poll = poll
        self._stop = stop
        self._max_recoveries = max_recoveries
        self._on_problem = on_problem
        store = runner.store
        self._queue = store if isinstance(store, WorkQueue) else None

    def run(self) -> None:
        runner = self._runner
        flow = runner.name
        # recover() takes what a dead process of this host left under a lease still
        # running. With a queue: when idle, at most once a poll (claims take every free
        # instance, and one whose owner died once its lease ran out); without one, it is
        # how work is found, at every poll.
        recovered: float | None = None
        while not self._stop.is_set():
            try:
                if self._queue is not None and runner._serve_next(
                    self._queue, self._max_recoveries, self._on_problem
                ):
                    continue  # there may be more: claim again before waiting
                if recovered is None or time.monotonic() - recovered >= self._poll:
                    recovered = time.monotonic()
                    runner.recover(max_recoveries=self._max_recoveries, on_problem=self._on_problem)
                # Idle: fire the timers that came due (sleeps, wait timeouts).
                runner.resume_due()
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


def resume_next(
    queue: WorkQueue,
    store: Store,
    flow: str,
    me: str,
    clock: Clock,
    *,
    max_recoveries: int,
    resume: Callable[[RunRecord, int], T],
    parked: Callable[[RunRecord], T],
    check: Callable[[RunRecord, int], None],
    on_problem: Problem | None,
    **takeover: Any,
) -> bool:
    """Claim the next free instance of `flow` and take it over as `recover` does (check,
    journal, park or `resume`); False if there was none this process may drive now.

    `takeover`: further keywords of `resume_claimed`, passed on as they are."""
    claimed = queue.claim_next(flow, me, now=clock.now())
    if claimed is None:
        return False
    workflow_id, token, previous = claimed
    # Held from the claim to the end of the drive, as recover() holds what it claims: a
    # recover() on another thread here must not take it over meanwhile.
    if not ACTIVE.hold(workflow_id):
        # This process still runs something of it (an abandoned attempt running on, or
        # another thread's takeover): give it back, and wait for work rather than claim it
        # again at once.
        store.release_run(workflow_id, token, now=clock.now())
        return False
    try:
        resume_claimed(
            store, workflow_id, token, clock, was=previous, max_recoveries=max_recoveries,
            resume=resume, parked=parked, check=check, on_problem=on_problem, **takeover,
        )  # fmt: skip
    finally:
        ACTIVE.leave(workflow_id)
    return True


def wait_for_result(runner: Served, workflow_id: str, timeout: float | None) -> Any:
    """The instance's record once it finished (or parked), polling the store in real time."""
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise UsageError(f"result(timeout={timeout!r}) takes seconds >= 0, or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        record = runner._record(workflow_id)
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
