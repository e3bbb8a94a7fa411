"""Kill -9 a worker whose subscriptions sleep on durable timers and wait for outside messages.

Each round starts a real process (tests.crash.timed_worker) that recovers what its killed
predecessor left, then fires due timers and sends the outside messages; the parent
SIGKILLs it after a seeded random delay. At the end every subscription completed, every
effect was applied once (a timer fired once, a message was taken once), and re-executed
attempts are bounded by the kills.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coordination import WorkflowStatus
from coordination.stores import SQLiteStore
from tests.crash.harness import ROOT, worker_env
from tests.crash.shop import Effects
from tests.crash.timed_worker import Subscription

COUNT = 12


def run_with_kills(tmp_path: Path, kills: int, seed: int, mode: str) -> int:
    chance = random.Random(seed)
    made = 0
    for round_number in range(kills + 20):
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.timed_worker", str(tmp_path / "subs.db"),
             str(tmp_path / "effects.db"), str(COUNT), "--pause", "0.03",
             "--seed", str(round_number), "--mode", mode],
            cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        if made < kills:
            try:
                worker.wait(timeout=chance.uniform(0.3, 0.8))
            except subprocess.TimeoutExpired:
                worker.send_signal(signal.SIGKILL)
                worker.communicate()
                made += 1
                continue
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
        assert b"done" in out
        return made
    raise AssertionError("the worker never finished")


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_timers_and_waits_survive_repeated_kill_9(tmp_path: Path, mode: str) -> None:
    kills = run_with_kills(tmp_path, kills=4, seed=11, mode=mode)
    # A worker was killed mid-way: a full run takes over a second, most of it the effects'
    # pauses (0.03 s at most each), so a faster engine cannot finish it before the kill.
    assert kills >= 1

    with SQLiteStore(tmp_path / "subs.db") as store:
        name = Subscription.plan.name + (":choreography" if mode == "choreography" else "")
        records = {r.workflow_id: r for r in store.list_runs(flow=name)}
    assert sorted(records) == sorted(f"sub-{n}" for n in range(COUNT))
    for workflow_id, record in records.items():
        assert record.status is WorkflowStatus.COMPLETED, workflow_id
        keys = [step.key for step in record.steps]
        assert keys.count("sleep.1") == 1, keys  # the timer fired once
        assert keys.count("wait.Paid") == 1, keys  # the message was taken once

    effects = Effects(tmp_path / "effects.db")
    done = effects.connection.execute(
        "SELECT workflow, action FROM effects WHERE undone = 0"
    ).fetchall()
    assert sorted(done) == sorted(
        (f"sub-{n}", action) for n in range(COUNT) for action in ("open", "renew", "welcome")
    )
    (executions,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = effects.connection.execute(
        "SELECT COUNT(DISTINCT key) FROM executions"
    ).fetchone()
    effects.connection.close()
    assert executions - distinct <= kills, (executions, distinct, kills)
