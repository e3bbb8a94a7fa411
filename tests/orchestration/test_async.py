"""run_async() and async actions, and sync run() of flows with async actions."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from coordination import EntryKind, WorkflowStatus
from coordination.errors import UsageError
from tests.orchestration.flows import (
    A,
    AsyncAlpha,
    AsyncFork,
    AsyncRight,
    Boom,
    Fork,
    Harness,
    L,
    Left,
    Linear,
    MixedFork,
    R,
    Refused,
    Right,
    Start,
)


def test_run_async_with_async_actions() -> None:
    h = Harness(AsyncFork)

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1), workflow_id="wf")

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))
    assert [c.key for c in h[AsyncAlpha].named("afirst")] == ["wf:AsyncAlpha.afirst"]
    assert AsyncFork.plan.has_async


def test_run_async_runs_sync_actions_in_worker_threads() -> None:
    h = Harness(Fork)
    loop_thread: list[threading.Thread] = []

    async def main() -> Any:
        loop_thread.append(threading.current_thread())
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    threads = [c.thread for fake in h.fakes.values() for c in fake.calls]
    assert len(threads) == 3
    assert all(thread is not loop_thread[0] for thread in threads)


def test_run_async_of_a_mixed_flow() -> None:
    h = Harness(MixedFork)
    loop_thread: list[threading.Thread] = []

    async def main() -> Any:
        loop_thread.append(threading.current_thread())
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))
    assert h[AsyncAlpha].named("afirst")[0].thread is loop_thread[0]
    assert h[Left].named("left")[0].thread is not loop_thread[0]


def test_run_async_compensates_with_async_compensations() -> None:
    h = Harness(AsyncFork)
    h[AsyncRight].fail("aright", Refused("no"))

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPENSATED
    names = run.journal.names(EntryKind.COMPENSATED)
    assert names == ["AsyncLeft.aundo_left", "AsyncAlpha.aundo_first"]


def test_sync_run_of_a_flow_with_async_actions_outside_a_loop() -> None:
    h = Harness(AsyncFork)
    h[AsyncAlpha].fail("afirst", Boom())
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))
    assert h.clock.sleeps == [1.0]


def test_sync_run_compensates_with_async_compensations() -> None:
    h = Harness(AsyncFork)
    h[AsyncRight].fail("aright", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "AsyncLeft.aundo_left",
        "AsyncAlpha.aundo_first",
    ]


def test_sync_run_of_a_mixed_flow() -> None:
    h = Harness(MixedFork)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert h[Right].named("right")[0].message == A(n=2)


def test_sync_run_inside_a_running_loop_raises_use_run_async() -> None:
    h = Harness(AsyncFork)

    async def main() -> None:
        with pytest.raises(UsageError, match="run_async"):
            h.orchestrator.run(Start(n=1))

    asyncio.run(main())
    assert h[AsyncAlpha].calls == []  # nothing ran
    assert h.store.list_runs() == []  # nothing was recorded either


def test_sync_run_of_a_sync_flow_inside_a_loop_is_allowed() -> None:
    h = Harness(Linear)

    async def main() -> Any:
        return h.orchestrator.run(Start(n=1))

    assert asyncio.run(main()).status is WorkflowStatus.COMPLETED
