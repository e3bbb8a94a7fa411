"""Group commit: writes of threads arriving together share one commit, each its own outcome."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from coordination._journal import EntryKind, row
from coordination.errors import LeaseLost, StoreError
from coordination.stores import SQLiteStore, StepOutcome, StepRecord, Write
from coordination.stores._group import GroupCommit
from coordination.testing import ContractMessage


def record(key: str) -> StepRecord:
    rows = row(EntryKind.COMPLETED, "Part", "act", "wf", attempt=1, at=1.0)
    return StepRecord(key, StepOutcome.COMPLETED, 1, ContractMessage(n=1), None, rows)


class Gated:
    """A real store's writes, the first one held at a gate until the test opens it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.alone: list[str] = []
        self.together: list[list[str]] = []

    def write_alone(self, write: Write) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10)
        self.alone.append(write.workflow_id)
        self.store._writes.write_alone(write)

    def write_many(self, writes: Any) -> list[str]:
        self.together.append([write.workflow_id for write in writes])
        return self.store.write_many(writes)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with SQLiteStore(tmp_path / "g.db") as opened:
        opened.register_types([ContractMessage])
        for n in range(6):
            opened.start_run(f"r{n}", "flow", ContractMessage(n=n), owner="me", now=1.0)
        yield opened


def writers(
    group: GroupCommit, writes: list[Write]
) -> tuple[list[threading.Thread], dict[str, Any]]:
    outcomes: dict[str, Any] = {}

    def write(one: Write) -> None:
        try:
            group.write(one)
            outcomes[one.workflow_id] = "ok"
        except (LeaseLost, StoreError) as error:
            outcomes[one.workflow_id] = error

    threads = [threading.Thread(target=write, args=(one,)) for one in writes]
    return threads, outcomes


def test_a_lone_writer_commits_alone_at_once(store: SQLiteStore) -> None:
    gated = Gated(store)
    gated.gate.set()
    group = GroupCommit(gated.write_alone, gated.write_many)
    group.write(Write("r0", 1, 2.0, (record("A.x"),)))
    group.write(Write("r0", 1, 3.0, (record("B.y"),)))
    assert gated.alone == ["r0", "r0"]
    assert gated.together == []
    assert [step.key for step in store.get_run("r0").steps] == ["A.x", "B.y"]


def test_writers_arriving_meanwhile_share_one_commit_each_with_its_own_outcome(
    store: SQLiteStore,
) -> None:
    gated = Gated(store)
    group = GroupCommit(gated.write_alone, gated.write_many)
    first, first_outcomes = writers(group, [Write("r0", 1, 2.0, (record("A.x"),))])
    first[0].start()
    assert gated.entered.wait(10)  # the leader is writing; the others queue behind it
    later = [
        Write("r1", 1, 2.0, (record("A.x"),)),
        Write("r2", 7, 2.0, (record("A.x"),)),  # fenced out: a stale token
        Write("r3", 1, 2.0, (record("A.x"),)),
    ]
    threads, outcomes = writers(group, later)
    for thread in threads:
        thread.start()
    while len(group._waiting) < 3:
        threading.Event().wait(0.001)
    gated.gate.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert first_outcomes == {"r0": "ok"}
    assert gated.together == [["r1", "r2", "r3"]]  # one commit for the three that waited
    assert outcomes["r1"] == outcomes["r3"] == "ok"
    assert isinstance(outcomes["r2"], LeaseLost)
    assert [step.key for step in store.get_run("r2").steps] == []
    assert [step.key for step in store.get_run("r3").steps] == ["A.x"]


def test_one_writers_fault_is_never_anothers(store: SQLiteStore) -> None:
    store.write(Write("r2", 1, 1.5, (record("A.x"),)))
    gated = Gated(store)
    group = GroupCommit(gated.write_alone, gated.write_many)
    first, _ = writers(group, [Write("r0", 1, 2.0, (record("A.x"),))])
    first[0].start()
    assert gated.entered.wait(10)
    later = [
        Write("r1", 1, 2.0, (record("A.x"),)),
        Write("r2", 1, 2.0, (record("A.x"),)),  # recorded already: a duplicate
        Write("r3", 1, 2.0, (record("A.x"),)),
    ]
    threads, outcomes = writers(group, later)
    for thread in threads:
        thread.start()
    while len(group._waiting) < 3:
        threading.Event().wait(0.001)
    gated.gate.set()
    for thread in [*first, *threads]:
        thread.join(10)
    # The shared commit failed on r2's duplicate; each was then written alone.
    assert outcomes["r1"] == outcomes["r3"] == "ok"
    assert isinstance(outcomes["r2"], StoreError)
    assert "recorded once" in str(outcomes["r2"])
    assert [step.key for step in store.get_run("r1").steps] == ["A.x"]


def test_eight_threads_writing_one_store_lose_nothing(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        store.register_types([ContractMessage])
        for n in range(8):
            store.start_run(f"t{n}", "flow", ContractMessage(n=n), owner="me", now=1.0)

        def work(n: int) -> None:
            for step in range(50):
                store.write(Write(f"t{n}", 1, 2.0, (record(f"S.{step}"),)))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for n in range(8):
            assert [s.key for s in store.get_run(f"t{n}").steps] == [f"S.{i}" for i in range(50)]
