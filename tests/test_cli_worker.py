"""`coordination worker`: a real process serving an orchestrator's or a choreography's
submitted work from a shared store until SIGTERM, then exiting 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coordination import WorkflowStatus
from coordination.cli import app
from examples.ecommerce.app import place_order, place_order_choreography
from examples.ecommerce.demo import GOOD_ORDER
from tests.crash import harness
from tests.postgres import URL, Backend

SCRIPT = Path(sys.executable).parent / "coordination"


def options(backend: Backend) -> list[str]:
    """What tells the command where the backend's data is."""
    if backend.kind == "sqlite":
        return ["--db", backend.spec]
    assert URL is not None
    return ["--dsn", URL, "--schema", backend.spec.removeprefix("postgres:")]


@pytest.mark.parametrize("runner", ["orchestration", "choreography"])
def test_a_worker_process_serves_submitted_work_until_sigterm(
    durable_backend: Backend, runner: str
) -> None:
    factory = "place_order" if runner == "orchestration" else "place_order_choreography"
    worker = subprocess.Popen(
        [str(SCRIPT), "worker", f"examples.ecommerce.app:{factory}", *options(durable_backend),
         "--workers", "2", "--poll", "0.1"],
        cwd=harness.ROOT, env=harness.worker_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        store = durable_backend.open()
        client: Any = (place_order if runner == "orchestration" else place_order_choreography)(
            store=store
        )
        ids = []
        for n in range(2):  # the factory's services have two couriers
            order = GOOD_ORDER.model_copy(update={"order_id": f"o{n}"})
            if runner == "orchestration":
                ids.append(client.submit(order, workflow_id=f"order-{n}"))
            else:
                ids.append(client.submit(order, correlation_id=f"order-{n}"))
        statuses = [client.result(i, timeout=60).status for i in ids]
        assert statuses == [WorkflowStatus.COMPLETED] * 2
        assert worker.poll() is None, "the worker stopped by itself"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    assert "serving" in err
    assert err.rstrip().endswith("stopped"), err
    assert "Traceback" not in err


def test_sigint_stops_an_idle_worker_at_once(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    worker = subprocess.Popen(
        [str(SCRIPT), "worker", "examples.ecommerce.app:place_order", "--db", str(db),
         "--poll", "30"],
        cwd=harness.ROOT, env=harness.worker_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # idle, waiting up to 30 s for work
        began = time.monotonic()
        worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--db", "a.db", "--dsn", "postgresql://x"], 2, "not both"),
        (["--workers", "0", "--db", "a.db"], 2, "--workers 0"),
        (["--poll", "0", "--db", "a.db"], 2, "--poll 0"),
    ],
)
def test_bad_worker_arguments_are_one_line(args: list[str], code: int, says: str) -> None:
    result = CliRunner().invoke(app, ["worker", "examples.ecommerce.app:place_order", *args])
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert says in lines[0]


def test_a_worker_of_a_flow_kept_in_memory_is_refused() -> None:
    result = CliRunner().invoke(app, ["worker", "examples.ecommerce.app:place_order"])
    assert result.exit_code == 2
    assert "keeps its runs in memory" in result.stderr
