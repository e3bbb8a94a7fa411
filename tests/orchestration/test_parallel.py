"""parallel(): declared order under run(), worker threads with a timeout, concurrency async."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from coordination import Context, EntryKind, WorkflowStatus
from tests.orchestration.flows import (
    A,
    Alpha,
    AsyncAlpha,
    AsyncFork,
    AsyncLeft,
    AsyncRight,
    Boom,
    Fork,
    ForkJoin,
    ForkTimed,
    Harness,
    Hook,
    Join,
    L,
    Left,
    LUndone,
    R,
    Refused,
    Right,
    Start,
)

# -- run(): sequential, in declared order ----------------------------------------------------


def test_run_calls_branches_in_declared_order_on_the_calling_thread() -> None:
    h = Harness(Fork)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.journal.names(EntryKind.STARTED) == ["Alpha.first", "Left.left", "Right.right"]
    assert h[Left].named("left")[0].thread is threading.current_thread()
    assert h[Right].named("right")[0].thread is threading.current_thread()


def test_a_failing_branch_lets_its_siblings_run_to_their_end_then_undoes_them() -> None:
    """The one rule: every action of a generation runs to its end, whatever its siblings do."""
    h = Harness(Fork)
    h[Left].fail("left", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Right].count("right") == 1
    assert run.journal.names(EntryKind.COMPENSATED) == ["Right.undo_right", "Alpha.undo_first"]


def test_completed_siblings_are_compensated() -> None:
    h = Harness(Fork)
    h[Right].fail("right", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.COMPENSATED) == ["Left.undo_left", "Alpha.undo_first"]
    assert [c.message for c in h[Left].named("undo_left")] == [L(n=12)]
    assert h[Right].count("undo_right") == 0


def test_a_step_after_a_parallel_group_failing_undoes_both_branches() -> None:
    h = Harness(ForkJoin)
    h[Join].fail("join", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    names = run.journal.names(EntryKind.COMPENSATED)
    # siblings in any order, both before the step they depend on
    assert sorted(names[:2]) == ["Left.undo_left", "Right.undo_right"]
    assert names[2:] == ["Alpha.undo_first"]


def test_each_branch_is_recorded_as_its_own_step() -> None:
    h = Harness(Fork)
    run = h.orchestrator.run(Start(n=1))
    assert [s.key for s in run.steps] == ["Alpha.first", "Left.left", "Right.right"]


# -- run() with a timeout on a branch: worker threads ------------------------------------------


def test_a_branch_timeout_runs_the_group_concurrently_on_worker_threads() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def meet(message: Any, ctx: Context | None) -> None:
        barrier.wait()  # breaks (and fails the run) unless both branches run at once

    h = Harness(ForkTimed)
    h[Left].script("left", Hook(meet))
    h[Right].script("right", Hook(meet))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))
    threads = {h[Left].named("left")[0].thread, h[Right].named("right")[0].thread}
    assert threading.current_thread() not in threads
    assert len(threads) == 2


def test_a_failing_threaded_branch_lets_its_sibling_finish_then_compensates() -> None:
    right_done = threading.Event()

    def fail_after_sibling(message: Any, ctx: Context | None) -> None:
        assert right_done.wait(5)
        raise Refused("no")

    def finish(message: Any, ctx: Context | None) -> None:
        right_done.set()

    h = Harness(ForkTimed)
    h[Left].script("left", Hook(fail_after_sibling))
    h[Right].script("right", Hook(finish))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.COMPENSATED) == ["Right.undo_right", "Alpha.undo_first"]
    assert h[Left].count("undo_left") == 0


# -- run_async(): concurrent ---------------------------------------------------------------------


def test_run_async_runs_branches_concurrently() -> None:
    async def main() -> Any:
        left_in, right_in = asyncio.Event(), asyncio.Event()

        async def left_hook(message: Any, ctx: Context | None) -> None:
            left_in.set()
            await asyncio.wait_for(right_in.wait(), 5)

        async def right_hook(message: Any, ctx: Context | None) -> None:
            right_in.set()
            await asyncio.wait_for(left_in.wait(), 5)

        h = Harness(AsyncFork)
        h[AsyncLeft].script("aleft", Hook(left_hook))
        h[AsyncRight].script("aright", Hook(right_hook))
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))


def test_run_async_lets_running_siblings_finish_then_compensates() -> None:
    async def main() -> tuple[Any, Harness]:
        right_in, left_failed = asyncio.Event(), asyncio.Event()

        async def left_hook(message: Any, ctx: Context | None) -> None:
            await asyncio.wait_for(right_in.wait(), 5)
            left_failed.set()
            raise Refused("no")

        async def right_hook(message: Any, ctx: Context | None) -> None:
            right_in.set()
            await asyncio.wait_for(left_failed.wait(), 5)
            await asyncio.sleep(0)  # let the failure be recorded first

        h = Harness(AsyncFork)
        h[AsyncLeft].script("aleft", Hook(left_hook))
        h[AsyncRight].script("aright", Hook(right_hook))
        return await h.orchestrator.run_async(Start(n=1)), h

    run, h = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPENSATED
    kinds_and_names = [
        (e.kind, e.name)
        for e in run.journal
        if e.kind in (EntryKind.FAILED, EntryKind.COMPLETED, EntryKind.COMPENSATED)
    ]
    assert kinds_and_names == [
        (EntryKind.COMPLETED, "AsyncAlpha.afirst"),
        (EntryKind.FAILED, "AsyncLeft.aleft"),
        (EntryKind.COMPLETED, "AsyncRight.aright"),
        (EntryKind.COMPENSATED, "AsyncRight.aundo_right"),
        (EntryKind.COMPENSATED, "AsyncAlpha.aundo_first"),
    ]
    assert h[AsyncLeft].count("aundo_left") == 0


def test_run_async_with_sync_parallel_branches() -> None:
    h = Harness(Fork)

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))
    assert h[Alpha].named("first")[0].message == Start(n=1)
    assert A(n=2) == h[Left].named("left")[0].message
    assert LUndone not in {type(c.message) for c in h[Left].calls}


def test_run_async_transient_branch_failure_is_retried_with_the_clock() -> None:
    h = Harness(AsyncFork)
    h[AsyncAlpha].fail("afirst", Boom())

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert h.clock.sleeps == [1.0]
