"""What both crash test modules share: a worker killed again and again, and the final check.

`run_with_kills` starts worker processes (tests.crash.worker) that first recover what a
killed predecessor left, then go on; `check_outcome` asserts every order ended as it should,
no effect was applied twice, and re-executed work is bounded by the kills made.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from coordination import WorkflowStatus
from tests.crash.shop import Effects, order_for

ROOT = Path(__file__).resolve().parents[2]


def worker_env() -> dict[str, str]:
    """The environment of a worker: this checkout's code first (not an installed copy)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))}


def run_with_kills(
    tmp_path: Path,
    count: int,
    kills: int,
    seed: int,
    mode: str,
    store: str | None = None,
    worker_module: str = "tests.crash.worker",
) -> int:
    """Run the worker in `mode` until it finishes, killing it `kills` times; the kills made.

    `store`: what the worker opens (tests.postgres.open_spec; default a SQLite file);
    `worker_module`: the worker to run (its arguments those of tests.crash.worker)."""
    effects = tmp_path / "effects.db"
    store = store or str(tmp_path / "orders.db")
    chance = random.Random(seed)
    made = 0
    for round_number in range(kills + 20):
        worker = subprocess.Popen(
            [sys.executable, "-m", worker_module, store, str(effects), str(count),
             "--pause", "0.006", "--seed", str(round_number), "--mode", mode],
            cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        if made < kills:
            try:
                worker.wait(timeout=chance.uniform(0.5, 1.0))
            except subprocess.TimeoutExpired:
                worker.send_signal(signal.SIGKILL)
                worker.communicate()  # reap it and close its pipes
                made += 1
                continue
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
        assert b"done" in out
        return made
    raise AssertionError("the worker never finished")


def check_outcome(
    tmp_path: Path,
    statuses: Mapping[str, WorkflowStatus | None],
    count: int,
    kills: int,
    details: Mapping[str, str] | None = None,
    indexes: Iterable[int] | None = None,
    reruns_per_kill: int = 1,
) -> None:
    """Every order `order-<i>` ended as it should, effects included; none applied twice.

    `indexes`: the orders to check (default: all `count` of them). `reruns_per_kill`: how
    many attempts one kill may make run again (a batch's round: as many as its runs).
    """
    effects = Effects(tmp_path / "effects.db")
    rows = effects.connection.execute("SELECT action, workflow, undone FROM effects")
    by_workflow: dict[str, dict[str, int]] = {}
    for action, workflow, undone in rows:
        by_workflow.setdefault(workflow, {})[action] = undone
    # One effect per order and action: a step re-run under another key would apply it twice.
    doubled = effects.connection.execute(
        "SELECT workflow, action, COUNT(*) FROM effects GROUP BY workflow, action "
        "HAVING COUNT(*) > 1"
    ).fetchall()
    assert doubled == [], doubled
    # An effect applied again after its undo would stand, though the ledger says undone.
    reapplied = effects.connection.execute(
        "SELECT done.key FROM executions AS done JOIN executions AS undo "
        "ON undo.key = done.key || ':undo' WHERE done.seq > undo.seq"
    ).fetchall()
    assert reapplied == [], reapplied
    for index in range(count) if indexes is None else indexes:
        workflow_id = f"order-{index}"
        status = statuses.get(workflow_id)
        done = by_workflow.get(workflow_id, {})
        detail = (details or {}).get(workflow_id, "")
        if order_for(index).quantity > 3:
            assert status is WorkflowStatus.COMPENSATED, (workflow_id, status, done, detail)
            assert all(undone for undone in done.values()), (workflow_id, done)
            assert "send_confirmation" not in done
        else:
            assert status is WorkflowStatus.COMPLETED, (workflow_id, status, done, detail)
            assert done == {
                "charge": 0,
                "reserve_stock": 0,
                "assign_courier": 0,
                "send_confirmation": 0,
            }, workflow_id
    # Every forward effect key at most once (the table's key), and executions beyond one
    # per step happen only for attempts a kill interrupted.
    (executions,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = effects.connection.execute(
        "SELECT COUNT(DISTINCT key) FROM executions"
    ).fetchone()
    assert executions - distinct <= kills * reruns_per_kill, (executions, distinct, kills)
    effects.connection.close()
