"""`make demo DB=orders.db`: kill the demo mid-way, run it again, unfinished orders end well."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    assert first.stdout is not None
    for line in first.stdout:
        if line.strip().startswith("order-1"):
            break  # order-2 is under way now
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
