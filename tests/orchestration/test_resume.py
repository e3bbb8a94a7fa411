"""An interrupted run (KeyboardInterrupt, cancellation) is released and resumed from its records."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest

from coordination import EntryKind, Retry, WorkflowStatus
from coordination.errors import FlowChanged, WorkflowBusy
from coordination.orchestration import Orchestrator, step
from tests.orchestration.flows import (
    FAKES,
    A,
    Alpha,
    AsyncAlpha,
    AsyncFork,
    AsyncLeft,
    Beta,
    Boom,
    C,
    D,
    Delta,
    Fork,
    Gamma,
    Harness,
    Hook,
    Left,
    Linear,
    Right,
    Start,
)

#: Each test on a MemoryStore and on a PostgresStore (tests/orchestration/conftest.py).
pytestmark = pytest.mark.usefixtures("each_store")


def test_an_interrupted_run_is_released_and_resumes_without_rerunning_recorded_steps() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    stored = h.store.get_run("wf")
    assert stored is not None
    assert stored.status is WorkflowStatus.RUNNING
    assert stored.owner is None  # released, so it can be resumed
    assert [s.key for s in stored.steps] == ["Alpha.first"]

    run = h.orchestrator.run(Start(n=1), workflow_id="wf")

    assert run.status is WorkflowStatus.COMPLETED
    assert h[Alpha].count("first") == 1  # recorded: never run again
    seconds = h[Beta].named("second")
    assert len(seconds) == 2  # started but not recorded: runs again, same key
    assert {call.key for call in seconds} == {"wf:Beta.second"}
    assert [s.key for s in run.steps] == ["Alpha.first", "Beta.second", "Gamma.third"]
    assert run.output is not None
    assert run.journal.names(EntryKind.RECOVERED) == [Linear.plan.name]
    started = run.journal.of_kind(EntryKind.STARTED)
    assert started.names(EntryKind.STARTED) == ["Alpha.first", "Beta.second", "Gamma.third"]
    assert [e.attempt for e in started] == [1, 2, 1]  # the re-run continues the numbering


def test_an_interrupted_compensation_resumes_without_repeating_recorded_undos() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Boom("no"))
    h[Alpha].fail("undo_first", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    stored = h.store.get_run("wf")
    assert stored is not None
    assert stored.status is WorkflowStatus.COMPENSATING
    assert h[Beta].count("undo_second") == 1

    run = h.orchestrator.run(Start(n=1), workflow_id="wf")

    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Beta].count("undo_second") == 1  # recorded undo: not repeated
    assert h[Alpha].count("undo_first") == 2  # interrupted undo: run again
    assert h[Gamma].count("third") == 1
    undos = [s.key for s in run.steps if s.key.endswith(":undo")]
    assert undos == ["Gamma.third:undo", "Beta.second:undo", "Alpha.first:undo"]


def test_a_resumed_parallel_group_runs_only_the_branches_not_recorded() -> None:
    h = Harness(Fork)
    h[Right].fail("right", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")

    run = h.orchestrator.run(Start(n=1), workflow_id="wf")

    assert run.status is WorkflowStatus.COMPLETED
    assert h[Left].count("left") == 1
    assert h[Right].count("right") == 2
    assert run.output is not None


def test_a_cancelled_run_async_is_released_and_resumes() -> None:
    h = Harness(AsyncFork)

    async def scenario() -> None:
        entered = asyncio.Event()

        async def hang(message: object, ctx: object) -> None:
            entered.set()
            await asyncio.Event().wait()  # until cancelled

        h[AsyncLeft].script("aleft", Hook(hang))
        task = asyncio.create_task(h.orchestrator.run_async(Start(n=1), workflow_id="wf"))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    stored = h.store.get_run("wf")
    assert stored is not None
    assert stored.owner is None
    assert stored.status is WorkflowStatus.RUNNING

    run = asyncio.run(h.orchestrator.run_async(Start(n=1), workflow_id="wf"))

    assert run.status is WorkflowStatus.COMPLETED
    assert h[AsyncAlpha].count("afirst") == 1
    assert h[AsyncLeft].count("aleft") == 2


def test_a_run_owned_by_someone_else_is_busy_not_resumed() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    claimed = h.store.claim_run("wf", "other-host:1:0", now=h.clock.now())
    assert claimed is not None
    with pytest.raises(WorkflowBusy, match="other-host"):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert h[Alpha].count("first") == 1


def test_claim_is_refused_for_owned_and_finished_runs() -> None:
    h = Harness(Linear)
    run = h.orchestrator.run(Start(n=1), workflow_id="done")
    assert run.status is WorkflowStatus.COMPLETED
    assert h.store.claim_run("done", "me", now=1.0) is None
    assert h.store.claim_run("unknown", "me", now=1.0) is None


class VersionOne(Orchestrator[Start, C], name="versioned"):
    steps = (step(Alpha.first), step(Beta.second), step(Gamma.third))


class VersionTwo(Orchestrator[Start, D], name="versioned"):
    """The same flow name with a step added: its runs cannot resume VersionOne's."""

    steps = (step(Alpha.first), step(Beta.second), step(Gamma.third), step(Delta.fourth))


