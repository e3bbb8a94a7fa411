"""SQLiteStore: real SQLite on disk (WAL), read back by a fresh store, and refusing bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordination import Envelope, Event, WorkflowStatus
from coordination.errors import StoreError, WorkflowConflict
from coordination.stores import SQLiteStore
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PlaceOrder,
)


def services(stock: int = 5) -> tuple[object, ...]:
    return (
        InMemoryPayments({"c1": 10_000}),
        InMemorySellers({"sku-1": stock}),
        InMemoryLogistics(["ann", "bob"]),
        InMemoryNotifications(),
    )


def order(order_id: str = "o1", quantity: int = 2) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c1",
        email="a@b.c",
        sku="sku-1",
        quantity=quantity,
        amount_cents=1500,
        address="1 Road",
    )


def test_runs_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    with SQLiteStore(path) as store:
        orders = PlaceOrder(*services(), store=store)  # type: ignore[arg-type]
        done = orders.run(order(), workflow_id="order-1")
        failed = orders.run(order("o2", quantity=9), workflow_id="order-2")
    assert done.status is WorkflowStatus.COMPLETED
    assert failed.status is WorkflowStatus.COMPENSATED

    with SQLiteStore(path) as store:
        orders = PlaceOrder(*services(), store=store)  # type: ignore[arg-type]
        again = orders.get("order-1")
        assert again.status is WorkflowStatus.COMPLETED
        assert again.output == done.output
        assert again.journal.names() == done.journal.names()
        compensated = orders.get("order-2")
        assert compensated.status is WorkflowStatus.COMPENSATED
        assert [s.key for s in compensated.steps] == [s.key for s in failed.steps]
        assert str(compensated.error) == str(failed.error)
        # Idempotent across processes: the recorded run comes back, nothing runs again.
        fresh = services()
        orders = PlaceOrder(*fresh, store=store)  # type: ignore[arg-type]
        assert orders.run(order(), workflow_id="order-1").status is WorkflowStatus.COMPLETED
        assert fresh[0].snapshot()["charged"] == []  # type: ignore[attr-defined]
        with pytest.raises(WorkflowConflict):
            orders.run(order("other"), workflow_id="order-1")


def test_the_file_is_wal_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(connection.execute("SELECT key, value FROM coordination_meta"))
    assert meta == {"application": "coordination", "schema": "3"}
    connection.close()


def test_the_file_and_its_wal_are_private(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)  # the usual umask: files would be world-readable
    try:
        path = tmp_path / "orders.db"
        with SQLiteStore(path) as store:
            store.start_run("wf", "flow", order(), owner="me", now=1.0)
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        os.umask(old)


def test_a_step_is_recorded_once(tmp_path: Path) -> None:
    from coordination.stores import StepOutcome, StepRecord, Write

    with SQLiteStore(tmp_path / "s.db") as store:
        _, token = store.start_run("wf", "flow", order(), owner="me", now=1.0)
        assert token is not None
        step = StepRecord("A.x", StepOutcome.COMPLETED, 1, None, None, ())
        store.write(Write("wf", token, 2.0, (step,)))
        with pytest.raises(StoreError, match="recorded once"):
            store.write(Write("wf", token, 3.0, (step,)))
        record = store.get_run("wf")
        assert record is not None
        assert [s.key for s in record.steps] == ["A.x"]


def test_an_older_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE coordination_meta SET value = '1' WHERE key = 'schema'")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="schema version 1, written by an earlier"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_file_of_schema_version_2_is_upgraded_keeping_its_runs(tmp_path: Path) -> None:
    """Version 2 had no requests table: opening it adds the table (one transaction) and
    moves the file to version 3; its runs read back as they were."""
    path = tmp_path / "v2.db"
    with SQLiteStore(path) as store:
        store.start_run("wf", "flow", order(), owner="me", now=1.0)
        before = store.get_run("wf")
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE requests")  # the file as version 2 wrote it
    connection.execute("UPDATE coordination_meta SET value = '2' WHERE key = 'schema'")
    connection.commit()
    connection.close()

    with SQLiteStore(path) as store:
        again = store.get_run("wf")
        assert again is not None
        assert before is not None
        assert (again.start, again.status, again.owner, again.token) == (
            before.start,
            before.status,
            before.owner,
            before.token,
        )
        assert store.request("wf", None, now=2.0)
        assert [request.cancel for request in store.requests("wf")] == [True]
    connection = sqlite3.connect(path)
    (version,) = connection.execute(
        "SELECT value FROM coordination_meta WHERE key = 'schema'"
    ).fetchone()
    connection.close()
    assert version == "3"


@pytest.mark.parametrize("value", ["v2", "", "2.0", "-1"])
def test_an_unreadable_schema_version_is_a_store_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "odd.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE coordination_meta SET value = ? WHERE key = 'schema'", (value,))
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="schema version"):
        SQLiteStore(path)


def test_a_meta_table_of_another_shape_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE coordination_meta (id INTEGER)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="another shape"):
        SQLiteStore(path)


def test_a_foreign_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (name TEXT)")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="something else"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"definitely not a database " * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE coordination_meta SET value = '99' WHERE key = 'schema'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SQLiteStore(path)


def test_unreadable_message_types_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    from abc import abstractmethod

    from coordination import Context, Event, Participant, action
    from coordination.orchestration import Orchestrator, step

    class Local(Event):
        n: int

    class Done(Event):
        n: int

    class Worker(Participant):
        @action
        @abstractmethod
        def work(self, message: Local, ctx: Context) -> Done: ...

    class RealWorker(Worker):
        def work(self, message: Local, ctx: Context) -> Done:
            return Done(n=message.n)

    class LocalFlow(Orchestrator[Local, Done], name="local-flow"):
        steps = (step(Worker.work),)

    with SQLiteStore(tmp_path / "s.db") as store:
        with pytest.raises(StoreError, match="type_name"):
            LocalFlow(RealWorker(), store=store)
        assert store.list_runs() == []


def test_a_type_name_defined_nowhere_in_the_process_names_the_run_and_leaves_the_row(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.start_run("wf", "flow", order(), owner="me", now=1.0)
    connection = sqlite3.connect(path)
    with connection:  # as a process whose code defines another class would have written it
        (start,) = connection.execute("SELECT start FROM runs").fetchone()
        connection.execute(
            "UPDATE runs SET start = ?",
            (start.replace("ecommerce.OrderPlaced", "ecommerce.OrderPlacedElsewhere"),),
        )
    connection.close()
    with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match=r"run 'wf'.*ecommerce\.OrderPlacedElsewhere"):
            store.get_run("wf")
        with pytest.raises(StoreError):
            store.get_run("wf")  # the row is still there, unchanged


def test_forget_finished_deletes_only_old_finished_runs(tmp_path: Path) -> None:
    from coordination.stores import Finish, StepOutcome, StepRecord, Write

    with SQLiteStore(tmp_path / "s.db") as store:
        tokens = {}
        for name, now in (("old", 1.0), ("new", 50.0), ("open", 1.0)):
            _, tokens[name] = store.start_run(name, "flow", order(), owner="me", now=now)
            step = StepRecord("A.x", StepOutcome.COMPLETED, 1, None, None, ())
            store.write(Write(name, tokens[name], now, (step,)))
        store.write(Write("old", tokens["old"], 2.0, finish=Finish(WorkflowStatus.COMPLETED)))
        store.write(Write("new", tokens["new"], 60.0, finish=Finish(WorkflowStatus.COMPLETED)))
        assert store.forget_finished(before=10.0) == 1
        assert store.get_run("old") is None
        assert store.get_run("new") is not None
        assert store.get_run("open") is not None  # unfinished runs are never forgotten
    connection = sqlite3.connect(tmp_path / "s.db")
    ((steps,),) = connection.execute("SELECT COUNT(*) FROM steps").fetchall()
    connection.close()
    assert steps == 2


def test_a_heartbeat_renews_the_leases_of_runs_this_store_owns(tmp_path: Path) -> None:
    import time

    path = tmp_path / "s.db"
    with SQLiteStore(path, lease=0.06) as store:
        record, _ = store.start_run("wf", "flow", order(), owner="me", now=time.time())
        first = record.lease_expires
        assert first is not None
        deadline = time.monotonic() + 5
        renewed = first
        reader = sqlite3.connect(path)
        while renewed <= first and time.monotonic() < deadline:
            time.sleep(0.01)
            ((renewed,),) = reader.execute(
                "SELECT lease_expires FROM runs WHERE workflow_id = 'wf'"
            ).fetchall()
        reader.close()
        assert renewed > first, "the lease was never renewed"


def test_a_start_rolled_back_leaves_its_flow_shape_to_be_stored_by_the_next(
    tmp_path: Path,
) -> None:
    # The shape is written in the first start's transaction; when that transaction rolls
    # back (here: an envelope it logs cannot be stored), the store must not believe the
    # shape stored, or every later run would reference a shape the file does not hold.
    class Local(Event):  # defined in a function: its name cannot be read back
        n: int

    start = order()
    with SQLiteStore(tmp_path / "runs.db") as store:
        with pytest.raises(StoreError, match="inside a function"):
            store.start_run(
                "first", "flow", start, owner="me", now=1.0, shape="the shape",
                events=(Envelope(Local(n=1)),),
            )  # fmt: skip
        assert store.get_run("first") is None
        store.start_run("second", "flow", start, owner="me", now=2.0, shape="the shape")
        record = store.get_run("second")
    assert record is not None
    assert record.shape == "the shape"
    with SQLiteStore(tmp_path / "runs.db") as again:
        reread = again.get_run("second")
    assert reread is not None
    assert reread.shape == "the shape"


def test_a_delivery_count_the_file_loses_is_a_store_error(tmp_path: Path) -> None:
    """A damaged (here: tampered) file that loses the inbox row it just counted gives a
    `StoreError` and changes nothing, never a TypeError (found by tests/test_fuzz.py)."""
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.register_types([OrderPlaced])
        _, token = store.start_run("wf", "flow", order(), owner="a", now=1.0)
        assert token is not None
        tamper = sqlite3.connect(path)
        tamper.execute(
            "CREATE TRIGGER lose AFTER INSERT ON inbox BEGIN "
            "DELETE FROM inbox WHERE message_id = NEW.message_id; END"
        )
        tamper.commit()
        tamper.close()
        with pytest.raises(StoreError, match="lost the delivery"):
            store.count_delivery("wf", token, "m1", "Part.act")
        record = store.get_run("wf")
        assert record is not None
        assert record.token == token
