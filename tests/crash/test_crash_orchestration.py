"""Kill -9 a worker running orders against a durable store, again and again; lose nothing.

Each round starts a real process that first recovers what its killed predecessor left,
then runs the remaining orders; the parent SIGKILLs it after a seeded random delay. At the
end every order must have ended as it should (completed, or compensated for the ones
ordering too much), no effect may have been applied twice, and re-executed attempts are
bounded by the number of kills. Each test runs on a SQLite file and on a PostgreSQL schema.
"""

from __future__ import annotations

import signal
import subprocess
import sys
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


def run_with_kills(
    tmp_path: Path, backend: Backend, count: int, kills: int, seed: int, mode: str = "orchestration"
) -> int:
    return harness.run_with_kills(tmp_path, count, kills, seed, mode, backend.spec)


def check(
    tmp_path: Path, backend: Backend, count: int, kills: int, reruns_per_kill: int = 1
) -> None:
    effects = Effects(tmp_path / "effects.db")
    with backend.open() as store:
        orders = PlaceOrder(
            DurablePayments(effects),
            DurableSellers(effects),
            DurableLogistics(effects),
            DurableNotifications(effects),
            store=store,
        )
        runs = {run.workflow_id: run for run in orders.runs()}
    effects.connection.close()
    assert len(runs) == count, "a workflow was lost"
    harness.check_outcome(
        tmp_path,
        {workflow_id: run.status for workflow_id, run in runs.items()},
        count,
        kills,
        {workflow_id: run.journal.render() for workflow_id, run in runs.items()},
        reruns_per_kill=reruns_per_kill,
    )


def test_orders_survive_repeated_kill_9(tmp_path: Path, durable_backend: Backend) -> None:
    kills = run_with_kills(tmp_path, durable_backend, count=100, kills=3, seed=7)
    assert kills >= 3, "the test barely managed to kill the worker"
    check(tmp_path, durable_backend, count=100, kills=kills)


def test_orders_run_in_batches_survive_repeated_kill_9(
    tmp_path: Path, durable_backend: Backend
) -> None:
    # run_many(): eight orders in lockstep, one commit per round; killed mid-batch, each
    # order is recovered from its own records, and no effect is applied twice.
    # A kill may make the round it interrupts run again: one attempt per action of every
    # order of the batch, and the widest round (the courier and the stock, in parallel)
    # runs two per order: 8 x 2 (8 let a kill after that round fail the check).
    kills = run_with_kills(tmp_path, durable_backend, count=96, kills=3, seed=5, mode="batched")
    assert kills >= 3, "the test barely managed to kill the worker"
    check(tmp_path, durable_backend, count=96, kills=kills, reruns_per_kill=8 * 2)


@pytest.mark.long
def test_a_thousand_orders_survive_many_kill_9(tmp_path: Path, durable_backend: Backend) -> None:
    kills = run_with_kills(tmp_path, durable_backend, count=1000, kills=25, seed=11)
    check(tmp_path, durable_backend, count=1000, kills=kills)


def test_two_processes_recovering_one_store_never_double_a_step(
    tmp_path: Path, durable_backend: Backend
) -> None:
    """Leave runs unfinished, then let two real processes recover them at once."""
    effects_path = tmp_path / "effects.db"
    with durable_backend.open() as store:
        effects = Effects(effects_path)
        orders = PlaceOrder(
            DurablePayments(effects),
            DurableSellers(effects),
            DurableLogistics(effects),
            DurableNotifications(effects),
            store=store,
        )
        for index in range(30):  # started by a "dead" owner: claimable at once
            store.start_run(
                f"order-{index}", orders.name, order_for(index), owner="gone:1:k1", now=0.0
            )
        effects.connection.close()
    env = harness.worker_env()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash.worker",
                durable_backend.spec,
                str(effects_path),
                "0",
                "--pause",
                "0.001",
                "--seed",
                str(seed),
            ],
            cwd=harness.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    check_partial = Effects(effects_path)
    (duplicates,) = check_partial.connection.execute(
        "SELECT COUNT(*) FROM (SELECT key FROM executions GROUP BY key HAVING COUNT(*) > 1)"
    ).fetchone()
    assert duplicates == 0, "two processes ran the same step"
    check_partial.connection.close()
    check(tmp_path, durable_backend, count=30, kills=0)


def test_a_step_that_kills_its_process_is_parked_after_five_recoveries(
    tmp_path: Path, durable_backend: Backend
) -> None:
    effects_path = tmp_path / "effects.db"
    env = harness.worker_env()
    command = [
        sys.executable, "-m", "tests.crash.worker", durable_backend.spec, str(effects_path), "1",
        "--die-in", "send_confirmation",
    ]  # fmt: skip
    codes = []
    for _ in range(8):
        worker = subprocess.run(command, cwd=harness.ROOT, env=env, capture_output=True, timeout=60)
        codes.append(worker.returncode)
        if worker.returncode == 0:
            break
    # The first run and five recoveries die; the sixth recovery parks the run.
    assert codes == [-signal.SIGKILL] * 6 + [0], codes
    effects = Effects(effects_path)
    with durable_backend.open() as store:
        orders = PlaceOrder(
            DurablePayments(effects),
            DurableSellers(effects),
            DurableLogistics(effects),
            DurableNotifications(effects),
            store=store,
        )
        run = orders.get("order-0")
        assert run.status is WorkflowStatus.PARKED
        assert "parked" in str(run.error)
        assert orders.recover() == []  # parked runs wait for a human
    # The charge, stock and courier ran once each, never again across the six deaths.
    rows = effects.connection.execute(
        "SELECT action, COUNT(*) FROM executions GROUP BY action ORDER BY action"
    ).fetchall()
    assert dict(rows) == {"assign_courier": 1, "charge": 1, "reserve_stock": 1}
    effects.connection.close()