class VersionOneSlower(Orchestrator[Start, C], name="versioned"):
    """Only retries changed: same shape, so it may resume VersionOne's runs."""

    steps = (
        step(Alpha.first, retry=Retry(attempts=9)),
        step(Beta.second),
        step(Gamma.third),
    )


def test_a_run_of_another_flow_definition_is_not_resumed() -> None:
    h = Harness(VersionOne)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    newer = VersionTwo(*[FAKES[i]() for i in VersionTwo.plan.interfaces], store=h.store)
    with pytest.raises(FlowChanged, match=r"'wf' was started by another.*Delta\.fourth"):
        newer.run(Start(n=1), workflow_id="wf")
    problems: list[tuple[str, BaseException]] = []
    assert newer.recover(on_problem=lambda wid, error: problems.append((wid, error))) == []
    assert [wid for wid, _ in problems] == ["wf"]
    assert isinstance(problems[0][1], FlowChanged)
    stored = h.store.get_run("wf")
    assert stored is not None
    assert stored.owner is None  # left for code that can resume it
    same_shape = VersionOneSlower(
        *[FAKES[i]() for i in VersionOneSlower.plan.interfaces], store=h.store
    )
    assert same_shape.run(Start(n=1), workflow_id="wf").status is WorkflowStatus.COMPLETED


class SlowFirst(Orchestrator[Start, A]):
    """One step whose attempt has a generous timeout (it is interrupted long before)."""

    steps = (step(Alpha.first, timeout=30.0, retry=Retry(attempts=2)),)


class Held:
    """An attempt that blocks until released, after `interrupt()` ran (on its thread)."""

    def __init__(self, interrupt: Callable[[], object]) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.interrupt = interrupt
        self.thread: threading.Thread | None = None

    def hook(self, message: object, ctx: object) -> A:
        self.thread = threading.current_thread()
        self.started.set()
        self.interrupt()
        assert self.release.wait(10), "never released"
        return A(n=100)

    def finish(self) -> None:
        self.release.set()
        if self.thread is not None:
            self.thread.join(10)
            assert not self.thread.is_alive()


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt), whatever this process inherited: a
    shell starting `make test` in the background without job control ignores SIGINT, and
    Python then installs no handler of its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_while_a_timed_attempt_runs_keeps_the_run_busy_until_it_returns() -> None:
    # The rule (defect 16): Ctrl-C interrupts the wait, not the attempt's thread. The run
    # stays busy in this process until the attempt returns, so running it again never runs
    # the step twice at once. Once it returned, running the run again makes the step's next
    # attempt under the same idempotency key (the participant answers it from its key).
    h = Harness(SlowFirst)
    held = Held(lambda: os.kill(os.getpid(), signal.SIGINT))
    h[Alpha].script("first", Hook(held.hook))
    try:
        with pytest.raises(KeyboardInterrupt):
            h.orchestrator.run(Start(n=1), workflow_id="wf")
        with pytest.raises(WorkflowBusy):
            h.orchestrator.run(Start(n=1), workflow_id="wf")
        assert h.orchestrator.recover() == []
        assert h[Alpha].count("first") == 1
    finally:
        held.finish()
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPLETED
    calls = h[Alpha].named("first")
    assert [c.attempt for c in calls] == [1, 2]
    assert len({c.key for c in calls}) == 1


def test_a_cancelled_task_keeps_its_timed_attempt_busy_until_it_returns() -> None:
    h = Harness(SlowFirst)
    held = Held(lambda: None)
    h[Alpha].script("first", Hook(held.hook))

    async def cancel_mid_attempt() -> None:
        task = asyncio.create_task(h.orchestrator.run_async(Start(n=1), workflow_id="wf"))
        while not held.started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(WorkflowBusy):
            await h.orchestrator.run_async(Start(n=1), workflow_id="wf")

    try:
        asyncio.run(cancel_mid_attempt())
    finally:
        held.finish()
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPLETED
    assert h[Alpha].count("first") == 2
