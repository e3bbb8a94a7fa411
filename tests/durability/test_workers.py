"""Workers in real processes: runs submitted to a store, served by worker processes that
are SIGKILLed at random and replaced; nothing is lost, no effect is applied twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordination import WorkflowStatus
from examples.ecommerce import PlaceOrder
from tests.crash import harness
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)
from tests.postgres import Backend


def expected(index: int) -> WorkflowStatus:
    """How order `index` must end (tests.crash.shop.order_for: every fifth is too large)."""
    return WorkflowStatus.COMPENSATED if order_for(index).quantity > 3 else WorkflowStatus.COMPLETED


def worker(backend: Backend, tmp_path: Path, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.durability.serve_worker", backend.spec,
         str(tmp_path / "effects.db"), str(tmp_path), "--lease", "0.5", "--pause", "0.006",
         "--seed", str(seed), "--poll", "0.2"],
        cwd=harness.ROOT, env=harness.worker_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("count", [200])
def test_workers_killed_at_random_lose_nothing_and_apply_nothing_twice(
    tmp_path: Path, durable_backend: Backend, count: int
) -> None:
    chance = random.Random(5)
    effects = Effects(tmp_path / "effects.db")
    store = durable_backend.open()
    client = PlaceOrder(
        DurablePayments(effects),
        DurableSellers(effects),
        DurableLogistics(effects),
        DurableNotifications(effects),
        store=store,
    )  # submits only: this process never runs a step
    workers = [worker(durable_backend, tmp_path, seed) for seed in range(3)]
    kills = 0
    try:
        for index in range(count):
            client.submit(order_for(index), workflow_id=f"order-{index}")
        deadline = time.monotonic() + 90
        while kills < 4 and time.monotonic() < deadline:
            victim = workers.pop(chance.randrange(len(workers)))
            while not (tmp_path / f"serving-{victim.pid}").exists():
                assert victim.poll() is None, victim.communicate()[1].decode()
                time.sleep(0.01)
            time.sleep(chance.uniform(0.1, 0.3))  # serving: runs are in flight
            victim.send_signal(signal.SIGKILL)
            victim.communicate()
            kills += 1
            workers.append(worker(durable_backend, tmp_path, 10 + kills))
        statuses = {
            f"order-{i}": client.result(f"order-{i}", timeout=60).status for i in range(count)
        }
        journals = [
            [entry.kind.value for entry in client.get(f"order-{i}").journal] for i in range(count)
        ]
    finally:
        (tmp_path / "stop").touch()
        for process in workers:
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            assert process.returncode == 0, err.decode()
        store.close()
        effects.connection.close()
    assert kills == 4
    # A worker's claim of a submitted run is journaled as a takeover (from the submitter,
    # which let go): a run taken over twice was taken from a worker killed in the middle.
    assert all(kinds.count("recovered") >= 1 for kinds in journals)
    assert any(kinds.count("recovered") >= 2 for kinds in journals)
    assert set(statuses.values()) <= {WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED}
    harness.check_outcome(tmp_path, statuses, count, kills)


def test_a_worker_stopped_past_its_lease_is_fenced_out_when_it_wakes(
    tmp_path: Path, postgres_backend: Backend
) -> None:
    """Worker A is SIGSTOPped inside a run; once its lease ran out, worker B claims the run
    and finishes it. A wakes: its writes are refused (the store is as B left it), it
    applies no effect twice, and it goes on serving.

    PostgreSQL only: its workers claim by lease. Without the queue, workers take runs over
    through `recover()`, which never takes a run from a live process of its own host,
    lease or not (tests/durability/test_processes.py fences one from another host)."""
    durable_backend = postgres_backend
    from tests.durability.test_processes import column, facts, stop_outside_a_transaction

    effects = Effects(tmp_path / "effects.db")
    store = durable_backend.open()
    client = PlaceOrder(
        DurablePayments(effects),
        DurableSellers(effects),
        DurableLogistics(effects),
        DurableNotifications(effects),
        store=store,
    )
    slow = [sys.executable, "-m", "tests.durability.serve_worker", durable_backend.spec,
            str(tmp_path / "effects.db"), str(tmp_path), "--lease", "0.5", "--pause", "0.15",
            "--poll", "0.1"]  # fmt: skip
    a = subprocess.Popen(slow, cwd=harness.ROOT, env=harness.worker_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    workers = [a]
    try:
        for index in range(5):  # until A is stopped while it still owns its run
            workflow_id = f"order-{index}"
            client.submit(order_for(index), workflow_id=workflow_id)
            deadline = time.monotonic() + 30
            while f":{a.pid}:" not in (column(durable_backend, workflow_id, "owner") or ""):
                assert time.monotonic() < deadline, "A never claimed the run"
                time.sleep(0.005)
            stop_outside_a_transaction(a, durable_backend)
            if f":{a.pid}:" in (column(durable_backend, workflow_id, "owner") or ""):
                break
            a.send_signal(signal.SIGCONT)  # it finished the run meanwhile: once more
        else:
            raise AssertionError("A was never stopped inside a run")
        while (column(durable_backend, workflow_id, "lease_expires") or 0) > time.time() - 0.05:
            time.sleep(0.01)
        b = subprocess.Popen([*slow[:-4], "--pause", "0", "--poll", "0.1"], cwd=harness.ROOT,
                             env=harness.worker_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
        workers.append(b)
        assert client.result(workflow_id, timeout=30).status is expected(index)
        before = facts(durable_backend)
        a.send_signal(signal.SIGCONT)
        time.sleep(1.5)  # A finishes its naps and tries to write
        assert facts(durable_backend) == before, "the fenced-out worker wrote something"
        assert a.poll() is None, "A stopped serving"
        last = index + 1
        client.submit(order_for(last), workflow_id=f"order-{last}")  # A (or B) still serves
        assert client.result(f"order-{last}", timeout=30).status is expected(last)
    finally:
        a.send_signal(signal.SIGCONT)
        (tmp_path / "stop").touch()
        for process in workers:
            _, err = process.communicate(timeout=30)
            assert process.returncode == 0, err.decode()
        store.close()
        effects.connection.close()
    statuses = {f"order-{i}": expected(i) for i in range(last + 1)}
    harness.check_outcome(tmp_path, statuses, last + 1, kills=1)
