"""MemoryStore: create once, append once per step, finish, forget the oldest finished runs."""

from __future__ import annotations

import threading

import pytest

from coordination import EntryKind, Event, JournalEntry, WorkflowStatus
from coordination.errors import StoreError
from coordination.orchestration import WorkflowRun
from coordination.stores import MemoryStore, StepOutcome, StepRecord, Store


class Begun(Event):
    n: int


def entry(kind: EntryKind, action: str = "", workflow_id: str = "wf") -> JournalEntry:
    return JournalEntry(kind, "Payments", action, workflow_id)


def rows(*entries: JournalEntry) -> tuple[object, ...]:
    """Entries as a store keeps them: flat rows, end to end."""
    return tuple(value for item in entries for value in item.row())


def step_record(key: str, *entries: JournalEntry) -> StepRecord:
    return StepRecord(key, StepOutcome.COMPLETED, 1, None, None, rows(*entries))


def start(store: MemoryStore, workflow_id: str, flow: str = "flow", n: int = 1) -> None:
    _, created = store.start_run(workflow_id, flow, Begun(n=n), owner="me", now=1.0)
    assert created


def test_it_is_a_store() -> None:
    assert isinstance(MemoryStore(), Store)


def test_start_run_creates_once_then_returns_the_existing_record() -> None:
    store = MemoryStore()
    record, created = store.start_run("wf", "flow", Begun(n=1), owner="host:1:0", now=5.0)
    assert created
    assert record.workflow_id == "wf"
    assert record.status is WorkflowStatus.RUNNING
    assert record.owner == "host:1:0"
    assert record.created_at == record.updated_at == 5.0
    assert record.start == Begun(n=1)
    again, created_again = store.start_run("wf", "other", Begun(n=2), owner="them", now=9.0)
    assert not created_again
    assert again is record
    assert again.flow == "flow"  # untouched by the second call
    assert again.owner == "host:1:0"
    assert again.start == Begun(n=1)
    assert len(store) == 1


def test_a_new_run_journal_opens_with_workflow_started() -> None:
    store = MemoryStore()
    record, _ = store.start_run("wf", "flow", Begun(n=1), owner="me", now=5.0)
    journal = WorkflowRun(record).journal
    assert [(e.kind, e.participant, e.correlation_id, e.at) for e in journal] == [
        (EntryKind.WORKFLOW_STARTED, "flow", "wf", 5.0)
    ]


def test_append_step_appends_records_and_journal_entries() -> None:
    store = MemoryStore()
    start(store, "wf")
    store.append_step(
        "wf",
        step_record(
            "Payments.charge",
            entry(EntryKind.STARTED, "charge"),
            entry(EntryKind.COMPLETED, "charge"),
        ),
        now=2.0,
    )
    store.append_step("wf", step_record("Payments.refund", entry(EntryKind.FAILED, "x")), now=3.0)
    record = store.get_run("wf")
    assert record is not None
    assert [s.key for s in record.steps] == ["Payments.charge", "Payments.refund"]
    assert record.updated_at == 3.0
    journal = WorkflowRun(record).journal
    assert [e.kind for e in journal] == [
        EntryKind.WORKFLOW_STARTED,
        EntryKind.STARTED,
        EntryKind.COMPLETED,
        EntryKind.FAILED,
    ]
    assert record.steps[0].entries == (
        entry(EntryKind.STARTED, "charge"),
        entry(EntryKind.COMPLETED, "charge"),
    )


def test_append_step_rejects_a_duplicate_key_and_changes_nothing() -> None:
    store = MemoryStore()
    start(store, "wf")
    store.append_step("wf", step_record("A.x", entry(EntryKind.COMPLETED, "x")), now=2.0)
    with pytest.raises(StoreError, match=r"already has a record for step 'A\.x'"):
        store.append_step("wf", step_record("A.x", entry(EntryKind.FAILED, "x")), now=3.0)
    record = store.get_run("wf")
    assert record is not None
    assert len(record.steps) == 1
    assert [e.kind for e in WorkflowRun(record).journal] == [
        EntryKind.WORKFLOW_STARTED,
        EntryKind.COMPLETED,
    ]
    assert record.updated_at == 2.0
    # the same key in another run is fine
    start(store, "wf-2")
    store.append_step("wf-2", step_record("A.x"), now=4.0)


def test_append_step_can_move_the_status() -> None:
    store = MemoryStore()
    start(store, "wf")
    store.append_step("wf", step_record("A.x"), now=2.0, status=WorkflowStatus.COMPENSATING)
    record = store.get_run("wf")
    assert record is not None
    assert record.status is WorkflowStatus.COMPENSATING


def test_append_step_to_an_unknown_run_fails() -> None:
    with pytest.raises(StoreError, match="no run 'ghost'"):
        MemoryStore().append_step("ghost", step_record("A.x"), now=1.0)


