"""PostgresStore: a real server, read back by a fresh store, refusing schemas not its own,
mapping every driver error, and reconnecting after the server restarts."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from coordination import WorkflowStatus
from coordination.errors import LeaseLost, StoreError, WorkflowConflict
from coordination.stores import Finish, PostgresStore, StepOutcome, StepRecord, Write
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    OrderPlaced,
    PlaceOrder,
)
from tests.postgres import DedicatedServer, PostgresServer, free_port


def services(stock: int = 5) -> tuple[Any, ...]:
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


def step(key: str = "A.x") -> StepRecord:
    return StepRecord(key, StepOutcome.COMPLETED, 1, None, None, ())


def catalog(postgres: PostgresServer, schema: str) -> list[tuple[Any, ...]]:
    """Every table of `schema` with its rows, to check that a refusal changed nothing."""
    with postgres.connect() as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
            )
        ]
        return [
            (table, connection.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1').fetchall())
            for table in tables
        ]


def test_runs_survive_closing_and_reopening_the_store(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    with PostgresStore(postgres.url, schema=schema) as store:
        orders = PlaceOrder(*services(), store=store)
        done = orders.run(order(), workflow_id="order-1")
        failed = orders.run(order("o2", quantity=9), workflow_id="order-2")
    assert done.status is WorkflowStatus.COMPLETED
    assert failed.status is WorkflowStatus.COMPENSATED

    with PostgresStore(postgres.url, schema=schema) as store:
        orders = PlaceOrder(*services(), store=store)
        again = orders.get("order-1")
        assert again.status is WorkflowStatus.COMPLETED
        assert again.output == done.output
        assert again.journal.names() == done.journal.names()
        compensated = orders.get("order-2")
        assert compensated.status is WorkflowStatus.COMPENSATED
        assert [s.key for s in compensated.steps] == [s.key for s in failed.steps]
        assert str(compensated.error) == str(failed.error)
        fresh = services()
        orders = PlaceOrder(*fresh, store=store)
        assert orders.run(order(), workflow_id="order-1").status is WorkflowStatus.COMPLETED
        assert fresh[0].snapshot()["charged"] == []  # idempotent: nothing ran again
        with pytest.raises(WorkflowConflict):
            orders.run(order("other"), workflow_id="order-1")


def test_the_schema_is_created_in_its_own_namespace_with_a_version(
    postgres: PostgresServer,
) -> None:
    schema = postgres.new_schema()
    postgres.store(schema)
    with postgres.connect() as connection:
        meta = dict(connection.execute(f'SELECT key, value FROM "{schema}".coordination_meta'))
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
            )
        }
    assert meta == {"application": "coordination", "schema": "2"}
    assert tables == {"coordination_meta", "shapes", "runs", "steps", "events", "inbox", "requests"}


def test_stores_in_two_schemas_of_one_database_never_see_each_other(
    postgres: PostgresServer,
) -> None:
    one, two = postgres.store(), postgres.store()
    one.start_run("wf", "flow", order(), owner="a", now=1.0)
    assert two.get_run("wf") is None
    assert [r.workflow_id for r in one.list_runs()] == ["wf"]


def _damage(postgres: PostgresServer, schema: str, statement: str) -> None:
    with postgres.connect() as connection:
        connection.execute(statement.replace("S.", f'"{schema}".'))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("0", "schema version 0, written by an earlier"),
        ("99", "schema version 99, newer than this coordination"),
        ("v1", "unreadable schema version 'v1'"),
        ("1.0", "unreadable schema version"),
        ("", "unreadable schema version"),
    ],
)
def test_another_schema_version_is_refused_and_left_untouched(
    postgres: PostgresServer, value: str, match: str
) -> None:
    schema = postgres.new_schema()
    postgres.store(schema).start_run("wf", "flow", order(), owner="a", now=1.0)
    _damage(
        postgres, schema, f"UPDATE S.coordination_meta SET value = '{value}' WHERE key = 'schema'"
    )
    before = catalog(postgres, schema)
    with pytest.raises(StoreError, match=match):
        PostgresStore(postgres.url, schema=schema)
    assert catalog(postgres, schema) == before


def test_a_schema_of_version_1_is_upgraded_keeping_its_runs(postgres: PostgresServer) -> None:
    """Version 1 had no requests table: opening it adds the table and moves the schema to
    version 2 (in the openers' transaction); its runs read back as they were."""
    schema = postgres.new_schema()
    first = postgres.store(schema)
    first.start_run("wf", "flow", order(), owner="a", now=1.0)
    before = first.get_run("wf")
    first.close()
    _damage(postgres, schema, "DROP TABLE S.requests")
    _damage(postgres, schema, "UPDATE S.coordination_meta SET value = '1' WHERE key = 'schema'")

    store = PostgresStore(postgres.url, schema=schema)
    try:
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
    finally:
        store.close()
    with postgres.connect() as connection:
        (version,) = connection.execute(
            f"SELECT value FROM \"{schema}\".coordination_meta WHERE key = 'schema'"
        ).fetchone()
    assert version == "2"


def test_a_schema_of_something_else_is_refused_and_left_untouched(
    postgres: PostgresServer,
) -> None:
    schema = postgres.new_schema()
    with postgres.connect() as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(f'CREATE TABLE "{schema}".users (name text)')
        connection.execute(f"INSERT INTO \"{schema}\".users VALUES ('ann')")
    before = catalog(postgres, schema)
    with pytest.raises(StoreError, match=r"holds something else.*users"):
        PostgresStore(postgres.url, schema=schema)
    assert catalog(postgres, schema) == before


def test_a_meta_table_of_another_application_or_shape_is_refused(
    postgres: PostgresServer,
) -> None:
    other, odd = postgres.new_schema(), postgres.new_schema()
    postgres.store(other)
    _damage(
        postgres, other, "UPDATE S.coordination_meta SET value = 'else' WHERE key = 'application'"
    )
    with pytest.raises(StoreError, match="not a coordination store"):
        PostgresStore(postgres.url, schema=other)
    with postgres.connect() as connection:
        connection.execute(f'CREATE SCHEMA "{odd}"')
        connection.execute(f'CREATE TABLE "{odd}".coordination_meta (id int)')
    with pytest.raises(StoreError, match="another shape"):
        PostgresStore(postgres.url, schema=odd)


def test_a_schema_missing_tables_is_refused(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    postgres.store(schema)
    _damage(postgres, schema, "DROP TABLE S.inbox")
    with pytest.raises(StoreError, match=r"lacks the tables \['inbox'\]"):
        PostgresStore(postgres.url, schema=schema)


def test_stores_opening_one_new_schema_at_once_all_open_it(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            postgres.store(schema)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"schema": "Bad-Name"}, "lower-case identifier"),
        ({"schema": "pg_mine"}, "lower-case identifier"),
        ({"schema": ""}, "lower-case identifier"),
        ({"lease": 0}, "lease"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
    ],
)
def test_bad_options_are_refused_before_connecting(options: dict[str, Any], match: str) -> None:
    port = free_port()  # nothing listens there: a connection attempt would fail otherwise
    with pytest.raises(StoreError, match=match):
        PostgresStore(f"postgresql://nobody@127.0.0.1:{port}/x", **options)


