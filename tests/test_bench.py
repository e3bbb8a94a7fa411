"""The benchmarks still run (tiny counts; their figures mean nothing here).

`make bench` is not part of `make test`, so without this a change to the library could
break a benchmark unnoticed until the next measurement. Peers that are not installed (the
bench extra) are skipped by the scripts themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMALL = {
    "orchestration.py": ["--workflows", "200", "--rounds", "1"],
    "bus.py": ["--events", "200", "--rounds", "1", "--bubus-events", "10"],
    "choreography.py": ["--workflows", "100", "--rounds", "1"],
    "durable.py": [
        "--workflows", "40", "--full-workflows", "10", "--dbos-workflows", "5",
        "--commits", "40", "--rounds", "1", "--threads", "2", "--no-crash-check", "--batch", "8",
    ],
    "recovery.py": ["--runs", "300", "--unfinished", "3"],
    "lint.py": ["--actions", "20", "--rounds", "1"],
    "workers.py": ["--runs", "20", "--dbos-runs", "5", "--workers", "1"],
}  # fmt: skip


def test_every_benchmark_is_listed() -> None:
    scripts = {p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SMALL)


@pytest.mark.parametrize("script", sorted(SMALL))
def test_the_benchmark_runs_and_judges_its_targets(script: str, tmp_path: Path) -> None:
    arguments = list(SMALL[script])
    if script in ("durable.py", "recovery.py"):
        arguments += ["--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "target" in done.stdout.lower(), done.stdout[-3000:]
