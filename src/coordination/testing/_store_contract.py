"""The contracts every store must keep, as tests a backend proves itself with.

Subclass `StoreContract` (runs: atomic starts, fencing, claims, the owed-work index, batch
writes, retention) and `EventLogContract` (outbox and inbox) in a test module, give them
`create_store()`, and pytest runs every `test_*` method against that backend, as
eventsourcing ships its recorder test cases. `MemoryStore` and `SQLiteStore` pass both; a
PostgreSQL store proves itself the same way, unchanged.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from coordination._journal import EntryKind, row
from coordination._messages import Envelope, Event
from coordination._status import WorkflowStatus
from coordination.errors import CompensationFailed, LeaseLost, StepFailed, StoreError
from coordination.stores._records import Finish, StepOutcome, StepRecord, Write

__all__ = ["ContractMessage", "ContractOther", "EventLogContract", "StoreContract"]

S = WorkflowStatus


class ContractMessage(Event, type_name="coordination.testing.ContractMessage"):
    """A message the contract tests store."""

    n: int


class ContractOther(Event, type_name="coordination.testing.ContractOther"):
    """A second message type, for tuple outputs."""

    label: str


def _rows(*kinds: EntryKind) -> tuple[Any, ...]:
    rows: tuple[Any, ...] = ()
    for kind in kinds:
        rows += row(kind, "Part", "act", "wf", attempt=1, at=5.0)
    return rows


class _Base:
    def create_store(self) -> Any:
        """A new, empty store of the backend under test."""
        raise NotImplementedError("subclass the contract and define create_store()")

    def _store(self) -> Any:
        store = self.create_store()
        # pytest makes an instance per test: what it opened is closed after that test.
        self.__dict__.setdefault("_opened", []).append(store)
        store.register_types((ContractMessage, ContractOther))
        return store

    def teardown_method(self, method: Any) -> None:
        """Close every store the test opened (a durable one's background threads end)."""
        for store in self.__dict__.pop("_opened", []):
            close = getattr(store, "close", None)
            if callable(close):
                close()

    @staticmethod
    def _step(
        key: str, outcome: StepOutcome = StepOutcome.COMPLETED, output: Any = None
    ) -> StepRecord:
        return StepRecord(
            key,
            outcome,
            2,
            ContractMessage(n=7) if output is None else output,
            None,
            _rows(EntryKind.STARTED, EntryKind.COMPLETED),
        )

    @staticmethod
    def _start(
        store: Any, workflow_id: str = "wf", owner: str = "a", now: float = 1.0, **kw: Any
    ) -> int:
        _, token = store.start_run(
            workflow_id, "flow", ContractMessage(n=1), owner=owner, now=now, **kw
        )
        assert token is not None
        return int(token)


class StoreContract(_Base):
    """What runners rely on from a store of runs. Subclass with `create_store()`."""

    def test_start_run_creates_a_run_once(self) -> None:
        store = self._store()
        record, token = store.start_run("wf", "flow", ContractMessage(n=1), owner="a", now=1.0)
        assert token == 1
        assert (record.workflow_id, record.flow, record.owner, record.status) == (
            "wf",
            "flow",
            "a",
            S.RUNNING,
        )
        again, second = store.start_run("wf", "flow", ContractMessage(n=2), owner="b", now=2.0)
        assert second is None
        assert again.start == ContractMessage(n=1)
        assert again.owner == "a"

    def test_start_many_creates_each_run_once_in_one_call(self) -> None:
        store = self._store()
        self._start(store, "old", owner="z")
        started = store.start_many(
            "flow",
            [("new1", ContractMessage(n=1)), ("old", ContractMessage(n=9)),
             ("new2", ContractMessage(n=2))],
            owner="a",
            now=2.0,
        )  # fmt: skip
        assert [(record.workflow_id, token) for record, token in started] == [
            ("new1", 1),
            ("old", None),
            ("new2", 1),
        ]
        old = started[1][0]
        assert (old.owner, old.start) == ("z", ContractMessage(n=1))  # the stored one
        for workflow_id, n in (("new1", 1), ("new2", 2)):
            record = store.get_run(workflow_id)
            assert (record.owner, record.status, record.start) == (
                "a",
                S.RUNNING,
                ContractMessage(n=n),
            )
        # Each is an ordinary run: its creator writes under token 1.
        store.write(Write("new2", 1, 3.0, (self._step("A.x"),), finish=Finish(S.COMPLETED)))
        assert store.get_run("new2").status is S.COMPLETED
        assert store.start_many("flow", [], owner="a", now=3.0) == []

    def test_two_starts_at_once_create_one_run(self) -> None:
        store = self._store()
        tokens: list[int | None] = []
        barrier = threading.Barrier(8)

        def start(owner: str) -> None:
            barrier.wait()
            _, token = store.start_run("wf", "flow", ContractMessage(n=1), owner=owner, now=1.0)
            tokens.append(token)

        threads = [threading.Thread(target=start, args=(f"o{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert tokens.count(1) == 1
        assert tokens.count(None) == 7

    def test_writes_append_records_in_order(self) -> None:
        store = self._store()
        token = self._start(store)
        store.write(Write("wf", token, 2.0, (self._step("A.x"),)))
        store.write(Write("wf", token, 3.0, (self._step("B.y"), self._step("C.z"))))
        record = store.get_run("wf")
        assert [step.key for step in record.steps] == ["A.x", "B.y", "C.z"]
        assert record.steps[0].output == ContractMessage(n=7)
        assert record.steps[0].entries[0].kind is EntryKind.STARTED
        assert record.has_step("B.y")
        assert not record.has_step("D.w")

    def test_a_record_key_is_written_once_and_a_refused_write_changes_nothing(self) -> None:
        store = self._store()
        token = self._start(store)
        store.write(Write("wf", token, 2.0, (self._step("A.x"),)))
        refused = None
        try:
            store.write(Write("wf", token, 3.0, (self._step("B.y"), self._step("A.x"))))
        except StoreError as error:
            refused = str(error)
        assert refused is not None, "a second record for A.x was accepted"
        assert "A.x" in refused
        assert [step.key for step in store.get_run("wf").steps] == ["A.x"]

    def test_a_write_to_an_unknown_run_is_a_store_error(self) -> None:
        store = self._store()
        try:
            store.write(Write("nope", 1, 2.0, (self._step("A.x"),)))
        except LeaseLost:
            raise AssertionError("an unknown run is not a lost lease") from None
        except StoreError:
            return
        raise AssertionError("a write to an unknown run was accepted")

    def test_finish_records_the_outcome_and_releases_the_owner(self) -> None:
        store = self._store()
        token = self._start(store)
        failure = StepFailed("step A.x failed", step="A.x", attempts=3)
        undo_failure = CompensationFailed("undo failed", step="A.x", compensation="A.u", attempts=5)
        store.write(
            Write("wf", token, 4.0, (self._step("A.x:undo", StepOutcome.COMPENSATION_FAILED),),
                  finish=Finish(S.COMPENSATION_FAILED, None, failure, undo_failure))
        )  # fmt: skip
        record = store.get_run("wf")
        assert (record.status, record.owner, record.finished_at, record.owed) == (
            S.COMPENSATION_FAILED,
            None,
            4.0,
            False,
        )
        assert isinstance(record.error, StepFailed)
        assert record.error.step == "A.x"
        assert record.error.attempts == 3
        assert isinstance(record.compensation_error, CompensationFailed)
        assert record.compensation_error.compensation == "A.u"
        journal = record.journal
        assert journal[-1][0] == EntryKind.WORKFLOW_FINISHED.value

    def test_outputs_may_be_one_message_or_a_tuple(self) -> None:
        store = self._store()
        token = self._start(store)
        pair = (ContractMessage(n=3), ContractOther(label="x"))
        store.write(
            Write(
                "wf",
                token,
                2.0,
                (self._step("A.x", output=pair),),
                finish=Finish(S.COMPLETED, pair),
            )
        )
        record = store.get_run("wf")
        assert record.steps[0].output == pair
        assert record.output == pair
        assert record.status is S.COMPLETED

    def test_a_status_move_is_written_with_its_record(self) -> None:
        store = self._store()
        token = self._start(store)
        store.write(
            Write("wf", token, 2.0, (self._step("A.x", StepOutcome.FAILED),), status=S.COMPENSATING)
        )
        record = store.get_run("wf")
        assert record.status is S.COMPENSATING
        assert record.finished_at is None
        assert record.owed

    def test_a_claim_fences_out_the_previous_owner(self) -> None:
        store = self._store()
        token = self._start(store, owner="a")
        store.release_run("wf", token, now=2.0)
        newer = store.claim_run("wf", "b", now=3.0)
        assert newer == token + 1
        lost = None
        try:
            store.write(Write("wf", token, 4.0, (self._step("A.x"),)))
        except LeaseLost as error:
            lost = error
        assert lost is not None, "a superseded owner's write was accepted"
        assert lost.workflow_id == "wf"
        try:
            store.write(Write("wf", token, 4.0, finish=Finish(S.COMPENSATED)))
        except LeaseLost:
            pass
        else:
            raise AssertionError("a superseded owner finished the run")
        record = store.get_run("wf")
        assert record.steps == []
        assert record.status is S.RUNNING
        assert record.owner == "b"
        store.write(Write("wf", newer, 5.0, (self._step("A.x"),)))
        assert [s.key for s in store.get_run("wf").steps] == ["A.x"]

    def test_claims_respect_live_leases(self) -> None:
        store = self._store()
        self._start(store, owner="a", now=1.0)
        assert store.claim_run("wf", "b", now=2.0) is None  # owned, lease running
        assert store.claim_run("wf", "b", now=2.0, replacing="a") == 2  # a is known dead
        expired = 2.0 + store.lease + 1.0
        assert store.claim_run("wf", "c", now=expired) == 3  # b's lease ran out
        assert store.get_run("wf").owner == "c"

    def test_two_claims_at_once_give_one_token(self) -> None:
        store = self._store()
        token = self._start(store, owner="a")
        store.release_run("wf", token, now=2.0)
        won: list[int] = []
        barrier = threading.Barrier(8)

        def take(owner: str) -> None:
            barrier.wait()
            claimed = store.claim_run("wf", owner, now=3.0)
            if claimed is not None:
                won.append(claimed)

        threads = [threading.Thread(target=take, args=(f"o{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert won == [2]

    def test_a_finished_run_that_owes_nothing_cannot_be_claimed(self) -> None:
        store = self._store()
        token = self._start(store)
        store.write(Write("wf", token, 2.0, finish=Finish(S.COMPLETED)))
        assert store.claim_run("wf", "b", now=3.0) is None

    def test_a_finished_run_that_owes_work_is_claimed_written_and_let_go(self) -> None:
        # What a scheduled start relies on: an ended run stays owed until the start is made.
        store = self._store()
        token = self._start(store)
        done = Finish(S.COMPLETED, ContractMessage(n=2))
        store.write(Write("wf", token, 2.0, finish=done, owes=True))
        record = store.get_run("wf")
        assert (record.status, record.owner, record.owed) == (S.COMPLETED, None, True)
        claimed = store.claim_run("wf", "b", now=3.0)
        assert claimed == token + 1
        assert store.claim_run("wf", "c", now=3.0) is None  # held by b
        store.write(Write("wf", claimed, 3.5, (self._step("A.x:noted"),)))
        assert store.get_run("wf").owed  # a write without `owes` leaves the flag alone
        store.write(Write("wf", claimed, 4.0, (self._step("A.x:started"),), owes=False))
        store.release_run("wf", claimed, now=4.0)
        record = store.get_run("wf")
        assert (record.status, record.owner, record.owed) == (S.COMPLETED, None, False)
        assert record.output == ContractMessage(n=2)
        assert [step.key for step in record.steps] == ["A.x:noted", "A.x:started"]
        assert store.owed_runs("flow") == []
        assert store.claim_run("wf", "b", now=5.0) is None

    def test_release_with_a_stale_token_changes_nothing(self) -> None:
        store = self._store()
        token = self._start(store, owner="a")
        newer = store.claim_run("wf", "b", now=2.0, replacing="a")
        assert newer is not None
        store.release_run("wf", token, now=3.0)
        assert store.get_run("wf").owner == "b"
        store.release_run("wf", newer, now=4.0)
        assert store.get_run("wf").owner is None

    def test_reopen_moves_an_operator_run_and_claims_it(self) -> None:
        store = self._store()
        token = self._start(store)
        store.write(Write("wf", token, 2.0, finish=Finish(S.PARKED, parked_reason="a human")))
        assert store.get_run("wf").parked_reason == "a human"
        assert store.claim_run("wf", "b", now=3.0) is None  # parked: not owed to recovery
        assert (
            store.claim_run("wf", "b", now=3.0, reopen=(S.COMPENSATION_FAILED, S.COMPENSATING))
            is None
        )
        reopened = store.claim_run("wf", "b", now=3.0, reopen=(S.PARKED, S.RUNNING))
        assert reopened == token + 1
        record = store.get_run("wf")
        assert (record.status, record.owner, record.finished_at, record.owed) == (
            S.RUNNING,
            "b",
            None,
            True,
        )

    def test_recoveries_are_counted_in_a_row_at_one_position(self) -> None:
        store = self._store()
        token = self._start(store)
        assert store.note_recovery("wf", token, "2 records") == 1
        assert store.note_recovery("wf", token, "2 records") == 2
        assert store.note_recovery("wf", token, "3 records") == 1
        newer = store.claim_run("wf", "b", now=2.0, replacing="a")
        try:
            store.note_recovery("wf", token, "3 records")
        except LeaseLost:
            pass
        else:
            raise AssertionError("a superseded owner counted a recovery")
        assert newer is not None
        assert store.note_recovery("wf", newer, "3 records") == 2

    def test_the_owed_work_index_lists_only_what_owes_work(self) -> None:
        store = self._store()
        tokens = {name: self._start(store, name, now=float(i)) for i, name in enumerate("abcd")}
        store.write(Write("a", tokens["a"], 5.0, finish=Finish(S.COMPLETED)))
        store.write(Write("b", tokens["b"], 5.0, finish=Finish(S.COMPENSATED), owes=True))
        store.write(Write("c", tokens["c"], 5.0, status=S.COMPENSATING))
        owed = store.owed_runs("flow")
        assert [o.workflow_id for o in owed] == ["b", "c", "d"]
        assert {o.workflow_id: o.status for o in owed}["b"] is S.COMPENSATED
        assert store.owed_runs("other") == []
        store.write(Write("b", tokens["b"], 6.0, (self._step("A.x:late1:undo"),), owes=False))
        assert [o.workflow_id for o in store.owed_runs("flow")] == ["c", "d"]
        assert store.get_run("b").status is S.COMPENSATED

    def test_write_many_applies_all_but_the_fenced_out_ones(self) -> None:
        store = self._store()
        first = self._start(store, "one")
        second = self._start(store, "two")
        refused = store.write_many(
            [
                Write("one", first, 2.0, (self._step("A.x"),)),
                Write("two", second + 5, 2.0, (self._step("A.x"),)),
                Write("two", second, 2.0, (self._step("B.y"),), finish=Finish(S.COMPLETED)),
            ]
        )
        assert refused == ["two"]
        assert [s.key for s in store.get_run("one").steps] == ["A.x"]
        record = store.get_run("two")
        assert [s.key for s in record.steps] == ["B.y"]
        assert record.status is S.COMPLETED

    def test_write_many_applies_nothing_of_a_fenced_out_write(self) -> None:
        store = self._store()
        first = self._start(store, "one")
        second = self._start(store, "two")
        store.write(Write("two", second, 2.0, (self._step("A.x"),)))
        refused = store.write_many(
            [
                Write("two", second + 1, 3.0, (self._step("B.y"), self._step("C.z")),
                      status=S.COMPENSATING),
                Write("one", first, 3.0, (self._step("A.x"), self._step("B.y"))),
            ]
        )  # fmt: skip
        assert refused == ["two"]
        two = store.get_run("two")
        assert (two.status, [s.key for s in two.steps]) == (S.RUNNING, ["A.x"])
        assert [s.key for s in store.get_run("one").steps] == ["A.x", "B.y"]

    def test_reads_show_what_is_stored_now(self) -> None:
        store = self._store()
        token = self._start(store)
        before = store.get_run("wf")
        store.write(Write("wf", token, 2.0, (self._step("A.x"),), finish=Finish(S.COMPLETED)))
        assert before.steps == []
        assert before.status is S.RUNNING
        after = store.get_run("wf")
        assert after.status is S.COMPLETED
        assert [s.key for s in after.steps] == ["A.x"]
        assert store.get_run("missing") is None

    def test_list_runs_filters_by_flow_and_status(self) -> None:
        store = self._store()
        token = self._start(store, "x", now=1.0)
        store.start_run("y", "other", ContractMessage(n=2), owner="a", now=2.0)
        store.write(Write("x", token, 3.0, finish=Finish(S.COMPLETED)))
        assert [r.workflow_id for r in store.list_runs()] == ["x", "y"]
        assert [r.workflow_id for r in store.list_runs(flow="other")] == ["y"]
        assert [r.workflow_id for r in store.list_runs(status=S.COMPLETED)] == ["x"]

    def test_forget_finished_keeps_runs_with_effects_applied(self) -> None:
        store = self._store()
        outcomes = {
            "done": S.COMPLETED, "undone": S.COMPENSATED, "cancelled": S.CANCELLED,
            "parked": S.PARKED, "stuck": S.COMPENSATION_FAILED,
        }  # fmt: skip
        for name, status in outcomes.items():
            token = self._start(store, name)
            store.write(Write(name, token, 2.0, finish=Finish(status)))
        owing = self._start(store, "owing")
        store.write(Write("owing", owing, 2.0, finish=Finish(S.COMPENSATED), owes=True))
        self._start(store, "open")
        assert store.forget_finished(before=1.5) == 0
        assert store.forget_finished(before=10.0) == 3
        assert sorted(r.workflow_id for r in store.list_runs()) == [
            "open",
            "owing",
            "parked",
            "stuck",
        ]

    def test_requests_are_kept_for_unfinished_runs_only_in_order(self) -> None:
        store = self._store()
        token = self._start(store)
        assert store.requests("wf") == []
        assert store.request("wf", ContractMessage(n=5), now=2.0)
        assert store.request("wf", None, now=3.0)  # a cancel
        first, second = store.requests("wf")
        assert (first.message, first.at, first.cancel) == (ContractMessage(n=5), 2.0, False)
        assert (second.message, second.at, second.cancel) == (None, 3.0, True)
        assert first.seq < second.seq
        assert not store.request("nobody", None, now=3.0)
        store.write(Write("wf", token, 4.0, finish=Finish(S.COMPLETED)))
        assert not store.request("wf", None, now=5.0)  # finished: nothing to ask of it
        assert len(store.requests("wf")) == 2  # what was kept stays until dropped

    def test_requests_are_dropped_by_their_owner_only_up_to_a_number(self) -> None:
        store = self._store()
        self._start(store, owner="a")
        for n in range(3):
            assert store.request("wf", ContractMessage(n=n), now=2.0)
        first, second, third = store.requests("wf")
        token = store.claim_run("wf", "b", now=50.0, replacing="a")
        assert token == 2
        try:
            store.drop_requests("wf", 1, third.seq)
        except LeaseLost:
            pass
        else:
            raise AssertionError("a superseded owner dropped requests")
        assert store.requests("wf") == [first, second, third]
        store.drop_requests("wf", 2, second.seq)
        assert store.requests("wf") == [third]
        assert store.request("wf", None, now=3.0)
        later = store.requests("wf")[-1]
        assert later.seq > third.seq

    def test_forgotten_runs_take_their_requests_along(self) -> None:
        store = self._store()
        token = self._start(store)
        assert store.request("wf", None, now=1.5)
        store.write(Write("wf", token, 2.0, finish=Finish(S.COMPLETED)))
        assert store.forget_finished(before=10.0) == 1
        assert store.requests("wf") == []


class EventLogContract(_Base):
    """What a durable choreography relies on: outbox and inbox. Subclass with `create_store()`."""

    @staticmethod
    def _envelope(n: int, message_id: str, cause: str | None = None) -> Envelope[Any]:
        return Envelope(
            ContractMessage(n=n), "wf", cause, message_id, datetime(2026, 1, 2, tzinfo=UTC)
        )

    def test_the_start_envelope_is_logged_with_the_start(self) -> None:
        store = self._store()
        self._start(store, events=(self._envelope(1, "m1"),))
        logged = store.events_of("wf")
        assert [e.message_id for e in logged] == ["m1"]
        assert logged[0].message == ContractMessage(n=1)
        assert logged[0].correlation_id == "wf"
        assert logged[0].causation_id is None
        assert logged[0].occurred_at == datetime(2026, 1, 2, tzinfo=UTC)

    def test_events_and_inbox_marks_commit_with_their_record(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        store.write(
            Write("wf", token, 2.0, (self._step("A.x"),), events=(self._envelope(2, "m2", "m1"),),
                  handled=(("m1", "A.x"),))
        )  # fmt: skip
        assert [e.message_id for e in store.events_of("wf")] == ["m1", "m2"]
        assert store.events_of("wf")[1].causation_id == "m1"
        assert store.handled_of("wf") == {("m1", "A.x")}

    def test_a_fenced_out_write_logs_nothing(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        store.claim_run("wf", "b", now=2.0, replacing="a")
        try:
            store.write(
                Write("wf", token, 3.0, (self._step("A.x"),), events=(self._envelope(2, "m2"),),
                      handled=(("m1", "A.x"),))
            )  # fmt: skip
        except LeaseLost:
            pass
        else:
            raise AssertionError("a superseded owner's events were logged")
        assert [e.message_id for e in store.events_of("wf")] == ["m1"]
        assert store.handled_of("wf") == set()

    def test_an_envelope_is_logged_once(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        store.write(
            Write("wf", token, 2.0, events=(self._envelope(1, "m1"), self._envelope(2, "m2")))
        )
        assert [e.message_id for e in store.events_of("wf")] == ["m1", "m2"]

    def test_deliveries_are_counted_and_fenced(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        assert store.count_delivery("wf", token, "m1", "A.x") == 1
        assert store.count_delivery("wf", token, "m1", "A.x") == 2
        assert store.count_delivery("wf", token, "m1", "B.y") == 1
        store.claim_run("wf", "b", now=2.0, replacing="a")
        try:
            store.count_delivery("wf", token, "m1", "A.x")
        except LeaseLost:
            pass
        else:
            raise AssertionError("a superseded owner counted a delivery")

    def test_dead_letters_are_set_aside(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        store.count_delivery("wf", token, "m1", "A.x")
        store.dead_letter("wf", token, "m1", "A.x", "kept killing its process")
        letters = store.dead_letters()
        assert [(d.message_id, d.subscriber, d.error) for d in letters] == [
            ("m1", "A.x", "kept killing its process")
        ]
        assert ("m1", "A.x") in store.handled_of("wf")

    def test_forgotten_runs_take_their_events_along(self) -> None:
        store = self._store()
        token = self._start(store, events=(self._envelope(1, "m1"),))
        store.write(Write("wf", token, 2.0, finish=Finish(S.COMPLETED), handled=(("m1", "A.x"),)))
        assert store.forget_finished(before=10.0) == 1
        assert store.events_of("wf") == []
        assert store.handled_of("wf") == set()