def test_a_malformed_dsn_is_refused_without_echoing_it() -> None:
    with pytest.raises(StoreError, match="not a valid connection string") as caught:
        PostgresStore("host=h password=s3cret nonsense")
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_server_is_a_store_error_within_connect_timeout() -> None:
    port = free_port()
    began = time.monotonic()
    with pytest.raises(StoreError, match="connecting failed"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=1)
    assert time.monotonic() - began < 10


def test_driver_errors_are_store_errors_raised_before_anything_is_stored(
    postgres: PostgresServer,
) -> None:
    store = postgres.store()
    store.register_types([OrderPlaced])
    for bad in ("nul\x00id", "lone\ud800surrogate"):
        with pytest.raises(StoreError):
            store.start_run(bad, "flow", order(), owner="a", now=1.0)
    assert store.list_runs() == []
    _, token = store.start_run("wf", "flow", order(), owner="a", now=1.0)
    assert token is not None
    store.write(Write("wf", token, 2.0, (step(),)))
    with pytest.raises(StoreError, match="recorded once"):
        store.write(Write("wf", token, 3.0, (step(),)))
    with pytest.raises(StoreError, match="recorded once"):  # the multi-statement path too
        store.write(Write("wf", token, 3.0, (step("B.y"), step())))
    record = store.get_run("wf")
    assert record is not None
    assert [s.key for s in record.steps] == ["A.x"]


def test_a_run_locked_past_busy_timeout_is_a_store_error(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    store = postgres.store(schema, busy_timeout=0.2)
    _, token = store.start_run("wf", "flow", order(), owner="a", now=1.0)
    assert token is not None
    with postgres.connect() as holder, holder.transaction():
        holder.execute(f"SELECT 1 FROM \"{schema}\".runs WHERE workflow_id = 'wf' FOR UPDATE")
        with pytest.raises(StoreError, match="longer than busy_timeout"):
            store.write(Write("wf", token, 2.0, (step(),)))
    store.write(Write("wf", token, 3.0, (step(),)))  # the lock is gone: the write goes in


def test_a_stored_type_name_defined_nowhere_names_the_run_and_leaves_the_row(
    postgres: PostgresServer,
) -> None:
    schema = postgres.new_schema()
    store = postgres.store(schema)
    store.register_types([OrderPlaced])
    store.start_run("wf", "flow", order(), owner="me", now=1.0)
    _damage(
        postgres,
        schema,
        "UPDATE S.runs SET start = replace(start, 'ecommerce.OrderPlaced', 'os.system')",
    )
    before = catalog(postgres, schema)
    reader = postgres.store(schema)
    reader.register_types([OrderPlaced])
    for _ in range(2):
        with pytest.raises(StoreError, match=r"run 'wf'.*os\.system"):
            reader.get_run("wf")
    assert catalog(postgres, schema) == before


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE S.runs SET start = '{\"type\": '",
        "UPDATE S.runs SET status = 'exploded'",
        "UPDATE S.runs SET error = '[1, 2]'",
        "UPDATE S.steps SET journal = '[\"started\"]'",
        "UPDATE S.steps SET outcome = 'weird'",
        "UPDATE S.steps SET output = '[' || repeat('[', 100000) || ']'",
        "DELETE FROM S.shapes",
    ],
)
def test_damaged_rows_are_store_errors_naming_the_run(
    postgres: PostgresServer, damage: str
) -> None:
    schema = postgres.new_schema()
    store = postgres.store(schema)
    store.register_types([OrderPlaced])
    _, token = store.start_run("wf", "flow", order(), owner="me", now=1.0, shape="a shape")
    assert token is not None
    store.write(Write("wf", token, 2.0, (step(),), finish=Finish(WorkflowStatus.COMPLETED, None)))
    _damage(postgres, schema, damage)
    with pytest.raises(StoreError, match="'wf'"):
        postgres.store(schema).get_run("wf")


