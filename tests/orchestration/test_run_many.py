"""run_many(): a batch of runs in lockstep, one commit per round, every single-run guarantee.

Each run of a batch must end exactly as it would alone (status, journal, output, effects);
ids stay idempotent; bad input is refused before anything is written; a run another owner
takes is fenced out alone; an interrupted batch is resumed run by run. Killed mid-batch by a
real SIGKILL: tests/crash/test_crash_orchestration.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import Context, WorkflowStatus
from coordination.errors import LeaseLost, UsageError, WorkflowConflict
from coordination.stores import MemoryStore, SQLiteStore, Store, Write
from coordination.testing import assert_equivalent, fault_plans, run_both
from examples.ecommerce import PlaceOrder
from examples.ecommerce.messages import (
    CourierAssigned,
    OrderPlaced,
    PaymentCaptured,
    StockReserved,
)
from examples.ecommerce.services import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
)
from tests.postgres import Backend
from tests.test_equivalence import CASES, Case

COMPLETED, COMPENSATED = WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED


def order(i: int, quantity: int = 1) -> OrderPlaced:
    # Every order has its own customer and stock, so runs of a batch never share a resource
    # and the lockstep order cannot change an outcome.
    return OrderPlaced(
        order_id=f"o{i}", customer_id=f"c{i}", email="a@b.c", sku=f"sku{i}",
        quantity=quantity, amount_cents=100, address="1 Road",
    )  # fmt: skip


def services(count: int) -> tuple[Any, ...]:
    return (
        InMemoryPayments({f"c{i}": 1_000 for i in range(count)}),
        InMemorySellers({f"sku{i}": 3 for i in range(count)}),
        InMemoryLogistics([f"courier-{i}" for i in range(count)]),
        InMemoryNotifications(),
    )


def shape(run: Any) -> list[tuple[str, str, str, int]]:
    return [(e.kind.value, e.participant, e.name, e.attempt) for e in run.journal]


def snapshots(side: Sequence[Any]) -> list[Any]:
    return [participant.snapshot() for participant in side]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Store]:
    """Fresh stores of one backend, each closed when the test ends."""
    opened: list[Any] = []
    numbers = iter(range(1_000))

    def make() -> Store:
        if request.param == "memory":
            return MemoryStore()
        if request.param == "sqlite":
            store: Any = SQLiteStore(tmp_path / f"s{next(numbers)}.db")
        else:
            store = request.getfixturevalue("postgres").store()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_each_run_of_a_batch_ends_as_it_would_alone(stores: Callable[[], Store]) -> None:
    orders = [order(0), order(1, quantity=9), order(2), order(3, quantity=7), order(4)]
    ids = [f"wf-{i}" for i in range(len(orders))]
    alone_side = services(5)
    alone = PlaceOrder(*alone_side, store=stores())
    expected = [alone.run(o, workflow_id=i) for o, i in zip(orders, ids, strict=True)]
    batch_side = services(5)
    batched = PlaceOrder(*batch_side, store=stores()).run_many(orders, workflow_ids=ids)
    assert [run.workflow_id for run in batched] == ids
    assert [run.status for run in batched] == [
        COMPLETED, COMPENSATED, COMPLETED, COMPENSATED, COMPLETED,
    ]  # fmt: skip
    for one, many in zip(expected, batched, strict=True):
        assert many.status is one.status
        assert shape(many) == shape(one)
        assert many.output == one.output
    assert snapshots(batch_side) == snapshots(alone_side)


class CountingStore(SQLiteStore):
    """A SQLite store that counts its commits by kind (to see the batch's one per round)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def start_run(self, *args: Any, **kwargs: Any) -> Any:
        self._count("start_run")
        return super().start_run(*args, **kwargs)

    def start_many(self, *args: Any, **kwargs: Any) -> Any:
        self._count("start_many")
        return super().start_many(*args, **kwargs)

    def write(self, write: Any) -> None:
        self._count("write")
        super().write(write)

    def write_many(self, writes: Any) -> list[str]:
        self._count("write_many")
        return super().write_many(writes)


def test_a_batch_commits_once_per_round(tmp_path: Any) -> None:
    store = CountingStore(tmp_path / "c.db")
    try:
        flow = PlaceOrder(*services(64), store=store)
        runs = flow.run_many([order(i) for i in range(64)])
        assert {run.status for run in runs} == {COMPLETED}
        # Three generations (charge; courier and stock side by side; confirm): three rounds.
        assert store.calls == {"start_many": 1, "write_many": 3}
        # With failures and undos: as many commits for eight runs as for one.
        store.calls.clear()
        flow.run_many([order(10, quantity=9)])
        one = dict(store.calls)
        store.calls.clear()
        runs = flow.run_many([order(i, quantity=9) for i in range(20, 28)])
        assert {run.status for run in runs} == {COMPENSATED}
        assert store.calls == one
        assert set(one) == {"start_many", "write_many"}
    finally:
        store.close()


def test_known_ids_return_their_runs_and_run_nothing_again(stores: Callable[[], Store]) -> None:
    side = services(3)
    flow = PlaceOrder(*side, store=stores())
    first = flow.run_many([order(0), order(1)], workflow_ids=["a", "b"])
    before = snapshots(side)
    again = flow.run_many([order(1), order(0), order(2)], workflow_ids=["b", "a", "c"])
    assert [run.workflow_id for run in again] == ["b", "a", "c"]
    assert again[0].journal.render() == first[1].journal.render()
    assert again[1].journal.render() == first[0].journal.render()
    assert snapshots(side)[0]["charged"] != before[0]["charged"]  # only "c" was charged
    assert again[2].status is COMPLETED


def test_an_id_used_for_another_message_is_refused_before_anything_is_written(
    stores: Callable[[], Store],
) -> None:
    side = services(3)
    flow = PlaceOrder(*side, store=stores())
    flow.run(order(0), workflow_id="a")
    before = snapshots(side)
    with pytest.raises(WorkflowConflict, match="different message"):
        flow.run_many([order(1), order(2)], workflow_ids=["new", "a"])
    assert [run.workflow_id for run in flow.runs()] == ["a"]
    assert snapshots(side) == before


@pytest.mark.parametrize(
    ("messages", "ids", "match"),
    [
        (lambda: order(0), None, "iterable of OrderPlaced"),
        (lambda: [order(0), "x"], None, "message 1 is str"),
        (lambda: [order(0), order(1)], ["a"], "2 messages and 1 workflow_ids"),
        (lambda: [order(0), order(1)], ["a", "a"], "appears twice"),
        (lambda: [order(0)], [""], "non-empty string"),
        (lambda: [order(0)], "a", "sequence of strings"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Any, messages: Callable[[], Any], ids: Any, match: str
) -> None:
    with SQLiteStore(tmp_path / "bad.db") as store:
        flow = PlaceOrder(*services(2), store=store)
        with pytest.raises(UsageError, match=match):
            flow.run_many(messages(), workflow_ids=ids)
        assert flow.runs() == []


def test_an_empty_batch_runs_nothing(tmp_path: Any) -> None:
    with SQLiteStore(tmp_path / "e.db") as store:
        assert PlaceOrder(*services(1), store=store).run_many([]) == []


class Usurper(InMemorySellers):
    """Sellers whose reservation for one order sees another owner take that order's run."""

    def __init__(self, victim: str, store: Store) -> None:
        super().__init__({f"sku{i}": 3 for i in range(4)})
        self.victim = victim
        self.store = store

    def reserve_stock(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> StockReserved:
        if ctx.correlation_id == self.victim:
            record = self.store.get_run(ctx.correlation_id)
            assert record is not None
            token = self.store.claim_run(
                ctx.correlation_id, "usurper", now=record.updated_at + 1, replacing=record.owner
            )
            assert token is not None
        return super().reserve_stock(order, payment, ctx)


def test_a_run_taken_over_mid_batch_is_fenced_out_alone(stores: Callable[[], Store]) -> None:
    store = stores()
    side = services(4)
    sellers = Usurper("wf-2", store)
    flow = PlaceOrder(side[0], sellers, side[2], side[3], store=store)
    runs = flow.run_many([order(i) for i in range(4)], workflow_ids=[f"wf-{i}" for i in range(4)])
    assert [run.status for run in runs] == [COMPLETED, COMPLETED, WorkflowStatus.RUNNING, COMPLETED]
    taken = store.get_run("wf-2")
    assert taken is not None
    assert taken.owner == "usurper"
    # Its records stop where the usurper took it: its own (new) owner goes on from there.
    assert [step.key for step in taken.steps] == ["Payments.charge"]
    with pytest.raises(LeaseLost):
        store.write(Write("wf-2", 1, 0.0, ()))


class Interrupting(InMemoryLogistics):
    """Logistics that interrupts the process (Ctrl-C) at one order's courier, once."""

    def __init__(self, victim: str) -> None:
        super().__init__([f"courier-{i}" for i in range(4)])
        self.victim = victim

    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned:
        if ctx.correlation_id == self.victim:
            self.victim = ""
            raise KeyboardInterrupt
        return super().assign_courier(order, payment, ctx)


def test_an_interrupted_batch_lets_go_of_every_run_and_resumes_run_by_run(
    stores: Callable[[], Store],
) -> None:
    side = services(4)
    logistics = Interrupting("wf-1")
    flow = PlaceOrder(side[0], side[1], logistics, side[3], store=stores())
    ids = [f"wf-{i}" for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        flow.run_many([order(i) for i in range(4)], workflow_ids=ids)
    # What the interrupted round had done before was committed; nobody owns the runs.
    interrupted = [flow.get(i) for i in ids]
    assert {run.status for run in interrupted} == {WorkflowStatus.RUNNING}
    assert all("Payments.charge" in [s.key for s in flow.store.get_run(i).steps] for i in ids)  # type: ignore[union-attr]
    runs = flow.run_many([order(i) for i in range(4)], workflow_ids=ids)
    assert {run.status for run in runs} == {COMPLETED}
    charged = side[0].snapshot()["charged"]
    assert len(charged) == 4  # each order charged once, not again on resuming


def test_run_many_async_ends_each_run_as_run_async_does(stores: Callable[[], Store]) -> None:
    orders = [order(0), order(1, quantity=9), order(2)]
    alone = PlaceOrder(*services(3), store=stores())
    expected = [asyncio.run(alone.run_async(o, workflow_id=f"w{i}")) for i, o in enumerate(orders)]
    batched = asyncio.run(
        PlaceOrder(*services(3), store=stores()).run_many_async(
            orders, workflow_ids=[f"w{i}" for i in range(3)]
        )
    )
    assert [shape(run) for run in batched] == [shape(run) for run in expected]


def test_observers_see_each_entry_once_after_its_commit(tmp_path: Any) -> None:
    seen: list[Any] = []
    with SQLiteStore(tmp_path / "o.db") as store:
        flow = PlaceOrder(*services(3), store=store, observers=[seen.append])
        runs = flow.run_many([order(0), order(1, quantity=9), order(2)])
        expected = sorted(
            str(entry)
            for run in runs
            for entry in run.journal
            if entry.kind.value != "workflow_started"  # as under run(): not an observed row
        )
        assert sorted(str(entry) for entry in seen) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@settings(max_examples=25)
@given(data=st.data())
def test_a_batch_of_one_takes_the_same_path_as_run_under_every_fault_plan(
    case: Case, data: st.DataObject
) -> None:
    plan = data.draw(fault_plans(case.flow), label="plan")
    start = data.draw(case.starts, label="start")
    then = data.draw(case.thens, label="then")
    both = run_both(
        case.flow, case.services, start, plan, correlation_id="wf", then=then,
        entry_points=("run", "run_many", "run_many_async"),
    )  # fmt: skip
    assert_equivalent(both)


def test_backend_durable_batches_survive_reopening(durable_backend: Backend) -> None:
    with durable_backend.open() as store:
        runs = PlaceOrder(*services(8), store=store).run_many([order(i) for i in range(8)])
    with durable_backend.open() as store:
        again = PlaceOrder(*services(8), store=store)
        assert [again.get(run.workflow_id).status for run in runs] == [COMPLETED] * 8
        assert again.recover() == []
