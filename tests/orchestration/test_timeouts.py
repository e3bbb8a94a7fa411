"""Timeouts: a slow attempt is abandoned and retried; what it returns late is kept or undone.

Attempt timeouts are real time, so these tests use 50 ms timeouts and hold the slow attempt
on a `threading.Event` (released at the end of each test), never a long sleep.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import Context, EntryKind, WorkflowStatus
from coordination.errors import CompensationFailed
from coordination.stores import MemoryStore, SQLiteStore, StepOutcome
from tests.orchestration.flows import (
    A,
    Alpha,
    AsyncAlpha,
    AsyncTimed,
    B,
    Beta,
    Boom,
    Harness,
    Hook,
    Join,
    Refused,
    Split,
    SplitJoin,
    Start,
    TimedSecond,
    TimedSingle,
    TimedThenSecond,
)

ROOT = Path(__file__).resolve().parents[2]


class Slow:
    """Makes an attempt block until released, then return `result` (late)."""

    def __init__(self, result: Any = None) -> None:
        self.release = threading.Event()
        self.result = A(n=100) if result is None else result
        self.thread: threading.Thread | None = None

    def hook(self, message: Any, ctx: Context | None) -> Any:
        self.thread = threading.current_thread()
        assert self.release.wait(5), "never released"
        return self.result

    def finish(self) -> None:
        """Let the slow attempt return, and wait until its late result is handled."""
        self.release.set()
        if self.thread is not None:
            self.thread.join(5)
            assert not self.thread.is_alive()

    def then(self, outcome: BaseException | None = None) -> Hook:
        """A hook for the next attempt: let the slow one land first, then go on or raise."""

        def next_attempt(message: Any, ctx: Context | None) -> None:
            self.finish()
            if outcome is not None:
                raise outcome

        return Hook(next_attempt)


@pytest.fixture
def slow() -> Iterator[Slow]:
    holder = Slow()
    yield holder
    holder.finish()  # never leave a thread blocked behind a test


def late_entries(run: Any) -> list[Any]:
    return list(run.journal.of_kind(EntryKind.LATE_RESULT))


def test_a_sync_attempt_past_its_timeout_fails_and_is_retried(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == A(n=2)  # the second attempt's result
    failed = run.journal.of_kind(EntryKind.FAILED)
    assert len(failed) == 1
    assert failed[0].attempt == 1
    assert failed[0].error is not None
    assert failed[0].error.startswith("AttemptTimeout")
    assert [c.attempt for c in h[Alpha].named("first")] == [1, 2]


def test_the_abandoned_thread_is_a_daemon(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook))
    h.orchestrator.run(Start(n=1))
    assert slow.thread is not None
    assert slow.thread is not threading.current_thread()
    assert slow.thread.daemon
    assert slow.thread.is_alive()  # abandoned, still running


def test_a_late_result_of_a_step_that_succeeded_is_left_alone(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPLETED
    slow.finish()
    run = h.orchestrator.get("wf")
    entries = late_entries(run)
    assert len(entries) == 1
    assert entries[0].attempt == 1
    assert entries[0].detail is not None
    assert "left alone" in entries[0].detail
    assert h[Alpha].count("undo_first") == 0
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == A(n=2)
    late = next(s for s in run.steps if s.key == "Alpha.first:late1")
    assert late.outcome is StepOutcome.LATE
    assert late.output == A(n=100)


def test_a_late_result_of_a_step_that_succeeded_is_not_undone_with_the_saga(slow: Slow) -> None:
    # The late result lands before the step settles; then a later step fails. The saga undoes
    # the step once, with its live output: the late result is the same effect.
    h = Harness(TimedThenSecond)
    h[Alpha].script("first", Hook(slow.hook), slow.then())
    h[Beta].fail("second", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert [c.message for c in h[Alpha].named("undo_first")] == [A(n=2)]
    entries = late_entries(run)
    assert len(entries) == 1
    assert "left alone" in (entries[0].detail or "")


def test_a_late_result_of_a_failed_step_is_undone_with_the_saga(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook), slow.then(Refused("no")))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED
    undo = h[Alpha].named("undo_first")
    assert [c.message for c in undo] == [A(n=100)]  # the output-typed undo gets the late output
    assert [c.key for c in undo] == ["wf:Alpha.first:late1:undo"]  # its own key
    entries = late_entries(run)
    assert len(entries) == 1
    assert "undone (the action failed)" in (entries[0].detail or "")
    assert run.journal.names(EntryKind.COMPENSATED) == ["Alpha.undo_first"]
    keys = [s.key for s in run.steps]
    assert keys == ["Alpha.first", "Alpha.first:late1", "Alpha.first:late1:undo"]


def test_a_late_result_after_run_returned_is_compensated(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook), Refused("no"))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Alpha].count("undo_first") == 0
    assert run.journal.of_kind(EntryKind.COMPENSATED) == run.journal[:0]

    slow.finish()  # the late result is compensated on the thread it returns on

    run = h.orchestrator.get("wf")
    assert run.status is WorkflowStatus.COMPENSATED
    assert [c.message for c in h[Alpha].named("undo_first")] == [A(n=100)]
    assert h[Alpha].named("undo_first")[0].thread is slow.thread
    entries = late_entries(run)
    assert len(entries) == 1
    assert "undone (the action failed)" in (entries[0].detail or "")
    compensated = run.journal.of_kind(EntryKind.COMPENSATED)
    assert [e.name for e in compensated] == ["Alpha.undo_first"]
    assert compensated[0].undoes == "Alpha.first"
    undo = next(s for s in run.steps if s.key == "Alpha.first:late1:undo")
    assert undo.outcome is StepOutcome.COMPENSATED
    assert run.compensation_error is None


def test_a_failing_late_compensation_after_run_returned_fails_the_run(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook), Refused("no"))
    h[Alpha].fail("undo_first", *[Boom("refund service down")] * 5)
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED

    slow.finish()

    run = h.orchestrator.get("wf")
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert h[Alpha].count("undo_first") == 5
    error = run.compensation_error
    assert isinstance(error, CompensationFailed)
    assert error.step == "Alpha.first"
    assert "late result" in str(error)
    assert run.journal[-1].kind is EntryKind.WORKFLOW_FINISHED
    assert run.journal[-1].detail == "compensation_failed"
    assert h.orchestrator.runs(WorkflowStatus.COMPENSATION_FAILED)[0].workflow_id == "wf"


def test_a_late_failure_is_journaled_and_not_undone(slow: Slow) -> None:
    def fail_late(message: Any, ctx: Context | None) -> None:
        slow.thread = threading.current_thread()
        assert slow.release.wait(5)
        raise Boom("too late anyway")

    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(fail_late))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPLETED
    slow.finish()
    entries = late_entries(h.orchestrator.get("wf"))
    assert len(entries) == 1
    assert "failed late" in (entries[0].detail or "")
    assert entries[0].error == "Boom: too late anyway"
    assert h[Alpha].count("undo_first") == 0


def test_a_timed_sync_attempt_under_run_async(slow: Slow) -> None:
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook))

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1), workflow_id="wf")

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert run.journal.of_kind(EntryKind.FAILED)[0].error.startswith("AttemptTimeout")  # type: ignore[union-attr]
    slow.finish()
    assert "left alone" in (late_entries(h.orchestrator.get("wf"))[0].detail or "")


def test_an_async_attempt_past_its_timeout_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def hang(message: Any, ctx: Context | None) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    h = Harness(AsyncTimed)
    h[AsyncAlpha].script("afirst", Hook(hang))

    async def main() -> Any:
        return await h.orchestrator.run_async(Start(n=1))

    run = asyncio.run(main())
    assert run.status is WorkflowStatus.COMPLETED
    assert cancelled == [True]
    failed = run.journal.of_kind(EntryKind.FAILED)
    assert [e.attempt for e in failed] == [1]
    assert (failed[0].error or "").startswith("AttemptTimeout")
    assert late_entries(run) == []


def test_an_async_attempt_past_its_timeout_under_sync_run_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def hang(message: Any, ctx: Context | None) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    h = Harness(AsyncTimed)
    h[AsyncAlpha].script("afirst", Hook(hang), Hook(hang))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert cancelled == [True, True]
    assert h[AsyncAlpha].count("aundo_first") == 0


def test_a_compensation_attempt_past_its_timeout_is_retried(slow: Slow) -> None:
    def hang(message: Any, ctx: Context | None) -> None:
        slow.thread = threading.current_thread()
        assert slow.release.wait(5)

    h = Harness(SplitJoin)
    h[Join].fail("join", Refused("no"))
    h[Split].script("unsplit", Hook(hang))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Split].count("unsplit") == 2
    failures = run.journal.of_kind(EntryKind.COMPENSATION_FAILED)
    assert [(e.name, e.attempt) for e in failures] == [("Split.unsplit", 1)]
    assert (failures[0].error or "").startswith("AttemptTimeout")
    entries = len(run.journal)
    slow.finish()  # a late undo attempt is the same undo: nothing more happens
    after = h.orchestrator.get("wf")
    assert len(after.journal) == entries
    assert after.status is WorkflowStatus.COMPENSATED


def test_a_late_undo_failing_while_the_saga_runs_fails_the_run(slow: Slow) -> None:
    slow.result = B(n=100)
    h = Harness(TimedSecond)
    h[Beta].script("second", Hook(slow.hook), Refused("no"))
    h[Beta].fail("undo_second", *[Boom("gone")] * 5)
    # while the saga undoes Alpha.first, the late B lands and its undo fails
    h[Alpha].script("undo_first", Hook(lambda message, ctx: slow.finish()))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert [c.message for c in h[Beta].named("undo_second")] == [B(n=100)] * 5
    assert h[Alpha].count("undo_first") == 1
    error = run.compensation_error
    assert isinstance(error, CompensationFailed)
    assert error.step == "Beta.second"
    assert "late result" in str(error)
    assert run.journal[-1].detail == "compensation_failed"


def test_a_bounded_store_keeps_a_run_whose_abandoned_attempt_may_still_return(
    slow: Slow,
) -> None:
    # Defect: a bounded MemoryStore forgot the COMPENSATED run before its abandoned attempt
    # returned, so the late charge was never refunded (only a warning).
    store = MemoryStore(max_finished=1)
    h = Harness(TimedSingle, store=store)
    h[Alpha].script("first", Hook(slow.hook), Refused("no"))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED
    assert [o.workflow_id for o in store.owed_runs(TimedSingle.plan.name)] == [
        "wf"
    ]  # an attempt is still out

    for n in range(3):  # more finished runs than the store keeps
        h[Alpha].script("first", A(n=n))
        assert (
            h.orchestrator.run(Start(n=n), workflow_id=f"other{n}").status
            is WorkflowStatus.COMPLETED
        )
    assert h.orchestrator.get("wf") is not None  # kept: it still owes

    slow.finish()

    assert [c.message for c in h[Alpha].named("undo_first")] == [A(n=100)]
    assert h.orchestrator.get("wf") is not None
    assert (
        store.owed_runs(TimedSingle.plan.name) == []
    )  # nothing outstanding now: it may be forgotten


def test_recovery_here_leaves_a_finished_run_whose_abandoned_attempt_runs_on(
    slow: Slow,
) -> None:
    # recover() in the process that abandoned the attempt must not take the run over: the
    # late result would then be fenced out and its undo never run.
    h = Harness(TimedSingle)
    h[Alpha].script("first", Hook(slow.hook), Refused("no"))
    h.orchestrator.run(Start(n=1), workflow_id="wf")
    fresh = TimedSingle(*h.fakes.values(), store=h.store, clock=h.clock)
    assert fresh.recover() == []
    assert [o.workflow_id for o in h.store.owed_runs(TimedSingle.plan.name)] == ["wf"]

    slow.finish()

    assert [c.message for c in h[Alpha].named("undo_first")] == [A(n=100)]
    assert h.store.owed_runs(TimedSingle.plan.name) == []


_DIES_WITH_AN_ABANDONED_ATTEMPT = """
import os, sys, threading
from coordination.stores import SQLiteStore
from tests.orchestration.flows import Alpha, Harness, Hook, Refused, Start, TimedSingle

