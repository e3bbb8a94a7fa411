"""Kill -9 a worker running orders as a durable choreography, again and again; lose nothing.

The same harness as the orchestration crash tests: each round recovers what the killed
predecessor left (messages it had not handled are delivered again, undos go on), then
publishes the orders not started yet. Every order must end as it should, no effect may be
applied twice, and re-executed work is bounded by the number of kills. The tests of the
worker run on a SQLite file and on a PostgreSQL schema.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coordination import WorkflowStatus
from coordination.stores import SQLiteStore
from tests.crash import harness
from tests.crash.shop import Effects, order_for
from tests.postgres import Backend


def run_with_kills(tmp_path: Path, backend: Backend, count: int, kills: int, seed: int) -> int:
    return harness.run_with_kills(tmp_path, count, kills, seed, "choreography", backend.spec)


def check(tmp_path: Path, backend: Backend, count: int, kills: int) -> None:
    with backend.open() as store:
        records = {f"order-{i}": store.get_run(f"order-{i}") for i in range(count)}
        statuses = {key: None if r is None else r.status for key, r in records.items()}
        assert store.dead_letters() == []
    harness.check_outcome(tmp_path, statuses, count, kills)


def test_a_durable_choreography_survives_repeated_kill_9(
    tmp_path: Path, durable_backend: Backend
) -> None:
    kills = run_with_kills(tmp_path, durable_backend, count=100, kills=3, seed=3)
    assert kills >= 3, "the test barely managed to kill the worker"
    check(tmp_path, durable_backend, count=100, kills=kills)


@pytest.mark.long
def test_a_thousand_choreographed_orders_survive_many_kill_9(
    tmp_path: Path, durable_backend: Backend
) -> None:
    kills = run_with_kills(tmp_path, durable_backend, count=1000, kills=25, seed=13)
    check(tmp_path, durable_backend, count=1000, kills=kills)


def test_a_message_that_kills_its_handler_becomes_a_dead_letter(
    tmp_path: Path, durable_backend: Backend
) -> None:
    effects_path = tmp_path / "effects.db"
    env = harness.worker_env()
    command = [
        sys.executable, "-m", "tests.crash.worker", durable_backend.spec, str(effects_path), "1",
        "--die-in", "send_confirmation", "--mode", "choreography",
    ]  # fmt: skip
    codes = []
    for _ in range(9):
        worker = subprocess.run(command, cwd=harness.ROOT, env=env, capture_output=True, timeout=60)
        codes.append(worker.returncode)
        if worker.returncode == 0:
            break
    # The first run and five redeliveries die; the sixth recovery sets the message aside.
    assert codes == [-signal.SIGKILL] * 6 + [0], codes
    with durable_backend.open() as store:
        record = store.get_run("order-0")
        assert record is not None
        assert record.status is WorkflowStatus.PARKED
        assert "dead letter" in (record.parked_reason or "")
        (letter,) = store.dead_letters()
        assert letter.subscriber == "Notifications.send_confirmation"
        assert letter.error is not None
        assert "without being handled" in letter.error
    effects = Effects(effects_path)
    rows = effects.connection.execute(
        "SELECT action, COUNT(*) FROM executions GROUP BY action ORDER BY action"
    ).fetchall()
    assert dict(rows) == {"assign_courier": 1, "charge": 1, "reserve_stock": 1}
    effects.connection.close()


def test_two_processes_recovering_one_choreography_never_double_a_delivery(
    tmp_path: Path, durable_backend: Backend
) -> None:
    """Leave flows unfinished under a dead owner, then let two real processes recover them."""
    from coordination import Context
    from coordination.choreography import Choreography, EventBus
    from examples.ecommerce import ConfirmationSent, CourierAssigned, OrderPlaced, StockReserved
    from tests.crash.shop import (
        DurableLogistics,
        DurableNotifications,
        DurablePayments,
        DurableSellers,
    )

    class Dying(DurableNotifications):
        def send_confirmation(
            self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
        ) -> ConfirmationSent:
            raise KeyboardInterrupt  # the process "dies" before confirming

    effects_path = tmp_path / "effects.db"
    effects = Effects(effects_path)
    with durable_backend.open() as store:
        flow = Choreography(
            EventBus(),
            DurablePayments(effects),
            DurableLogistics(effects),
            DurableSellers(effects),
            Dying(effects),
            store=store,
        )
        for index in range(30):
            try:
                flow.publish(order_for(index), correlation_id=f"order-{index}")
            except KeyboardInterrupt:
                pass
    effects.connection.close()
    # Hand the flows to an owner process on this host that is gone (no such pid).
    import socket

    dead = next(pid for pid in range(4_000_000, 4_100_000) if not Path(f"/proc/{pid}").exists())
    # A lease far ahead: only seeing the owner is dead frees them.
    durable_backend.tamper(
        "UPDATE runs SET owner = ?, lease_expires = 1e12 WHERE owed",
        (f"{socket.gethostname()}:{dead}:k1",),
    )

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
                "--mode",
                "choreography",
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
    checked = Effects(effects_path)
    (duplicates,) = checked.connection.execute(
        "SELECT COUNT(*) FROM (SELECT key FROM executions GROUP BY key HAVING COUNT(*) > 1)"
    ).fetchone()
    checked.connection.close()
    assert duplicates == 0, "two processes ran the same action"
    check(tmp_path, durable_backend, count=30, kills=0)


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_publishing_again_resumes_an_instance_killed_before_its_first_record(
    tmp_path: Path, drive: str
) -> None:
    """Killed once its start committed, before anything else: publishing the same start
    again (publish / publish_async) in a fresh process runs the flow to its end.

    The crash sweep found it: the resumed instance had no record to replay, so its start
    message counted as never delivered, and the instance stayed RUNNING, owing work.
    """
    scenario = f"choreography-{drive}-success"
    command = [sys.executable, "-m", "tests.crash.sweep_worker", "run", scenario]
    env = harness.worker_env()
    killed = subprocess.run(
        [*command, "first", str(tmp_path), "--kill", "store.start_run(order-0)#1:after"],
        cwd=harness.ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    again = subprocess.run(
        [*command, "rerun", str(tmp_path)], cwd=harness.ROOT, env=env, capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr.decode()
    with SQLiteStore(tmp_path / "orders.db") as store:
        record = store.get_run("order-0")
        assert record is not None
        assert (record.status, record.owed) == (WorkflowStatus.COMPLETED, False)
    harness.check_outcome(tmp_path, {"order-0": record.status}, 1, kills=1)
