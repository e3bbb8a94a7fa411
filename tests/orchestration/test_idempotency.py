"""Idempotency by workflow_id, and reading runs back from the store."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from coordination import Context, WorkflowStatus
from coordination.errors import UsageError, WorkflowBusy, WorkflowConflict, WorkflowNotFound
from coordination.stores import MemoryStore
from tests.orchestration.flows import (
    A,
    Alpha,
    Beta,
    FakeAlpha,
    Gamma,
    Harness,
    Hook,
    Linear,
    Other,
    Refused,
    Single,
    Start,
)

#: Each test on a MemoryStore and on a PostgresStore (tests/orchestration/conftest.py).
pytestmark = pytest.mark.usefixtures("each_store")


def test_the_same_id_and_message_returns_the_recorded_run_without_re_running() -> None:
    h = Harness(Linear)
    first = h.orchestrator.run(Start(n=1), workflow_id="order-1")
    counts = h.all_calls()
    again = h.orchestrator.run(Start(n=1), workflow_id="order-1")
    assert h.all_calls() == counts
    assert again.status is WorkflowStatus.COMPLETED
    assert again.output == first.output
    assert again.journal == first.journal


def test_a_compensated_run_is_not_re_run_either() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Refused("no"))
    h.orchestrator.run(Start(n=1), workflow_id="order-1")
    counts = h.all_calls()
    again = h.orchestrator.run(Start(n=1), workflow_id="order-1")
    assert again.status is WorkflowStatus.COMPENSATED
    assert h.all_calls() == counts
    assert h[Gamma].count("third") == 1


def test_a_different_message_for_a_known_id_is_a_conflict() -> None:
    h = Harness(Linear)
    h.orchestrator.run(Start(n=1), workflow_id="order-1")
    with pytest.raises(WorkflowConflict, match="different message") as caught:
        h.orchestrator.run(Start(n=2), workflow_id="order-1")
    assert caught.value.workflow_id == "order-1"
    assert h[Alpha].count("first") == 1


def test_the_same_id_in_another_flow_on_the_same_store_is_a_conflict() -> None:
    store = MemoryStore()
    linear = Harness(Linear, store=store)
    single = Harness(Single, store=store)
    linear.orchestrator.run(Start(n=1), workflow_id="shared")
    with pytest.raises(WorkflowConflict, match=r"is a run of flow .*Linear"):
        single.orchestrator.run(Start(n=1), workflow_id="shared")
    assert single[Alpha].calls == []


def test_a_run_in_progress_is_busy() -> None:
    entered, release = threading.Event(), threading.Event()

    def block(message: Any, ctx: Context | None) -> None:
        entered.set()
        assert release.wait(5)

    h = Harness(Linear)
    h[Alpha].script("first", Hook(block))
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(h.orchestrator.run(Start(n=1), workflow_id="busy"))
    )
    worker.start()
    try:
        assert entered.wait(5)
        with pytest.raises(WorkflowBusy, match="RUNNING") as caught:
            h.orchestrator.run(Start(n=1), workflow_id="busy")
        assert caught.value.workflow_id == "busy"
        # a different message is still a conflict, busy or not
        with pytest.raises(WorkflowConflict):
            h.orchestrator.run(Start(n=2), workflow_id="busy")
        assert h.orchestrator.get("busy").status is WorkflowStatus.RUNNING
    finally:
        release.set()
        worker.join(5)
    assert results[0].status is WorkflowStatus.COMPLETED
    assert h[Alpha].count("first") == 1


def test_generated_workflow_ids_are_unique() -> None:
    h = Harness(Single)
    other = Harness(Single, store=h.store)
    ids = {h.orchestrator.run(Start(n=1)).workflow_id for _ in range(20)}
    ids |= {other.orchestrator.run(Start(n=1)).workflow_id for _ in range(20)}
    assert len(ids) == 40
    assert all(ids)
    assert h[Alpha].count("first") == 20


def test_a_wrong_start_message_type_is_a_usage_error() -> None:
    h = Harness(Single)
    with pytest.raises(UsageError, match="starts with Start, got Other"):
        h.orchestrator.run(Other(n=1))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="starts with Start, got A"):
        h.orchestrator.run(A(n=1))  # type: ignore[arg-type]
    assert h.store.list_runs() == []


@pytest.mark.parametrize("workflow_id", ["", 42])
def test_a_bad_workflow_id_is_a_usage_error(workflow_id: Any) -> None:
    h = Harness(Single)
    with pytest.raises(UsageError, match="workflow_id"):
        h.orchestrator.run(Start(n=1), workflow_id=workflow_id)


def test_get_and_runs() -> None:
    h = Harness(Linear)
    h.orchestrator.run(Start(n=1), workflow_id="ok-1")
    h[Beta].fail("second", Refused("no"))
    h.orchestrator.run(Start(n=2), workflow_id="bad-1")
    h.orchestrator.run(Start(n=3), workflow_id="ok-2")

    got = h.orchestrator.get("bad-1")
    assert got.status is WorkflowStatus.COMPENSATED
    assert got.input == Start(n=2)
    assert [r.workflow_id for r in h.orchestrator.runs()] == ["ok-1", "bad-1", "ok-2"]
    assert [r.workflow_id for r in h.orchestrator.runs(WorkflowStatus.COMPLETED)] == [
        "ok-1",
        "ok-2",
    ]
    assert [r.workflow_id for r in h.orchestrator.runs(WorkflowStatus.COMPENSATED)] == ["bad-1"]
    assert h.orchestrator.runs(WorkflowStatus.RUNNING) == []


def test_runs_lists_only_this_flows_runs() -> None:
    store = MemoryStore()
    linear = Harness(Linear, store=store)
    single = Harness(Single, store=store)
    linear.orchestrator.run(Start(n=1), workflow_id="l")
    single.orchestrator.run(Start(n=1), workflow_id="s")
    assert [r.workflow_id for r in linear.orchestrator.runs()] == ["l"]
    assert [r.workflow_id for r in single.orchestrator.runs()] == ["s"]
    with pytest.raises(WorkflowNotFound):
        single.orchestrator.get("l")


def test_get_of_an_unknown_id_is_not_found() -> None:
    h = Harness(Single)
    with pytest.raises(WorkflowNotFound, match="no run 'nope'") as caught:
        h.orchestrator.get("nope")
    assert caught.value.workflow_id == "nope"


def test_the_default_store_is_a_memory_store() -> None:
    orchestrator = Single(FakeAlpha())
    assert isinstance(orchestrator.store, MemoryStore)
    assert orchestrator.store.max_finished == 10_000
    assert orchestrator.name == Single.plan.name
    assert Single.plan.name in repr(orchestrator)
