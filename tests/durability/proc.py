"""The processes of tests/durability/test_processes.py: one mode per role, results as JSON.

python -m tests.durability.proc MODE STORE EFFECTS [options]

STORE is a SQLite file or `postgres:<schema>` (tests.postgres.open_spec); `open` and
`disk-full` are about SQLite files only.

- hold: run `--ids` (one thread each) through the checkout (`--runner choreography`: publish
  them to the same participants' choreography); `--block` actions wait for
  `<folder>/<--go>`. The main thread answers `<folder>/read` by writing `reads.json` (what
  `get()` and `runs()` say), then prints each run's outcome once all threads ended.
- recover: `recover()` the checkout (`--after` actions wait for `<folder>/<--go>` once
  applied); print what it returned and this process's host name.
- race: wait for `<folder>/go` (it holds a start time), then start run `race-<k>` at the same
  instant as the other racer, `--trials` times; print each outcome.
- open: open new store files at the same instants as other openers; print each outcome.
- compensation-failed: run `cf-1` to COMPENSATION_FAILED, keep the returned run, write
  `ready`, answer `read` as `hold` does.
- retry: `retry()` a run as an operator would; print its status.
- disk-full: the checkout on a store in `--folder` (a tiny tmpfs), filling that disk inside
  a step; print what the caller saw at each point.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from coordination import Context
from coordination.choreography import Choreography, EventBus
from coordination.stores import SQLiteStore
from tests.crash.shop import Effects
from tests.durability.shop import Checkout, Gate, Ordered, Shop
from tests.postgres import open_spec


def order(workflow_id: str) -> Ordered:
    return Ordered(order_id=workflow_id)


def outcome(error: BaseException | None, status: str | None = None) -> dict[str, Any]:
    if error is None:
        return {"status": status, "error": None, "message": None}
    cause = getattr(error.__cause__, "sqlite_errorname", None)  # SQLite's own error name
    message = f"{error} [{cause}]" if cause else str(error)
    return {"status": status, "error": type(error).__name__, "message": message}


def reads(orders: Checkout, ids: list[str]) -> dict[str, Any]:
    """What this process's operator API says about `ids` now (with how many takeovers each
    run's journal shows)."""
    got = {workflow_id: orders.get(workflow_id) for workflow_id in ids}
    return {
        "get": {workflow_id: run.status.name for workflow_id, run in got.items()},
        "takeovers": {
            workflow_id: sum(1 for entry in run.journal if entry.kind.value == "recovered")
            for workflow_id, run in got.items()
        },
        "runs": {run.workflow_id: run.status.name for run in orders.runs()},
    }


def serve_reads(orders: Checkout, ids: list[str], folder: Path, done: threading.Event) -> None:
    """Answer `<folder>/read` once (by writing `reads.json`) until `done`."""
    answered = False
    while not done.wait(0.005):
        if not answered and (folder / "read").exists():
            answer = reads(orders, ids)
            (folder / "reads.tmp").write_text(json.dumps(answer))
            (folder / "reads.tmp").rename(folder / "reads.json")
            answered = True


def hold(args: argparse.Namespace) -> dict[str, Any]:
    folder: Path = args.folder
    gate = Gate(folder, block=frozenset(args.block), go=args.go, refuse_seen=args.refuse_seen)
    store = open_spec(args.store, lease=args.lease)
    shop = Shop(Effects(args.effects), gate)
    orders = Checkout(*shop.participants(), store=store)
    results: dict[str, Any] = {}
    flow = None
    if args.runner == "choreography":
        flow = Choreography(EventBus(), *shop.participants(), store=store)

    def drive(workflow_id: str) -> None:
        try:
            if flow is not None:
                flow.publish(order(workflow_id), correlation_id=workflow_id)
                status = flow.result(workflow_id, timeout=60).status.name
            else:
                status = orders.run(order(workflow_id), workflow_id=workflow_id).status.name
            results[workflow_id] = outcome(None, status)
        except BaseException as error:
            results[workflow_id] = outcome(error)

    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in args.ids]
    for thread in threads:
        thread.start()
    done = threading.Event()
    server = threading.Thread(target=serve_reads, args=(orders, args.ids, folder, done))
    server.start()
    for thread in threads:
        thread.join()
    done.set()
    server.join()
    store.close()
    return results


def recover(args: argparse.Namespace) -> dict[str, Any]:
    """`recover()`; what it returned, and the host this process runs as."""
    gate = Gate(args.folder, after=frozenset(args.after), go=args.go)
    with open_spec(args.store, lease=args.lease) as store:
        orders = Checkout(*Shop(Effects(args.effects), gate).participants(), store=store)
        recovered = {run.workflow_id: run.status.name for run in orders.recover()}
    return {"host": socket.gethostname(), "recovered": recovered}