def test_a_heartbeat_renews_the_leases_of_runs_this_store_owns(
    postgres: PostgresServer,
) -> None:
    schema = postgres.new_schema()
    store = postgres.store(schema, lease=0.06)
    record, _ = store.start_run("wf", "flow", order(), owner="me", now=time.time())
    first = record.lease_expires
    assert first is not None
    renewed = first
    deadline = time.monotonic() + 5
    while renewed <= first and time.monotonic() < deadline:
        time.sleep(0.01)
        stored = store.get_run("wf")
        assert stored is not None
        assert stored.lease_expires is not None
        renewed = stored.lease_expires
    assert renewed > first, "the lease was never renewed"


def test_claims_from_two_stores_at_once_give_one_token(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    stores = [postgres.store(schema) for _ in range(2)]
    stores[0].register_types([OrderPlaced])
    _, token = stores[0].start_run("wf", "flow", order(), owner="a", now=1.0)
    assert token is not None
    stores[0].release_run("wf", token, now=2.0)
    won: list[int] = []
    barrier = threading.Barrier(8)

    def take(store: PostgresStore, owner: str) -> None:
        barrier.wait()
        claimed = store.claim_run("wf", owner, now=3.0)
        if claimed is not None:
            won.append(claimed)

    threads = [threading.Thread(target=take, args=(stores[i % 2], f"o{i}")) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [2]
    with pytest.raises(LeaseLost):
        stores[1].write(Write("wf", token, 4.0, (step(),)))


def test_the_pool_keeps_to_max_connections(postgres: PostgresServer) -> None:
    schema = postgres.new_schema()
    store = postgres.store(schema, max_connections=2)
    store.register_types([OrderPlaced])
    busy = threading.Barrier(6)

    def work(index: int) -> None:
        busy.wait()
        for n in range(20):
            store.start_run(f"wf-{index}-{n}", "flow", order(), owner="a", now=1.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with postgres.connect() as connection:
        ((count,),) = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (f"coordination:{schema}",),
        ).fetchall()
    assert 1 <= count <= 2
    assert len(store.list_runs()) == 120


def test_the_store_reconnects_after_the_server_restarts(
    dedicated_postgres: DedicatedServer,
) -> None:
    """Every pooled connection dies with the server; while it is down a call fails typed;
    once it is back the same store goes on, without being opened again."""
    store = PostgresStore(dedicated_postgres.url, connect_timeout=1, max_connections=4)
    try:
        store.register_types([OrderPlaced])
        orders = PlaceOrder(*services(), store=store)
        assert orders.run(order(), workflow_id="before").status is WorkflowStatus.COMPLETED
        dedicated_postgres.down()
        with pytest.raises(StoreError, match="failed"):
            store.get_run("before")
        dedicated_postgres.up()
        again = store.get_run("before")
        assert again is not None
        assert again.status is WorkflowStatus.COMPLETED
        after = orders.run(order("o2"), workflow_id="after")
        assert after.status is WorkflowStatus.COMPLETED
        dedicated_postgres.down()  # a restart the store never saw fail: still no error
        dedicated_postgres.up()
        assert [r.workflow_id for r in store.list_runs()] == ["before", "after"]
    finally:
        store.close()


# -- the queue of workers ---------------------------------------------------------------


# Claims of the next run: the shipped WorkQueueContract (tests/stores/test_contract.py).


def test_an_announcement_wakes_a_waiting_process_and_is_kept_until_taken(
    postgres: PostgresServer,
) -> None:
    schema = postgres.new_schema()
    waiting, announcing = postgres.store(schema), postgres.store(schema)
    assert waiting.wait_for_work("flow", 0.05) is False  # nothing announced: it times out
    time.sleep(0.3)  # the listener is listening
    announcing.announce("other")
    announcing.announce("flow")
    began = time.monotonic()
    assert waiting.wait_for_work("flow", 10.0) is True
    assert time.monotonic() - began < 5
    assert waiting.wait_for_work("flow", 0.05) is False  # taken once
    announcing.announce("flow")  # announced while nobody waits: the next wait sees it
    time.sleep(0.3)
    assert waiting.wait_for_work("flow", 0.0) is True
    assert postgres.store().wait_for_work("flow", 0.05) is False  # another schema hears none
