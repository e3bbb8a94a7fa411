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
    # Kills landed mid-run: some runs were taken over from a killed worker.
    assert any("recovered" in kinds for kinds in journals)
    assert set(statuses.values()) <= {WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED}
    harness.check_outcome(tmp_path, statuses, count, kills)
