"""Kill -9 a worker whose chains run on scheduled messages, scheduled starts and timeout
outcomes (tests.crash.scheduled_worker).

Each round starts a real process that recovers what its killed predecessor left, then
fires what is due; the parent SIGKILLs it after a seeded random delay. At the end every
period of every chain completed, each scheduled message was taken once, each timeout
outcome built once, each next period started once (and no period past the last), every
effect applied once, and re-executed attempts are bounded by the kills.
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
from tests.crash.scheduled_worker import PERIODS, Chain, chain_id
from tests.crash.shop import Effects

COUNT = 10


def run_with_kills(tmp_path: Path, kills: int, seed: int, mode: str) -> int:
    chance = random.Random(seed)
    made = 0
    for round_number in range(kills + 20):
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.scheduled_worker", str(tmp_path / "subs.db"),
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
def test_schedules_and_timeout_outcomes_survive_repeated_kill_9(tmp_path: Path, mode: str) -> None:
    kills = run_with_kills(tmp_path, kills=4, seed=23, mode=mode)
    # A worker was killed mid-way: a full run takes over a second, most of it the effects'
    # pauses (0.03 s at most each), so a faster engine cannot finish it before the kill.
    assert kills >= 1

    with SQLiteStore(tmp_path / "subs.db") as store:
        name = Chain.plan.name + (":choreography" if mode == "choreography" else "")
        records = {r.workflow_id: r for r in store.list_runs(flow=name)}
    expected = [chain_id(n, period) for n in range(COUNT) for period in range(PERIODS)]
    assert sorted(records) == sorted(expected)  # each next period started once, no more
    for workflow_id, record in records.items():
        assert record.status is WorkflowStatus.COMPLETED, workflow_id
        assert not record.owed, workflow_id  # every scheduled start was made
        keys = [step.key for step in record.steps]
        assert keys.count("wait.TrialOver") == 1, keys  # the scheduled message, taken once
        assert keys.count("wait.Paid|Lapsed") == 1, keys  # the timeout outcome, built once
        (lapsed,) = [s for s in record.steps if s.key == "wait.Paid|Lapsed"]
        assert type(lapsed.output).__name__ == "Lapsed"
        starts = [key for key in keys if key.endswith(":started")]
        assert len(starts) == (1 if workflow_id.endswith(":0") else 0), keys

    effects = Effects(tmp_path / "effects.db")
    done = effects.connection.execute(
        "SELECT workflow, action FROM effects WHERE undone = 0"
    ).fetchall()
    assert sorted(done) == sorted(
        (workflow_id, action) for workflow_id in expected for action in ("open", "renew", "lapse")
    )
    (executions,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
    (distinct,) = effects.connection.execute(
        "SELECT COUNT(DISTINCT key) FROM executions"
    ).fetchone()
    effects.connection.close()
    assert executions - distinct <= kills, (executions, distinct, kills)