def test_finish_run_records_the_outcome_and_releases_the_owner() -> None:
    store = MemoryStore()
    start(store, "wf")
    store.append_step("wf", step_record("A.x", entry(EntryKind.FAILED, "x")), now=2.0)
    failure = RuntimeError("why")
    store.finish_run("wf", WorkflowStatus.COMPENSATED, now=7.0, output=None, error=failure)
    record = store.get_run("wf")
    assert record is not None
    assert record.owner is None
    assert record.status is WorkflowStatus.COMPENSATED
    assert record.error is failure
    assert record.updated_at == 7.0
    journal = WorkflowRun(record).journal
    assert [e.kind for e in journal] == [
        EntryKind.WORKFLOW_STARTED,
        EntryKind.FAILED,
        EntryKind.WORKFLOW_FINISHED,
    ]
    assert journal[-1].detail == "compensated"
    assert journal[-1].at == 7.0


def test_a_running_run_has_no_finished_entry() -> None:
    store = MemoryStore()
    start(store, "wf")
    store.append_step("wf", step_record("A.x", entry(EntryKind.COMPLETED, "x")), now=2.0)
    record = store.get_run("wf")
    assert record is not None
    assert EntryKind.WORKFLOW_FINISHED not in [e.kind for e in WorkflowRun(record).journal]
    assert record.owner == "me"


def test_finish_run_of_an_unknown_run_fails() -> None:
    with pytest.raises(StoreError):
        MemoryStore().finish_run("ghost", WorkflowStatus.COMPLETED, now=1.0)


def test_retention_forgets_the_oldest_finished_run_but_never_unfinished_ones() -> None:
    store = MemoryStore(max_finished=3)
    start(store, "unfinished")
    for name in ["f1", "f2", "f3"]:
        start(store, name)
        store.finish_run(name, WorkflowStatus.COMPLETED, now=2.0)
    assert len(store) == 4
    start(store, "f4")
    assert store.get_run("f1") is not None  # f4 not finished yet: nothing forgotten
    store.finish_run("f4", WorkflowStatus.COMPENSATED, now=3.0)
    assert store.get_run("f1") is None
    assert [r.workflow_id for r in store.list_runs()] == ["unfinished", "f2", "f3", "f4"]
    # a forgotten id can be started afresh
    _, created = store.start_run("f1", "flow", Begun(n=1), owner="me", now=4.0)
    assert created


def test_retention_of_zero_keeps_only_unfinished_runs() -> None:
    store = MemoryStore(max_finished=0)
    start(store, "a")
    start(store, "b")
    store.finish_run("a", WorkflowStatus.COMPLETED, now=2.0)
    assert store.get_run("a") is None
    assert store.get_run("b") is not None


def test_a_negative_retention_is_rejected() -> None:
    with pytest.raises(StoreError, match="max_finished"):
        MemoryStore(max_finished=-1)


def test_list_runs_filters_by_flow_and_status_oldest_first() -> None:
    store = MemoryStore()
    start(store, "a1", flow="alpha")
    start(store, "b1", flow="beta")
    start(store, "a2", flow="alpha")
    start(store, "a3", flow="alpha")
    store.finish_run("a1", WorkflowStatus.COMPLETED, now=2.0)
    store.finish_run("a3", WorkflowStatus.COMPENSATED, now=2.0)

    def ids(**filters: object) -> list[str]:
        return [r.workflow_id for r in store.list_runs(**filters)]  # type: ignore[arg-type]

    assert ids() == ["a1", "b1", "a2", "a3"]
    assert ids(flow="alpha") == ["a1", "a2", "a3"]
    assert ids(flow="beta") == ["b1"]
    assert ids(flow="gamma") == []
    assert ids(status=WorkflowStatus.RUNNING) == ["b1", "a2"]
    assert ids(flow="alpha", status=WorkflowStatus.RUNNING) == ["a2"]
    assert ids(flow="alpha", status=WorkflowStatus.COMPENSATED) == ["a3"]


def test_concurrent_starts_of_one_workflow_create_it_exactly_once() -> None:
    store = MemoryStore()
    barrier = threading.Barrier(8, timeout=5)
    created: list[bool] = []
    records: list[object] = []
    lock = threading.Lock()

    def racer(number: int) -> None:
        barrier.wait()
        record, was_created = store.start_run(
            "wf", "flow", Begun(n=number), owner=f"owner-{number}", now=1.0
        )
        with lock:
            created.append(was_created)
            records.append(record)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(created) == [False] * 7 + [True]
    assert len({id(record) for record in records}) == 1
    assert len(store) == 1


def test_concurrent_appends_keep_every_step() -> None:
    store = MemoryStore()
    start(store, "wf")
    barrier = threading.Barrier(8, timeout=5)

    def appender(number: int) -> None:
        barrier.wait()
        for i in range(50):
            store.append_step("wf", step_record(f"S{number}.{i}"), now=2.0)

    threads = [threading.Thread(target=appender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    record = store.get_run("wf")
    assert record is not None
    assert len({s.key for s in record.steps}) == len(record.steps) == 400


def test_repr_counts_runs() -> None:
    store = MemoryStore(max_finished=5)
    start(store, "wf")
    assert repr(store) == "MemoryStore(1 runs, max_finished=5)"