def race(args: argparse.Namespace) -> dict[str, Any]:
    """Start the same ids at the same instants as the other racer (a shared start time)."""
    folder: Path = args.folder
    shop = Shop(Effects(args.effects), Gate(pause=args.pause))
    store = open_spec(args.store)
    if args.runner == "choreography":
        flow = Choreography(EventBus(), *shop.participants(), store=store)

        def start(workflow_id: str) -> str:
            flow.publish(order(workflow_id), correlation_id=workflow_id)
            return "published"
    else:
        orders = Checkout(*shop.participants(), store=store)

        def start(workflow_id: str) -> str:
            return orders.run(order(workflow_id), workflow_id=workflow_id).status.name

    (folder / f"ready-{args.name}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)
    begin = float((folder / "go").read_text())
    results: dict[str, Any] = {}
    for trial in range(args.trials):
        workflow_id = f"race-{trial}"
        delay = begin + trial * args.gap - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            results[workflow_id] = outcome(None, start(workflow_id))
        except Exception as error:
            results[workflow_id] = outcome(error)
    store.close()
    return results


def open_fresh(args: argparse.Namespace) -> dict[str, Any]:
    """Open new store files `open-<k>.db` at the same instants as the other openers."""
    folder: Path = args.folder
    (folder / f"ready-{args.name}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)
    begin = float((folder / "go").read_text())
    results: dict[str, Any] = {}
    for trial in range(args.trials):
        delay = begin + trial * args.gap - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            SQLiteStore(folder / f"open-{trial}.db").close()
            results[str(trial)] = outcome(None, "opened")
        except Exception as error:
            results[str(trial)] = outcome(error)
    return results


def compensation_failed(args: argparse.Namespace) -> dict[str, Any]:
    """Run `cf-1` to COMPENSATION_FAILED and keep it, as a dashboard process would."""
    folder: Path = args.folder
    gate = Gate(refuse=frozenset({"pack"}), fail=frozenset({"refund"}))
    store = open_spec(args.store, lease=args.lease)
    orders = Checkout(*Shop(Effects(args.effects), gate).participants(), store=store)
    kept = orders.run(order("cf-1"), workflow_id="cf-1")
    (folder / "ready").touch()
    done = threading.Event()
    server = threading.Thread(target=serve_reads, args=(orders, ["cf-1"], folder, done))
    server.start()
    deadline = time.monotonic() + 60
    while not (folder / "reads.json").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    done.set()
    server.join()
    store.close()
    return {"kept": kept.status.name}


def retry(args: argparse.Namespace) -> dict[str, Any]:
    with open_spec(args.store, lease=args.lease) as store:
        orders = Checkout(*Shop(Effects(args.effects)).participants(), store=store)
        return {workflow_id: orders.retry(workflow_id).status.name for workflow_id in args.ids}


def fill(path: Path) -> None:
    """Fill the file system `path` is on, to its last byte."""
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(descriptor, chunk)
            except OSError:
                continue
    finally:
        os.close(descriptor)


def stored(path: Path, workflow_id: str) -> dict[str, Any]:
    """The run's row as stored (read on a connection of its own)."""
    connection = sqlite3.connect(path)
    try:
        row = connection.execute(
            "SELECT status, owner, lease_expires FROM runs WHERE workflow_id = ?", (workflow_id,)
        ).fetchone()
    finally:
        connection.close()
    return {"status": row[0], "owner": row[1], "lease_expires": row[2]}


def disk_full(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the disk inside `pack` of d-1 (then of d-2); free it; go on with both."""
    folder: Path = args.folder
    path, filler = folder / "s.db", folder / "filler"
    to_fill = {"d-1", "d-2"}

    def fill_once(name: str, ctx: Context) -> None:
        if name == "pack" and ctx.correlation_id in to_fill:
            to_fill.discard(ctx.correlation_id)
            fill(filler)

    store = SQLiteStore(path, lease=args.lease)
    orders = Checkout(*Shop(Effects(args.effects), hook=fill_once).participants(), store=store)
    seen: dict[str, Any] = {}
    for workflow_id in ("d-1", "d-2"):
        try:
            orders.run(order(workflow_id), workflow_id=workflow_id)
            seen[f"{workflow_id}: first run"] = outcome(None, "returned")
        except Exception as error:
            seen[f"{workflow_id}: first run"] = outcome(error)
        seen[f"{workflow_id}: stored when full"] = stored(path, workflow_id)
        filler.unlink()  # space returns
        time.sleep(args.lease * 1.5)  # several heartbeats
        seen[f"{workflow_id}: stored after space returned"] = stored(path, workflow_id)
    try:
        seen["d-1: run again"] = outcome(
            None, orders.run(order("d-1"), workflow_id="d-1").status.name
        )
    except Exception as error:
        seen["d-1: run again"] = outcome(error)
    seen["recover"] = {run.workflow_id: run.status.name for run in orders.recover()}
    store.close()
    return seen


MODES = {
    "hold": hold,
    "recover": recover,
    "race": race,
    "open": open_fresh,
    "compensation-failed": compensation_failed,
    "retry": retry,
    "disk-full": disk_full,
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("store")
    parser.add_argument("effects", type=Path)
    parser.add_argument("--folder", type=Path, default=Path("."))
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--ids", nargs="*", default=[])
    parser.add_argument("--block", nargs="*", default=[])
    parser.add_argument("--after", nargs="*", default=[])
    parser.add_argument("--go", default="go")
    parser.add_argument("--refuse-seen", action="store_true")
    parser.add_argument("--runner", choices=("orchestration", "choreography"))
    parser.add_argument("--name", default="racer")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    print(json.dumps(MODES[args.mode](args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
