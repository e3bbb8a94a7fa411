"""After a plain install of the wheel, `coordination demo` works: the wheel carries the example.

Slow (a wheel build and a fresh virtual environment, ~40 s): part of `make test-long`.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.long


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_demo_runs_from_a_fresh_environment_with_the_wheel_alone(tmp_path: Path) -> None:
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ROOT, cwd=ROOT
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("coordination-*.whl")
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-q", f"{wheel}[cli]", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = _run(
        python, "-c", "import importlib.util as u; print(u.find_spec('examples'))", cwd=outside
    )
    assert probe.stdout == "None\n"  # no top-level examples package in the wheel
    demo = _run(
        tmp_path / "env" / "bin" / "coordination", "demo", "--fail", "sellers.reserve_stock",
        cwd=outside,
    )  # fmt: skip
    assert (demo.returncode, demo.stderr) == (0, "")
    assert demo.stdout.count("COMPENSATED") >= 2
    assert "undo Payments.refund" in demo.stdout
