"""Recovery proportional to unfinished work: recover() among many finished runs.

A SQLite file holds `--runs` finished runs (default one million: one real run of the
e-commerce flow, copied row for row with new ids) and `--unfinished` runs (default ten) cut
short by a real SIGKILL of the process running them, in the middle of their second
generation. Then, timed, a new process's `recover()` claims and finishes the unfinished
runs. Also timed in the same run, as the physical limit: the owed-work index query alone
(what recovery must read at the least), and, as the naive baseline, reading the status of
every stored run (what a recovery that scans would pay at the least).

    PYTHONPATH=. .venv/bin/python bench/recovery.py [--runs 1000000] [--unfinished 10]

Target: recover() under one second with one million stored runs and ten unfinished.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import orders
from bench.choreography import UntimedOrder, parts
from coordination import Context, WorkflowStatus
from coordination.stores import SQLiteStore
from examples.ecommerce import CourierAssigned, InMemoryLogistics, OrderPlaced, PaymentCaptured

TARGET_SECONDS = 1.0


class StuckLogistics(InMemoryLogistics):
    """Logistics whose couriers never come: the run waits in its second generation."""

    def assign_courier(
        self, order: OrderPlaced, payment: PaymentCaptured, ctx: Context
    ) -> CourierAssigned:
        threading.Event().wait()
        raise AssertionError("unreachable")


def child(path: Path, unfinished: int) -> None:
    """Start `unfinished` runs that hang in their second generation; say so; wait to die."""
    payments, sellers, _, notifications = parts(unfinished)
    stuck = StuckLogistics(f"courier-{i}" for i in range(unfinished))
    store = SQLiteStore(path)
    orchestrator = UntimedOrder(payments, sellers, stuck, notifications, store=store)
    for index, message in enumerate(orders(unfinished)):
        workflow_id = f"unfinished-{index}"
        threading.Thread(
            target=orchestrator.run, args=(message,), kwargs={"workflow_id": workflow_id},
            daemon=True,
        ).start()  # fmt: skip
    while True:
        with sqlite3.connect(path) as connection:
            (charged,) = connection.execute(
                "SELECT COUNT(*) FROM steps WHERE key = 'UntimedPayments.charge' "
                "AND workflow_id LIKE 'unfinished-%'"
            ).fetchone()
        if charged == unfinished:
            break
        time.sleep(0.01)
    print("ready", flush=True)
    threading.Event().wait()


def fill(path: Path, runs: int) -> float:
    """One real finished run, copied `runs - 1` times with new ids; seconds it took."""
    started = time.perf_counter()
    store = SQLiteStore(path)
    try:
        template = UntimedOrder(*parts(1), store=store).run(orders(1)[0], workflow_id="run-0")
        assert template.status is WorkflowStatus.COMPLETED
    finally:
        store.close()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        columns = [row[1] for row in connection.execute("PRAGMA table_info(runs)")]
        others = ", ".join(c for c in columns if c != "workflow_id")
        connection.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"INSERT INTO runs (workflow_id, {others}) "
            f"SELECT 'run-' || i, {others} FROM runs, n WHERE workflow_id = 'run-0'",
            (runs - 1,),
        )
        step_columns = [row[1] for row in connection.execute("PRAGMA table_info(steps)")]
        step_others = ", ".join(c for c in step_columns if c != "workflow_id")
        connection.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"INSERT INTO steps (workflow_id, {step_others}) "
            f"SELECT 'run-' || i, {step_others} FROM steps, n WHERE workflow_id = 'run-0'",
            (runs - 1,),
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return time.perf_counter() - started


def cut_short(path: Path, unfinished: int) -> None:
    """Runs killed mid-flow by a real SIGKILL of the process running them."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(path), str(unfinished)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    if line.strip() != "ready":
        raise AssertionError(f"the child stopped before its runs started: {line!r}")


def time_index(path: Path, flow: str) -> tuple[float, int]:
    connection = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        owed = connection.execute(
            "SELECT workflow_id FROM runs INDEXED BY runs_owed WHERE flow = ? AND owed = 1",
            (flow,),
        ).fetchall()
        return time.perf_counter() - started, len(owed)
    finally:
        connection.close()


def time_scan(path: Path) -> float:
    connection = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        connection.execute("SELECT workflow_id, status FROM runs").fetchall()
        return time.perf_counter() - started
    finally:
        connection.close()


def time_recover(path: Path, unfinished: int) -> float:
    store = SQLiteStore(path)
    try:
        orchestrator = UntimedOrder(*parts(unfinished), store=store)
        started = time.perf_counter()
        resumed = orchestrator.recover()
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    done = [run for run in resumed if run.status is WorkflowStatus.COMPLETED]
    if len(done) != unfinished:
        raise AssertionError(f"recover() finished {len(done)} of {unfinished} runs cut short")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="finished runs stored")
    parser.add_argument("--unfinished", type=int, default=10, help="runs cut short")
    parser.add_argument("--dir", type=Path, default=None, help="where the file goes")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="coordination-recovery-") as where:
        path = Path(where) / "runs.sqlite"
        filled = fill(path, args.runs)
        cut_short(path, args.unfinished)
        size = sum(p.stat().st_size for p in Path(where).iterdir()) / 1e6
        print(
            f"{args.runs:,} finished runs stored ({size:,.0f} MB, filled in {filled:.1f} s), "
            f"{args.unfinished} cut short by SIGKILL"
        )
        index, owed = time_index(path, UntimedOrder.plan.name)
        scan = time_scan(path)
        recovered = time_recover(path, args.unfinished)
        print(f"  owed-work index query alone:      {index * 1e3:9.2f} ms ({owed} runs owe work)")
        print(f"  reading every run's status:       {scan * 1e3:9.2f} ms (what a scan would pay)")
        print(f"  recover(), {args.unfinished} runs resumed to the end: {recovered * 1e3:9.2f} ms")
    met = recovered < TARGET_SECONDS
    print(f"target: recover() < {TARGET_SECONDS:.0f} s: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
