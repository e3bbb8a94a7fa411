"""The contract every Store must keep, as tests a backend proves itself with.

Subclass `StoreContract` in a test module, give it `create_store()`, and pytest runs every
`test_*` method against that backend (as eventsourcing ships its recorder test cases).
`MemoryStore` and `SQLiteStore` pass it; a PostgreSQL store will prove itself the same way.
"""

from __future__ import annotations

import threading
from typing import Any

from coordination._journal import EntryKind, JournalEntry
from coordination._messages import Event
from coordination._status import WorkflowStatus
from coordination.errors import StoreError
from coordination.stores._records import StepOutcome, StepRecord
from coordination.stores._store import Store

__all__ = ["ContractMessage", "StoreContract"]


class ContractMessage(Event, type_name="coordination.testing.ContractMessage"):
    """A message the contract tests store."""

    n: int


def _rows(*kinds: EntryKind) -> tuple[Any, ...]:
    entries = [JournalEntry(kind, "Part", "act", "wf", None, 1, 5.0) for kind in kinds]
    return tuple(value for entry in entries for value in entry.row())


class StoreContract:
    """What runners rely on from a store. Subclass with `create_store()`."""

    def create_store(self) -> Store:
        """A new, empty store of the backend under test."""
        raise NotImplementedError("subclass StoreContract and define create_store()")

    def _store(self) -> Store:
        store = self.create_store()
        store.register_types([ContractMessage])
        return store

    def _step(self, key: str, outcome: StepOutcome = StepOutcome.COMPLETED) -> StepRecord:
        return StepRecord(
            key,
            outcome,
            2,
            ContractMessage(n=7),
            None,
            _rows(EntryKind.STARTED, EntryKind.COMPLETED),
        )

    def test_start_run_creates_a_run_once(self) -> None:
        store = self._store()
        record, created = store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        assert created
        assert (record.workflow_id, record.flow, record.owner) == ("wf", "flow", "a")
        assert record.status is WorkflowStatus.RUNNING
        assert record.start == ContractMessage(n=1)
        again, created = store.start_run("wf", "other", ContractMessage(n=2), owner="b", now=2.0)
        assert not created
        assert again.flow == "flow"
        assert again.start == ContractMessage(n=1)
        assert again.owner == "a"

    def test_append_step_keeps_order_outputs_and_journal(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.append_step("wf", self._step("A.x"), now=2.0)
        store.append_step(
            "wf", self._step("B.y", StepOutcome.FAILED), now=3.0, status=WorkflowStatus.COMPENSATING
        )
        record = store.get_run("wf")
        assert record is not None
        assert [s.key for s in record.steps] == ["A.x", "B.y"]
        assert record.steps[0].output == ContractMessage(n=7)
        assert record.steps[1].outcome is StepOutcome.FAILED
        assert record.status is WorkflowStatus.COMPENSATING
        kinds = [row[0] for row in record.journal]
        assert kinds[0] == EntryKind.WORKFLOW_STARTED.value
        assert record.steps[0].entries[0].kind is EntryKind.STARTED

    def test_a_step_key_is_recorded_once(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.append_step("wf", self._step("A.x"), now=2.0)
        try:
            store.append_step("wf", self._step("A.x"), now=3.0)
        except StoreError:
            pass
        else:
            raise AssertionError("a second record for one step was accepted")
        record = store.get_run("wf")
        assert record is not None
        assert [s.key for s in record.steps] == ["A.x"]

    def test_appending_to_an_unknown_run_is_a_store_error(self) -> None:
        store = self._store()
        try:
            store.append_step("missing", self._step("A.x"), now=1.0)
        except StoreError:
            return
        raise AssertionError("appending to an unknown run was accepted")

    def test_finish_records_the_outcome_and_releases_the_owner(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.finish_run("wf", WorkflowStatus.COMPLETED, now=4.0, output=(ContractMessage(n=2),))
        record = store.get_run("wf")
        assert record is not None
        assert record.status is WorkflowStatus.COMPLETED
        assert record.output == (ContractMessage(n=2),)
        assert record.owner is None
        assert record.finished_at == 4.0
        assert record.journal[-1][0] == EntryKind.WORKFLOW_FINISHED.value

    def test_finish_can_append_the_last_step_in_the_same_write(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.append_step("wf", self._step("A.x"), now=2.0)
        store.finish_run(
            "wf", WorkflowStatus.COMPLETED, now=3.0, output=ContractMessage(n=7),
            last_step=self._step("B.y"),
        )  # fmt: skip
        record = store.get_run("wf")
        assert record is not None
        assert [s.key for s in record.steps] == ["A.x", "B.y"]
        assert record.status is WorkflowStatus.COMPLETED
        store.start_run("dup", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.append_step("dup", self._step("A.x"), now=2.0)
        try:
            store.finish_run("dup", WorkflowStatus.COMPLETED, now=3.0, last_step=self._step("A.x"))
        except StoreError:
            pass
        else:
            raise AssertionError("finish_run recorded a step twice")
        again = store.get_run("dup")
        assert again is not None
        assert again.status is WorkflowStatus.RUNNING  # nothing of the refused write landed

    def test_claim_takes_only_unowned_expired_or_dead_owners_runs(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        assert store.claim_run("wf", "b", now=2.0) is None  # "a" holds it
        claimed = store.claim_run("wf", "b", now=2.0, replacing="a")  # "a" is dead
        assert claimed is not None
        assert claimed.owner == "b"
        store.release_run("wf", "b", now=3.0)
        again = store.claim_run("wf", "c", now=4.0)
        assert again is not None
        assert again.owner == "c"
        store.finish_run("wf", WorkflowStatus.COMPLETED, now=5.0)
        assert store.claim_run("wf", "d", now=6.0) is None  # finished runs stay finished
        assert store.claim_run("missing", "d", now=6.0) is None

    def test_only_one_of_many_concurrent_claims_wins(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="dead", now=1.0)
        winners: list[str] = []
        barrier = threading.Barrier(8)

        def claim(owner: str) -> None:
            barrier.wait()
            if store.claim_run("wf", owner, now=2.0, replacing="dead") is not None:
                winners.append(owner)

        threads = [threading.Thread(target=claim, args=(f"o{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1

    def test_reopen_moves_a_finished_run_back_for_an_operator(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.finish_run("wf", WorkflowStatus.PARKED, now=2.0)
        assert (
            store.reopen_run(
                "wf",
                expected=WorkflowStatus.COMPENSATION_FAILED,
                status=WorkflowStatus.COMPENSATING,
                owner="op",
                now=3.0,
            )
            is None
        )
        record = store.reopen_run(
            "wf", expected=WorkflowStatus.PARKED, status=WorkflowStatus.RUNNING, owner="op", now=3.0
        )
        assert record is not None
        assert (record.status, record.owner, record.finished_at) == (
            WorkflowStatus.RUNNING,
            "op",
            None,
        )

    def test_recoveries_at_one_position_are_counted_in_a_row(self) -> None:
        store = self._store()
        store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        assert store.note_recovery("wf", "2 records") == 1
        assert store.note_recovery("wf", "2 records") == 2
        assert store.note_recovery("wf", "3 records") == 1

    def test_list_runs_filters_by_flow_and_status_oldest_first(self) -> None:
        store = self._store()
        store.start_run("one", "flow", ContractMessage(n=1), owner="a", now=1.0)
        store.start_run("two", "flow", ContractMessage(n=2), owner="a", now=2.0)
        store.start_run("three", "other", ContractMessage(n=3), owner="a", now=3.0)
        store.finish_run("two", WorkflowStatus.COMPLETED, now=4.0)
        assert [r.workflow_id for r in store.list_runs()] == ["one", "two", "three"]
        assert [r.workflow_id for r in store.list_runs(flow="flow")] == ["one", "two"]
        running = store.list_runs(flow="flow", status=WorkflowStatus.RUNNING)
        assert [r.workflow_id for r in running] == ["one"]
        assert store.get_run("missing") is None
