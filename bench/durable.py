"""Durable orchestration: the e-commerce flow kept in SQLite, side by side with DBOS Transact.

The same four participant calls (charge, assign a courier, reserve stock, send the
confirmation), on the same in-memory services, run as a durable workflow by:

- coordination, `SQLiteStore(path, synchronous="NORMAL")`: one SQLite file in WAL mode; a
  commit is in the WAL (the OS's page cache) when it returns, so it survives the process
  being killed (kill -9), not a power loss;
- coordination, `SQLiteStore(path, synchronous="FULL")`: the same, with the WAL flushed to
  disk at every commit, so it also survives a power loss;
- coordination with the default `MemoryStore` (not durable, for reference);
- DBOS Transact (`dbos`), as it ships: the four calls are `@DBOS.step()`s of one
  `@DBOS.workflow()` (with the same try/except compensations as a saga), its system
  database a SQLite file. DBOS sets no journal mode on it, so SQLite's defaults apply:
  a rollback journal (journal_mode=DELETE) and synchronous=FULL (both read back from its
  own connection and printed), which survives kill -9 and power loss.

Each side runs N workflows sequentially (one thread), then N split over 8 threads (ours: an
orchestrator per thread, each with its own services, all sharing one store; DBOS: the
workflow function called from 8 threads, each with its own services). Every workflow has a
fresh id. Rounds alternate between the sides; the best round of each is compared.

Also measured in the same run: the bare cost of one commit (a loop of single-row
INSERT + COMMIT transactions on a WAL file, synchronous NORMAL and FULL), and, in untimed
passes, the commits per workflow of each side: for ours, COMMIT statements traced on the
store's connection (and the pages each workflow writes to the WAL, checkpoints off); for
DBOS, COMMIT statements traced on its pool's connections and the database file's change
counter (which a rollback-journal database bumps once per write transaction).
Before timing, a kill -9 check: a child process runs workflows and prints the id of each
one that returned; it is killed with SIGKILL, and every id it printed must be found
finished in the file (ours: and the run cut short is resumed by `recover()`).

    PYTHONPATH=. .venv/bin/python bench/durable.py [--workflows 5000] [--full-workflows 1000]
        [--dbos-workflows 200] [--commits 2000] [--rounds 3] [--threads 8] [--dir DIR]
        [--no-crash-check]

DBOS is measured twice in the same run: as it ships, and tuned to our NORMAL store's
settings (its connections switched to WAL + synchronous=NORMAL) — equal crash safety,
where the comparison is judged. DBOS is one instance per process, so the tuned side runs
in a child process, after ours and DBOS as shipped.

Targets: at equal crash safety (ours NORMAL, DBOS tuned) ours at least 25x DBOS's
throughput, sequentially; ours NORMAL within 2.5x of the physical limit (bare NORMAL commit
x commits per workflow); ours FULL at least 10x DBOS as it ships (both survive a power
loss); at most steps + 2 = 6 commits per workflow.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from bench._common import measure, orders
from bench.choreography import Parts, UntimedOrder, parts
from coordination import Context, WorkflowStatus
from coordination.stores import MemoryStore, SQLiteStore, Store
from examples.ecommerce import (
    ConfirmationSent,
    CourierAssigned,
    CourierReleased,
    OrderPlaced,
    PaymentCaptured,
    PaymentRefunded,
    StockReleased,
    StockReserved,
)

STEPS = 4
COMMITS_TARGET = STEPS + 2
#: Ours NORMAL against DBOS at equal crash safety (both WAL + NORMAL: survive kill -9).
EQUAL_TARGET = 25.0
#: Ours NORMAL at most this many times the physical limit (bare commit x commits).
LIMIT_TARGET = 2.5
#: Ours FULL against DBOS as it ships (both survive a power loss).
FULL_TARGET = 10.0
#: run_many() in batches of `--batch` (64): against DBOS at equal crash safety (NORMAL vs
#: tuned), and FULL against DBOS as it ships, both sequential.
BATCH_EQUAL_TARGET = 50.0
BATCH_FULL_TARGET = 50.0

Job = Callable[[], None]
P = ParamSpec("P")
R = TypeVar("R")


# -- helpers ------------------------------------------------------------------------------


def side(function: Callable[..., float], *arguments: Any) -> Callable[[int], float]:
    """A side for `measure`: `function(*arguments)` each round (it ignores measure's count)."""

    def run(_: int) -> float:
        return function(*arguments)

    return run


def split(count: int, threads: int) -> list[int]:
    """`count` workflows shared out over `threads` threads, as evenly as can be."""
    return [count // threads + (1 if index < count % threads else 0) for index in range(threads)]


def timed(jobs: list[Job]) -> float:
    """Seconds to run all `jobs`: on this thread if one, else one thread each, started at once."""
    if len(jobs) == 1:
        started = time.perf_counter()
        jobs[0]()
        return time.perf_counter() - started
    barrier = threading.Barrier(len(jobs) + 1)
    errors: list[BaseException] = []

    def body(job: Job) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=body, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def filesystem(path: Path) -> str:
    """The type of the file system `path` is on (tmpfs would make every flush free)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1]
                inside = str(path).startswith(point.rstrip("/") + "/") or str(path) == point
                if inside and len(point) > len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def statuses(path: Path, query: str) -> dict[str, str]:
    """(id, status) rows of `query`, read with a connection of our own."""
    connection = sqlite3.connect(path)
    try:
        return dict(connection.execute(query).fetchall())
    finally:
        connection.close()


class Files:
    """Fresh file names in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def new(self, stem: str) -> Path:
        self.count += 1
        return self.directory / f"{stem}-{self.count}.sqlite"


# -- bare commits -------------------------------------------------------------------------


def time_commits(files: Files, synchronous: str, count: int) -> float:
    """Seconds per single-row INSERT + COMMIT transaction on a new WAL file."""
    path = files.new("bare")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        value = "x" * 200
        execute = connection.execute
        started = time.perf_counter()
        for _ in range(count):
            execute("BEGIN IMMEDIATE")
            execute("INSERT INTO rows (value) VALUES (?)", (value,))
            execute("COMMIT")
        return (time.perf_counter() - started) / count
    finally:
        connection.close()
        remove(path)


# -- ours -----------------------------------------------------------------------------------


def ours_jobs(store: Store, count: int, threads: int) -> list[Job]:
    """A job per thread: its own orchestrator and services, all on `store`."""
    jobs: list[Job] = []
    for share in split(count, threads):
        run = UntimedOrder(*parts(share), store=store).run
        messages = orders(share)

        def job(run: Any = run, messages: list[OrderPlaced] = messages) -> None:
            for message in messages:
                if run(message).status is not WorkflowStatus.COMPLETED:
                    raise AssertionError("a workflow did not complete")

        jobs.append(job)
    return jobs


def time_batched(files: Files, synchronous: str, count: int, batch: int) -> float:
    """`run_many()` of `batch` orders at a time on one thread: one commit per round."""
    path = files.new(f"batched-{synchronous.lower()}")
    store = SQLiteStore(path, synchronous=synchronous)
    try:
        run_many = UntimedOrder(*parts(count), store=store).run_many
        messages = orders(count)
        started = time.perf_counter()
        for first in range(0, count, batch):
            for run in run_many(messages[first : first + batch]):
                if run.status is not WorkflowStatus.COMPLETED:
                    raise AssertionError("a batched workflow did not complete")
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    found = statuses(path, "SELECT workflow_id, status FROM runs")
    remove(path)
    done = sum(1 for status in found.values() if status == WorkflowStatus.COMPLETED.value)
    if done != count:
        raise AssertionError(f"{done} of {count} batched runs COMPLETED in {path}")
    return elapsed / count


def time_memory(count: int, threads: int) -> float:
    return timed(ours_jobs(MemoryStore(), count, threads)) / count


def time_sqlite(files: Files, synchronous: str, count: int, threads: int) -> float:
    path = files.new(synchronous.lower())
    store = SQLiteStore(path, synchronous=synchronous)
    try:
        elapsed = timed(ours_jobs(store, count, threads))
    finally:
        store.close()
    found = statuses(path, "SELECT workflow_id, status FROM runs")
    remove(path)
    done = sum(1 for status in found.values() if status == WorkflowStatus.COMPLETED.value)
    if done != count:
        raise AssertionError(f"{done} of {count} runs COMPLETED in {path}")
    return elapsed / count


@contextmanager
def traced(connection: sqlite3.Connection) -> Iterator[list[str]]:
    """Every statement SQLite runs on `connection` meanwhile, BEGIN and COMMIT included."""
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        connection.set_trace_callback(None)


def commits(statements: list[str]) -> int:
    return sum(1 for statement in statements if statement.strip().upper() == "COMMIT")


class Counted:
    """What a side's connection reports: its settings, commits and WAL pages per workflow."""

    def __init__(self, settings: str, commits: float, pages: float = 0.0) -> None:
        self.settings, self.commits, self.pages = settings, commits, pages


def wal_pages(path: Path, connection: sqlite3.Connection) -> int:
    """Frames in the WAL file next to `path`: a 32-byte header, then per page 24 + page size."""
    wal = Path(f"{path}-wal")
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    return (wal.stat().st_size - 32) // (24 + page_size) if wal.exists() else 0


def wal_commits(path: Path, connection: sqlite3.Connection, first_frame: int) -> int:
    """Commit frames in the WAL next to `path` from frame `first_frame` on.

    A frame's header holds, at bytes 4-8, the database size after the commit it ends, and
    0 for the other frames of a transaction: counting nonzero ones counts transactions
    that committed, whether an explicit COMMIT or a single statement's autocommit.
    """
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    frame = 24 + page_size
    data = Path(f"{path}-wal").read_bytes()
    found = 0
    for offset in range(32 + first_frame * frame, len(data) - frame + 1, frame):
        if int.from_bytes(data[offset + 4 : offset + 8], "big"):
            found += 1
    return found


def count_ours(path: Path, synchronous: str, count: int) -> Counted:
    """The store's settings, commits and pages written to the WAL per workflow (untimed).

    Checkpoints are off meanwhile, so the WAL keeps every page each commit wrote; commits
    are counted from the WAL's commit frames (a single-statement write commits without a
    COMMIT statement).
    """
    from coordination.stores import _sqlite_database

    _sqlite_database.CHECKPOINT_BYTES = 1 << 40  # the background checkpointer waits too
    store = SQLiteStore(path, synchronous=synchronous)
    try:
        connection = store._db._connection  # the store's one connection
        settings = pragmas(connection)
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        jobs = ours_jobs(store, count, 1)
        before = wal_pages(path, connection)
        jobs[0]()
        pages = wal_pages(path, connection) - before
        committed = wal_commits(path, connection, before)
    finally:
        store.close()
        remove(path)
    return Counted(settings, committed / count, pages / count)


def count_bare(path: Path, count: int) -> float:
    """Pages written to the WAL per bare commit (as `time_commits` does them)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        before = wal_pages(path, connection)
        for _ in range(count):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO rows (value) VALUES (?)", ("x" * 200,))
            connection.execute("COMMIT")
        return (wal_pages(path, connection) - before) / count
    finally:
        connection.close()
        remove(path)


def pragmas(connection: Any) -> str:
    names = ("journal_mode", "synchronous")
    values = {name: connection.execute(f"PRAGMA {name}").fetchone()[0] for name in names}
    level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(values["synchronous"], "?")
    return f"journal_mode={values['journal_mode']}, synchronous={level}"


# -- DBOS -----------------------------------------------------------------------------------


class DBOSSide:
    """DBOS Transact on a SQLite system database file, the flow written with its decorators.

    DBOS is one instance per process: construct this once, `close()` it at the end. With
    `tuned`, each of its connections is switched to our NORMAL store's settings (WAL,
    synchronous=NORMAL): not as it ships, to see what the SQLite settings account for.
    """

    def __init__(self, path: Path, *, tuned: bool = False) -> None:
        from dbos import DBOS
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        self.path = path
        self.tuned = tuned
        self.settings = ""
        self.statements: list[str] | None = None
        local = threading.local()
        self._local = local

        def on_checkout(connection: Any, record: Any, proxy: Any) -> None:
            # On the thread that takes the connection from DBOS's pool.
            if not self.settings:
                self.settings = pragmas(connection)
            tracing = self.statements
            connection.set_trace_callback(None if tracing is None else tracing.append)

        def on_connect(connection: Any, record: Any) -> None:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")

        if tuned:
            event.listen(Pool, "connect", on_connect)
        event.listen(Pool, "checkout", on_checkout)
        DBOS(
            config={
                "name": "coordination-bench",
                "system_database_url": f"sqlite:///{path}",
                "log_level": "WARNING",
            }
        )

        def durable_step(function: Callable[P, R]) -> Callable[P, R]:
            step: Callable[P, R] = DBOS.step()(function)  # typed when dbos is not installed
            return step

        def durable_workflow(function: Callable[P, R]) -> Callable[P, R]:
            workflow: Callable[P, R] = DBOS.workflow()(function)
            return workflow

        def services() -> Parts:
            found: Parts = local.parts
            return found

        def context(step: str) -> Context:
            workflow_id = DBOS.workflow_id or ""
            return Context(workflow_id, f"{workflow_id}:{step}")

        @durable_step
        def charge(order: OrderPlaced) -> PaymentCaptured:
            return services()[0].charge(order, context("Payments.charge"))

        @durable_step
        def refund(payment: PaymentCaptured) -> PaymentRefunded:
            return services()[0].refund(payment, context("Payments.charge:undo"))

        @durable_step
        def assign_courier(order: OrderPlaced, payment: PaymentCaptured) -> CourierAssigned:
            return services()[2].assign_courier(order, payment, context("Logistics.assign_courier"))

        @durable_step
        def release_courier(courier: CourierAssigned) -> CourierReleased:
            return services()[2].release_courier(courier, context("Logistics.assign_courier:undo"))

        @durable_step
        def reserve_stock(order: OrderPlaced, payment: PaymentCaptured) -> StockReserved:
            return services()[1].reserve_stock(order, payment, context("Sellers.reserve_stock"))

        @durable_step
        def release_stock(stock: StockReserved) -> StockReleased:
            return services()[1].release_stock(stock, context("Sellers.reserve_stock:undo"))

        @durable_step
        def send_confirmation(
            order: OrderPlaced, courier: CourierAssigned, stock: StockReserved
        ) -> ConfirmationSent:
            return services()[3].send_confirmation(
                order, courier, stock, context("Notifications.send_confirmation")
            )

        @durable_workflow
        def place_order(order: OrderPlaced) -> ConfirmationSent:
            """The orchestrator's calls in the same order, undone newest first on failure."""
            payment = charge(order)
            try:
                courier = assign_courier(order, payment)
                try:
                    stock = reserve_stock(order, payment)
                    try:
                        return send_confirmation(order, courier, stock)
                    except Exception:
                        release_stock(stock)
                        raise
                except Exception:
                    release_courier(courier)
                    raise
            except Exception:
                refund(payment)
                raise

        self._place_order: Callable[[OrderPlaced], ConfirmationSent] = place_order
        DBOS.launch()

    def use(self, services: Parts) -> None:
        """The services the steps call on this thread."""
        self._local.parts = services

    def run(self, order: OrderPlaced, workflow_id: str | None = None) -> ConfirmationSent:
        """One workflow, on this thread, with a fresh id unless `workflow_id` is given."""
        if workflow_id is None:
            return self._place_order(order)
        from dbos import SetWorkflowID

        with SetWorkflowID(workflow_id):
            return self._place_order(order)

    def jobs(self, count: int, threads: int) -> list[Job]:
        jobs: list[Job] = []
        for share in split(count, threads):
            services, messages = parts(share), orders(share)

            def job(services: Parts = services, messages: list[OrderPlaced] = messages) -> None:
                self.use(services)
                run = self.run
                for message in messages:
                    if not isinstance(run(message), ConfirmationSent):
                        raise AssertionError("a DBOS workflow did not confirm")

            jobs.append(job)
        return jobs

    def time(self, count: int, threads: int) -> float:
        return timed(self.jobs(count, threads)) / count

    def change_counter(self) -> int:
        """The database header's file change counter (bytes 24-27).

        A rollback-journal database bumps it once per write transaction; in WAL mode it is
        not kept up to date.
        """
        with open(self.path, "rb") as file:
            return int.from_bytes(file.read(28)[24:28], "big")

    def count(self, count: int) -> tuple[float, float | None]:
        """COMMIT statements and, unless tuned, write transactions per workflow (untimed)."""
        jobs = self.jobs(count, 1)
        before = self.change_counter()
        self.statements = []
        try:
            jobs[0]()
            traced_commits = commits(self.statements)
        finally:
            self.statements = None
        written = None if self.tuned else (self.change_counter() - before) / count
        return traced_commits / count, written

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy()


# -- kill -9 --------------------------------------------------------------------------------


def crash_child(which: str, path: Path) -> int:
    """Run workflows until killed, printing each one's id once it has returned."""
    count = 100_000
    if which.startswith("dbos"):
        dbos = DBOSSide(path, tuned=which == "dbos-tuned")
        dbos.use(parts(count))
        for message in orders(count):
            workflow_id = str(uuid.uuid4())
            dbos.run(message, workflow_id)
            print(workflow_id, flush=True)
        return 0
    runner = UntimedOrder(*parts(count), store=SQLiteStore(path, synchronous="NORMAL"))
    for message in orders(count):
        print(runner.run(message).workflow_id, flush=True)
    return 0


def kill_nine(which: str, path: Path, acknowledged: int) -> list[str]:
    """Start a child running workflows on `path`; SIGKILL it once `acknowledged` returned."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--crash-child", which, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    done: list[str] = []
    for line in child.stdout:
        done.append(line.strip())
        if len(done) >= acknowledged:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    if len(done) < acknowledged:
        raise AssertionError(f"{which}: the child stopped after {len(done)} workflows")
    return done


def crash_ours(path: Path) -> str:
    """Every acknowledged run COMPLETED after kill -9; the run cut short resumes."""
    done = kill_nine("ours", path, 200)
    found = statuses(path, "SELECT workflow_id, status FROM runs")
    lost = [key for key in done if found.get(key) != WorkflowStatus.COMPLETED.value]
    cut = [key for key, status in found.items() if status == WorkflowStatus.RUNNING.value]
    store = SQLiteStore(path)
    try:
        resumed = UntimedOrder(*parts(10), store=store).recover()
    finally:
        store.close()
        remove(path)
    finished = sum(1 for run in resumed if run.status is WorkflowStatus.COMPLETED)
    if lost or finished != len(cut):
        raise AssertionError(
            f"ours: {len(lost)} acknowledged runs lost; {finished} of {len(cut)} cut short resumed"
        )
    return (
        f"  ours, SQLite NORMAL: killed after {len(done)} returned: all {len(done)} found "
        f"COMPLETED; {len(cut)} cut short, resumed to COMPLETED by recover()"
    )


def crash_dbos(path: Path, tuned: bool) -> str:
    """Every acknowledged DBOS workflow SUCCESS after kill -9."""
    done = kill_nine("dbos-tuned" if tuned else "dbos", path, 20)
    found = statuses(path, "SELECT workflow_uuid, status FROM workflow_status")
    remove(path)
    lost = [key for key in done if found.get(key) != "SUCCESS"]
    if lost:
        raise AssertionError(f"DBOS: {len(lost)} acknowledged workflows lost")
    pending = sum(1 for status in found.values() if status == "PENDING")
    return (
        f"  {dbos_label(tuned)}: killed after {len(done)} returned: all {len(done)} found "
        f"SUCCESS; {pending} cut short (PENDING, for its recovery)"
    )


# -- main -----------------------------------------------------------------------------------


def dbos_label(tuned: bool) -> str:
    return "DBOS, SQLite WAL NORMAL (tuned)" if tuned else "DBOS, SQLite as shipped"


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError as error:
        print(f"{module}: skipped, not installed ({error}); pip install -e '.[bench]'")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=5_000, help="ours: memory, NORMAL")
    parser.add_argument("--full-workflows", type=int, default=1_000, help="ours: FULL")
    parser.add_argument("--dbos-workflows", type=int, default=200)
    parser.add_argument("--commits", type=int, default=2_000, help="bare commits (FULL: 1/4)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64, help="run_many() batch size")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--no-crash-check", action="store_true", help="skip the kill -9 check")
    parser.add_argument("--crash-child", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--tuned-child", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.crash_child:
        return crash_child(args.crash_child[0], Path(args.crash_child[1]))
    if args.tuned_child:
        return tuned_child(args, args.tuned_child)
    with tempfile.TemporaryDirectory(prefix="coordination-bench-", dir=args.dir) as name:
        return compare(args, Files(Path(name).resolve()))


def dbos_sides(
    peer: DBOSSide, args: argparse.Namespace, modes: list[tuple[str, int]], label: str
) -> tuple[Counted, float | None, list[tuple[str, Callable[[int], float]]]]:
    """Warm `peer` up, count its commits (untimed), and give its timed sides."""
    peer.time(10, 1)  # warm-up: the first calls read and check its registrations
    traced_commits, written = peer.count(50)
    sides = [(f"{label} {mode}", side(peer.time, args.dbos_workflows, n)) for mode, n in modes]
    return Counted(peer.settings, traced_commits), written, sides


def tuned_child(args: argparse.Namespace, path: Path) -> int:
    """Measure DBOS tuned (WAL + NORMAL) in this process; print the figures as JSON."""
    modes = [("seq", 1), (f"{args.threads} threads", args.threads)]
    peer = DBOSSide(path, tuned=True)
    try:
        counted, _, sides = dbos_sides(peer, args, modes, "tuned")
        samples = measure(sides, 0, args.rounds)
    finally:
        peer.close()
    print(json.dumps({"settings": counted.settings, "commits": counted.commits,
                      "samples": samples}))  # fmt: skip
    return 0


def measure_tuned(args: argparse.Namespace, path: Path) -> tuple[Counted, dict[str, list[float]]]:
    """DBOS tuned, measured by a child process of this run (one DBOS per process)."""
    command = [
        sys.executable, __file__, "--tuned-child", str(path), "--rounds", str(args.rounds),
        "--threads", str(args.threads), "--dbos-workflows", str(args.dbos_workflows),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"the tuned DBOS child failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Counted(figures["settings"], figures["commits"]), figures["samples"]


def compare(args: argparse.Namespace, files: Files) -> int:
    threads = args.threads
    modes = [("seq", 1), (f"{threads} threads", threads)]
    with_dbos = installed("dbos")
    print(
        f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
        + (f", dbos {version('dbos')}" if with_dbos else "")
        + f"; files in {files.directory} ({filesystem(files.directory)})"
    )
    if not args.no_crash_check:
        print("kill -9 check: a child process runs workflows and is SIGKILLed mid-run")
        print(crash_ours(files.new("crash-ours")))
        if with_dbos:
            print(crash_dbos(files.new("crash-dbos"), False))
            print(crash_dbos(files.new("crash-dbos-tuned"), True))

    sides: list[tuple[str, Callable[[int], float]]] = []
    for mode, count in modes:
        sides += [
            (f"memory {mode}", side(time_memory, args.workflows, count)),
            (f"NORMAL {mode}", side(time_sqlite, files, "NORMAL", args.workflows, count)),
            (f"FULL {mode}", side(time_sqlite, files, "FULL", args.full_workflows, count)),
        ]
    sides += [
        ("NORMAL batched", side(time_batched, files, "NORMAL", args.workflows, args.batch)),
        ("FULL batched", side(time_batched, files, "FULL", args.full_workflows, args.batch)),
        ("commit NORMAL", side(time_commits, files, "NORMAL", args.commits)),
        ("commit FULL", side(time_commits, files, "FULL", args.commits // 4)),
    ]
    counted = {
        "NORMAL": count_ours(files.new("count"), "NORMAL", 200),
        "FULL": count_ours(files.new("count"), "FULL", 50),
    }
    bare_pages = count_bare(files.new("count"), 200)
    peers: dict[str, Counted] = {}
    written: float | None = None
    if with_dbos:
        peer = DBOSSide(files.new("dbos"))
        try:
            peers["DBOS"], written, dbos_timed = dbos_sides(peer, args, modes, "DBOS")
            samples = measure(sides + dbos_timed, 0, args.rounds)
        finally:
            peer.close()
        peers["tuned"], tuned_samples = measure_tuned(args, files.new("dbos-tuned"))
        samples.update(tuned_samples)
    else:
        samples = measure(sides, 0, args.rounds)
    return report(args, modes, samples, counted, bare_pages, peers, written)


def report(
    args: argparse.Namespace,
    modes: list[tuple[str, int]],
    samples: dict[str, list[float]],
    counted: dict[str, Counted],
    bare_pages: float,
    peers: dict[str, Counted],
    written: float | None,
) -> int:
    best = {name: min(values) for name, values in samples.items()}
    print(
        f"{args.rounds} rounds of {args.workflows} workflows (memory, NORMAL), "
        f"{args.full_workflows} (FULL)"
        + ("" if not peers else f", {args.dbos_workflows} (each DBOS side)")
        + "; best of rounds"
    )
    print("durability settings, read back from each side's own connection:")
    print(f"  ours, SQLite NORMAL: {counted['NORMAL'].settings}: survives kill -9, not power loss")
    print(f"  ours, SQLite FULL:   {counted['FULL'].settings}: survives kill -9 and power loss")
    if peers:
        print(f"  {dbos_label(False)}: {peers['DBOS'].settings}: survives kill -9 and power loss")
        print(f"  {dbos_label(True)}: {peers['tuned'].settings}: survives kill -9, not power loss")
    labels = {
        "memory": "ours, MemoryStore (not durable)",
        "NORMAL": "ours, SQLite NORMAL",
        "FULL": "ours, SQLite FULL",
        "DBOS": dbos_label(False),
        "tuned": dbos_label(True),
    }
    print("per workflow:")
    for mode, _ in modes:
        for key, label in labels.items():
            name = f"{key} {mode}"
            if name in samples:
                median = statistics.median(samples[name])
                print(
                    f"  {label + ', ' + mode:<45} {best[name] * 1e6:9.1f} µs "
                    f"(median {median * 1e6:9.1f})  {1 / best[name]:8.0f} workflows/s"
                )
    for key in ("NORMAL", "FULL"):
        name = f"{key} batched"
        median = statistics.median(samples[name])
        label = f"{labels[key]}, run_many() x {args.batch}"
        print(
            f"  {label:<45} {best[name] * 1e6:9.1f} µs "
            f"(median {median * 1e6:9.1f})  {1 / best[name]:8.0f} workflows/s"
        )
    commit_normal, commit_full = best["commit NORMAL"], best["commit FULL"]
    print(
        f"bare commit (WAL, a 1-row INSERT, {bare_pages:.1f} WAL pages): "
        f"NORMAL {commit_normal * 1e6:.1f} µs, FULL {commit_full * 1e6:.1f} µs"
    )
    normal = counted["NORMAL"]
    print(
        f"ours: {normal.commits:g} commits, {normal.pages:.1f} WAL pages per workflow "
        f"({normal.pages / normal.commits:.1f} per commit)"
    )
    if peers:
        print(
            f"DBOS: {peers['DBOS'].commits:g} COMMIT statements per workflow"
            + ("" if written is None else f", {written:g} write transactions (change counter)")
        )
    verdicts: list[bool] = []
    print("targets:")
    if peers:
        for mode, _ in modes:
            ratio = best[f"tuned {mode}"] / best[f"NORMAL {mode}"]
            if mode == "seq":
                verdicts.append(ratio >= EQUAL_TARGET)
                judged = f"(target >= {EQUAL_TARGET:.0f}x)  {verdict(ratio >= EQUAL_TARGET)}"
            else:
                judged = "(no target)"
            print(f"  equal crash safety, ours NORMAL / {dbos_label(True)}, {mode}: "
                  f"{ratio:.1f}x {judged}")  # fmt: skip
        for mode, _ in modes:
            ratio = best[f"DBOS {mode}"] / best[f"NORMAL {mode}"]
            print(f"  ours NORMAL / {dbos_label(False)}, {mode}: {ratio:.1f}x (no target)")
        for setting, peer, target in (
            ("NORMAL", "tuned", BATCH_EQUAL_TARGET),
            ("FULL", "DBOS", BATCH_FULL_TARGET),
        ):
            ratio = best[f"{peer} seq"] / best[f"{setting} batched"]
            verdicts.append(ratio >= target)
            print(
                f"  ours {setting} run_many() x {args.batch} / {dbos_label(peer == 'tuned')}, seq: "
                f"{ratio:.1f}x (target >= {target:.0f}x)  {verdict(ratio >= target)}"
            )
        for mode, _ in modes:
            ratio = best[f"DBOS {mode}"] / best[f"FULL {mode}"]
            if mode == "seq":
                verdicts.append(ratio >= FULL_TARGET)
                judged = f"(target >= {FULL_TARGET:.0f}x)  {verdict(ratio >= FULL_TARGET)}"
            else:
                judged = "(no target)"
            print(f"  ours FULL / {dbos_label(False)}, {mode}: {ratio:.1f}x {judged}")
    else:
        print("  ours / DBOS: not measured (dbos is not installed)")
    for synchronous, commit in (("NORMAL", commit_normal), ("FULL", commit_full)):
        bound = commit * counted[synchronous].commits
        for mode, _ in modes:
            factor = best[f"{synchronous} {mode}"] / bound
            if synchronous == "NORMAL" and mode == "seq":
                verdicts.append(factor <= LIMIT_TARGET)
                judged = f"(target <= {LIMIT_TARGET}x)  {verdict(factor <= LIMIT_TARGET)}"
            else:
                judged = "(no target)"
            print(
                f"  ours {synchronous}, {mode}: {best[f'{synchronous} {mode}'] * 1e6:.0f} µs = "
                f"{factor:.2f}x bare {synchronous} commit x {counted[synchronous].commits:g} "
                f"({bound * 1e6:.0f} µs) {judged}"
            )
    for synchronous, ours in counted.items():
        verdicts.append(ours.commits <= COMMITS_TARGET)
        print(
            f"  ours commits per workflow, {synchronous}: {ours.commits:g} "
            f"(target <= {COMMITS_TARGET})  {verdict(ours.commits <= COMMITS_TARGET)}"
        )
    if not all(verdicts):
        print("TARGET MISSED")
        return 1
    print("all targets met" if peers else "targets met, except the DBOS ratios: not measured")
    return 0


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
