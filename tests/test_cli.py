"""The `coordination` command: demo, graph, lint and runs, with one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordination import NonRetryable, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.cli import app
from coordination.engine._ownership import _kernel_start
from coordination.stores import SQLiteStore
from coordination.testing import VirtualClock
from examples.ecommerce import (
    InMemoryLogistics,
    InMemoryNotifications,
    InMemoryPayments,
    InMemorySellers,
    PlaceOrder,
)
from examples.ecommerce.app import place_order
from examples.ecommerce.demo import GOOD_ORDER
from tests.observe.golden import GOLDEN

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "coordination"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_the_demo_shows_both_runners_undoing_a_failed_reservation() -> None:
    code, out, err = invoke("demo", "--mode", "both", "--fail", "sellers.reserve_stock")
    assert (code, err) == (0, "")
    orchestrated, _, choreographed = out.partition("choreography: order-1-choreography")
    assert "orchestration: order-1" in orchestrated
    for part in (orchestrated, choreographed):
        assert "COMPENSATED" in part
        for shown in (
            "Payments.charge",
            "Sellers.reserve_stock",
            "failed NonRetryable",
            "undo Logistics.release_courier",
            "undo Payments.refund",
        ):
            assert shown in part, (shown, part)


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_the_demo_runs_one_runner_when_asked(mode: str) -> None:
    code, out, _ = invoke("demo", "--mode", mode)
    assert code == 0
    assert out.count("COMPLETED") == 1
    assert "Notifications.send_confirmation" in out


def test_the_demos_runs_are_kept_listed_and_shown(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    assert invoke("demo", "--db", str(db), "--fail", "sellers.reserve_stock")[0] == 0
    assert invoke("demo", "--db", str(db), "--mode", "orchestration")[0] == 0
    code, out, _ = invoke("runs", "list", "--db", str(db), "--json")
    assert code == 0
    listed = [(r["workflow_id"], r["flow"], r["status"]) for r in json.loads(out)]
    assert listed == [
        ("order-1", "place-order", "compensated"),
        ("order-1-choreography", "place-order:choreography", "compensated"),
        ("order-3", "place-order", "completed"),
    ]
    code, out, _ = invoke("runs", "list", "--db", str(db))
    assert code == 0
    assert "3 runs in" in out
    assert "order-1-choreography" in out
    for filters, expected in [
        (["--status", "completed"], ["order-3"]),
        (["--status", "COMPENSATED", "--flow", "place-order"], ["order-1"]),
        (["--since", "1h"], ["order-1", "order-1-choreography", "order-3"]),
        (["--since", "2999-01-01"], []),
    ]:
        out = invoke("runs", "list", "--db", str(db), "--json", *filters)[1]
        assert [r["workflow_id"] for r in json.loads(out)] == expected, filters
    code, out, _ = invoke("runs", "show", "order-1", "--db", str(db))
    assert code == 0
    assert "order-1 (place-order): COMPENSATED" in out
    assert "started by ecommerce.OrderPlaced" in out
    assert "undo Payments.refund" in out
    shown = json.loads(invoke("runs", "show", "order-1", "--db", str(db), "--json")[1])
    assert shown["status"] == "compensated"
    assert shown["start"]["data"]["order_id"] == "o-1"
    assert shown["journal"][-1]["kind"] == "workflow_finished"


def test_runs_are_read_without_importing_their_messages(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    invoke("demo", "--db", str(db), "--mode", "orchestration")
    script = (
        "import sys\n"
        "from coordination.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"result = CliRunner().invoke(app, ['runs', 'show', 'order-1', '--db', {str(db)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'examples' not in sys.modules and 'coordination._examples' not in sys.modules\n"
        "print(result.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "started by ecommerce.OrderPlaced" in done.stdout


def test_graph_prints_mermaid_and_dot_of_a_flow() -> None:
    code, out, _ = invoke("graph", "examples.ecommerce:PlaceOrder")
    assert code == 0
    assert out == (GOLDEN / "graph-ecommerce-flow.mmd").read_text(encoding="utf-8")
    code, out, _ = invoke("graph", "examples.ecommerce:PlaceOrder", "--format", "dot")
    assert out == (GOLDEN / "graph-ecommerce-flow.dot").read_text(encoding="utf-8")
    out = invoke("graph", "examples.ecommerce.app:place_order_choreography")[1]
    assert out == (GOLDEN / "graph-ecommerce-adopted.mmd").read_text(encoding="utf-8")


def test_graph_draws_a_stored_run(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    invoke("demo", "--db", str(db), "--fail", "sellers.reserve_stock", "--mode", "orchestration")
    args = ("graph", "examples.ecommerce:PlaceOrder", "--run", "order-1", "--db", str(db))
    code, out, _ = invoke(*args)
    assert code == 0
    assert out == (GOLDEN / "graph-run-refused.mmd").read_text(encoding="utf-8")
    code, _, err = invoke(*args[:4])
    assert code == 2
    assert "--run needs --db" in one_line_error(err)
    code, _, err = invoke(*args[:3], "nope", "--db", str(db))
    assert code == 1
    assert "no run 'nope'" in one_line_error(err)


def test_lint_exits_1_on_findings_and_0_on_the_examples() -> None:
    code, out, _ = invoke("lint", "tests.observe.broken:CYCLE")
    assert code == 1
    assert "error: cycle: Clock.tick, Pendulum.swing consume each other's outputs" in out
    code, out, _ = invoke("lint", "examples.ecommerce:PlaceOrder")
    assert (code, out) == (0, "examples.ecommerce:PlaceOrder: no findings\n")
    assert invoke("lint", "examples.ecommerce.app:place_order_choreography")[0] == 0


def _shop() -> tuple[InMemoryPayments, InMemorySellers, InMemoryLogistics, InMemoryNotifications]:
    return (
        InMemoryPayments({"alice": 10_000}),
        InMemorySellers({"book": 3}),
        InMemoryLogistics(["courier-1"]),
        InMemoryNotifications(),
    )


def _interrupted(db: Path, workflow_id: str) -> None:
    """A run left unfinished by a process stopped half-way (it let go of the run)."""
    payments, sellers, logistics, notifications = _shop()
    sellers.fail("reserve_stock", KeyboardInterrupt())
    with SQLiteStore(db) as store:
        orders = PlaceOrder(payments, sellers, logistics, notifications, store=store)
        with pytest.raises(KeyboardInterrupt):
            orders.run(GOOD_ORDER, workflow_id=workflow_id)
        assert orders.get(workflow_id).status is WorkflowStatus.RUNNING


def _undo_failed(db: Path, workflow_id: str) -> None:
    payments, sellers, logistics, notifications = _shop()
    sellers.fail("reserve_stock", NonRetryable("out of stock"))
    payments.fail("refund", *(RuntimeError("bank offline") for _ in range(5)))
    with SQLiteStore(db) as store:
        orders = PlaceOrder(
            payments, sellers, logistics, notifications, store=store, clock=VirtualClock()
        )
        run = orders.run(GOOD_ORDER, workflow_id=workflow_id)
    assert run.status is WorkflowStatus.COMPENSATION_FAILED


FACTORY = "examples.ecommerce.app:place_order"
#: An orchestrator whose store --db cannot replace (for the error's test).
IN_MEMORY = place_order()


def test_recover_retry_and_cancel_give_the_factory_the_store(tmp_path: Path) -> None:
    db = str(tmp_path / "orders.db")
    _interrupted(Path(db), "order-9")
    _interrupted(Path(db), "order-10")
    _undo_failed(Path(db), "order-11")
    code, out, _ = invoke("runs", "cancel", FACTORY, "order-10", "--db", db, "--json")
    assert (code, json.loads(out)) == (0, [{"workflow_id": "order-10", "status": "cancelled"}])
    code, out, _ = invoke("runs", "recover", FACTORY, "--db", db)
    assert (code, out) == (0, "order-9: completed\n")
    assert invoke("runs", "recover", FACTORY, "--db", db)[1] == "nothing to do\n"
    code, out, _ = invoke("runs", "retry", FACTORY, "order-11", "--db", db)
    assert (code, out) == (0, "order-11: compensated\n")
    code, _, err = invoke("runs", "cancel", FACTORY, "order-11", "--db", db)
    assert code == 1
    assert "UsageError" in one_line_error(err)
    code, _, err = invoke("runs", "retry", f"{FACTORY}_choreography", "order-11", "--db", db)
    assert code == 1  # a run of the orchestration: not an instance of the choreography's flow
    assert "WorkflowNotFound" in one_line_error(err)
    code, _, err = invoke("runs", "recover", "tests.test_cli:IN_MEMORY", "--db", db)
    assert code == 2
    assert "name a factory taking store=" in one_line_error(err)


def test_cancel_of_a_run_another_live_process_drives_says_it_left_a_request(
    tmp_path: Path,
) -> None:
    db = tmp_path / "orders.db"
    _interrupted(db, "order-13")
    parent = os.getppid()  # a live process on this host that is not this one
    live = f"{socket.gethostname()}:{parent}:{_kernel_start(parent)}"
    with SQLiteStore(db) as store:
        assert store.claim_run("order-13", live, now=time.time()) is not None
    code, out, _ = invoke("runs", "cancel", FACTORY, "order-13", "--db", str(db))
    assert code == 0
    assert out.splitlines() == [
        "order-13: running",
        "order-13 is driven by another process: it stops at its next step boundary and is "
        "undone there",
    ]
    with SQLiteStore(db) as store:
        assert [request.cancel for request in store.requests("order-13")] == [True]


def test_retry_and_cancel_work_on_a_choreography_too(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    payments, sellers, logistics, notifications = _shop()
    sellers.fail("reserve_stock", NonRetryable("out of stock"))
    payments.fail("refund", *(RuntimeError("bank offline") for _ in range(5)))
    with SQLiteStore(db) as store:
        flow = Choreography(
            EventBus(clock=VirtualClock()), payments, sellers, logistics, notifications,
            flow=PlaceOrder, store=store, clock=VirtualClock(),
        )  # fmt: skip
        flow.publish(GOOD_ORDER, correlation_id="order-12")
        assert flow.monitor.get("order-12").status is WorkflowStatus.COMPENSATION_FAILED
    factory = f"{FACTORY}_choreography"
    code, out, _ = invoke("runs", "retry", factory, "order-12", "--db", str(db))
    assert (code, out) == (0, "order-12: compensated\n")
    code, _, err = invoke("runs", "cancel", factory, "order-12", "--db", str(db))
    assert code == 1
    assert "UsageError" in one_line_error(err)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["demo", "--fail", "sellers.teleport"], 2, "no such participant action"),
        (["demo", "--mode", "both-ways"], 2, "Invalid value for '--mode'"),
        (["demo", "--db", "README.md"], 1, "README.md is not a coordination store"),
        (["graph", "PlaceOrder"], 2, "is not MODULE:OBJECT"),
        (["graph", "examples.nowhere:Flow"], 2, "cannot import examples.nowhere"),
        (["graph", "examples.ecommerce:Nope"], 2, "has no 'Nope'"),
        (["lint", "examples.ecommerce:OrderPlaced"], 1, "UsageError: expected an Orchestrator"),
        (["runs", "list"], 2, "Missing option '--db'"),
        (["runs", "list", "--db", "missing.db"], 2, "missing.db does not exist"),
        (["runs", "list", "--db", "README.md"], 1, "README.md is not a coordination store"),
        (["runs", "list", "--db", "README.md", "--status", "lost"], 2, "--status 'lost'"),
        (["runs", "list", "--db", "README.md", "--since", "soon"], 2, "--since 'soon'"),
        (["runs", "show", "x", "--db", "missing.db"], 2, "does not exist"),
        ([], 2, "Missing command"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(args: list[str], code: int, says: str) -> None:
    result = invoke(*args)
    assert result[0] == code, result
    assert says in one_line_error(result[2])


def test_the_installed_command_runs_the_demo_as_a_real_process() -> None:
    done = subprocess.run(
        [str(SCRIPT), "demo", "--mode", "both", "--fail", "sellers.reserve_stock"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.count("COMPENSATED") >= 2
    assert "undo Payments.refund" in done.stdout
    failed = subprocess.run(
        [str(SCRIPT), "runs", "list", "--db", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert "is not a coordination store" in one_line_error(failed.stderr)