h = Harness(TimedSingle)
never = threading.Event()
h[Alpha].script("first", Hook(lambda message, ctx: never.wait()), Refused("no"))
orchestrator = TimedSingle(*h.fakes.values(), store=SQLiteStore(sys.argv[1]))
print(orchestrator.run(Start(n=1), workflow_id="wf").status.name, flush=True)
os._exit(0)  # the abandoned attempt dies with the process, still blocked
"""


def test_a_run_owing_only_an_attempt_that_died_stops_owing_on_recovery(tmp_path: Any) -> None:
    path = tmp_path / "runs.db"
    done = subprocess.run(
        [sys.executable, "-c", _DIES_WITH_AN_ABANDONED_ATTEMPT, str(path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "COMPENSATED"
    store = SQLiteStore(path)
    try:
        assert [o.workflow_id for o in store.owed_runs(TimedSingle.plan.name)] == ["wf"]
        h = Harness(TimedSingle, store=MemoryStore())
        TimedSingle(*h.fakes.values(), store=store).recover()
        assert store.owed_runs(TimedSingle.plan.name) == []  # nothing can come back now
        assert h[Alpha].count("undo_first") == 0
        run = store.get_run("wf")
        assert run is not None
        assert run.status is WorkflowStatus.COMPENSATED
    finally:
        store.close()
