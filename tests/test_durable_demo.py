"""`make demo DB=orders.db`: kill the demo mid-way, run it again, unfinished orders end well."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _recorded_steps(db: Path, workflow_id: str) -> int:
    try:
        connection = sqlite3.connect(db, timeout=5)
        try:
            row = connection.execute(
                "SELECT COUNT(*) FROM steps WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return 0  # the demo has not created its tables yet
    return int(row[0])


def test_a_killed_durable_demo_recovers_its_orders_when_run_again(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    command = [sys.executable, "-m", "examples.ecommerce", "--db", str(db), "--orders", "6"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [*command, "--pace", "0.05"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Kill it once order-2 has recorded a step but not its last one: mid-order.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.exists() and _recorded_steps(db, "order-2") >= 1:
            break
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run(
        [*command, "--pace", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout
    assert "Recovered from an earlier, interrupted process:" in out
    assert "(resumed)" in out
    assert out.count("(already done earlier)") >= 2  # order-0 and order-1 did not run again
    assert "order-3   COMPENSATED" in out

    third = subprocess.run(
        [*command, "--pace", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert third.returncode == 0
    assert third.stdout.count("(already done earlier)") == 6
    assert "Recovered" not in third.stdout
