"""MemoryStore beyond the shared contract: bounded retention, copies, concurrent writers."""

from __future__ import annotations

import threading

import pytest

from coordination import Event, WorkflowStatus
from coordination._journal import EntryKind
from coordination.errors import StoreError
from coordination.stores import Finish, MemoryStore, StepOutcome, StepRecord, Write

S = WorkflowStatus


class Begun(Event):
    n: int


def step(key: str) -> StepRecord:
    return StepRecord(key, StepOutcome.COMPLETED, 1, Begun(n=2))


def start(store: MemoryStore, workflow_id: str, now: float = 1.0) -> int:
    _, token = store.start_run(workflow_id, "flow", Begun(n=1), owner="me", now=now)
    assert token is not None
    return token


def finish(store: MemoryStore, workflow_id: str, token: int, status: S = S.COMPLETED) -> None:
    store.write(Write(workflow_id, token, 2.0, finish=Finish(status)))


def test_a_new_run_journal_opens_with_workflow_started() -> None:
    store = MemoryStore()
    start(store, "wf")
    record = store.get_run("wf")
    assert record is not None
    journal = record.journal
    assert len(journal) == 1
    assert journal[0][0] == EntryKind.WORKFLOW_STARTED.value
    assert journal[0][-1] == "Begun"  # the start message's type, in the detail


def test_a_running_run_has_no_finished_entry() -> None:
    store = MemoryStore()
    token = start(store, "wf")
    store.write(Write("wf", token, 2.0, (step("A.x"),)))
    record = store.get_run("wf")
    assert record is not None
    from coordination import Journal

    kinds = [entry.kind for entry in Journal.from_rows(record.journal)]
    assert EntryKind.WORKFLOW_FINISHED not in kinds


def test_what_it_returns_is_a_copy() -> None:
    store = MemoryStore()
    record, token = store.start_run("wf", "flow", Begun(n=1), owner="me", now=1.0)
    assert token is not None
    record.add_step(step("A.x"))  # a runner's own copy: the store's is its own
    record.status = S.COMPLETED
    stored = store.get_run("wf")
    assert stored is not None
    assert stored.steps == []
    assert stored.status is S.RUNNING


def test_retention_forgets_the_oldest_finished_run_but_never_unfinished_ones() -> None:
    store = MemoryStore(max_finished=2)
    open_token = start(store, "open")
    for name in ("a", "b", "c"):
        finish(store, name, start(store, name))
    assert store.get_run("a") is None  # the oldest finished one went
    assert store.get_run("b") is not None
    assert store.get_run("c") is not None
    assert store.get_run("open") is not None
    assert len(store) == 3
    del open_token


def test_retention_never_forgets_runs_with_effects_or_owed_undos() -> None:
    store = MemoryStore(max_finished=0)
    finish(store, "parked", start(store, "parked"), S.PARKED)
    finish(store, "stuck", start(store, "stuck"), S.COMPENSATION_FAILED)
    owing = start(store, "owing")
    store.write(Write("owing", owing, 2.0, finish=Finish(S.COMPENSATED), owes=True))
    finish(store, "done", start(store, "done"))
    assert store.get_run("done") is None
    assert {r.workflow_id for r in store.list_runs()} == {"parked", "stuck", "owing"}
    store.write(Write("owing", owing, 3.0, (step("A.x:late1:undo"),), owes=False))
    assert store.get_run("owing") is None  # once it owes nothing, retention applies


def test_a_negative_retention_is_rejected() -> None:
    with pytest.raises(StoreError, match="max_finished"):
        MemoryStore(max_finished=-1)


def test_concurrent_appends_keep_every_step() -> None:
    store = MemoryStore()
    token = start(store, "wf")

    def append(worker: int) -> None:
        for i in range(100):
            store.write(Write("wf", token, 2.0, (step(f"W{worker}.s{i}"),)))

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get_run("wf")
    assert record is not None
    assert len(record.steps) == 400


def test_repr_counts_runs() -> None:
    store = MemoryStore(max_finished=3)
    start(store, "wf")
    assert repr(store) == "MemoryStore(1 runs, max_finished=3)"
