"""Durability across real processes: fencing, atomic starts, fresh reads, zombies, disk full.

Each test drives real subprocesses (tests.durability.proc) over one store (a SQLite file, and
for the tests taking `durable_backend` also a PostgreSQL schema) and one effects ledger
(tests.crash.shop.Effects), with real SIGSTOP, SIGCONT and SIGKILL; a
second "host" is a process in a UTS namespace of its own (`unshare -u`) with another host
name, so its owner id names another machine and only leases decide between the two.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import Context, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.errors import StoreError
from coordination.stores import SQLiteStore
from tests.crash.shop import Effects
from tests.durability.proc import outcome
from tests.durability.shop import Checkout, Ordered, Shop
from tests.postgres import Backend

ROOT = Path(__file__).resolve().parents[2]
OTHER_HOST = "durability-other-host"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}


def command(mode: str, tmp_path: Path, *options: str, store: Where | None = None) -> list[str]:
    spec = store.spec if isinstance(store, Backend) else str(store or tmp_path / "s.db")
    return [sys.executable, "-m", "tests.durability.proc", mode, spec,
            str(tmp_path / "effects.db"), "--folder", str(tmp_path), *options]  # fmt: skip


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 30) -> Any:
    """Wait for `process`; what it printed (JSON), after checking it exited cleanly."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


def run(argv: list[str], timeout: float = 30) -> Any:
    return finish(start(argv), timeout)


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *processes: subprocess.Popen[bytes],
    timeout: float = 20,
) -> None:
    """Wait until `condition()`; fail at once if one of `processes` ended meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"{what}: {process.args!r} ended: {out!r} {err.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


#: A store's data: a SQLite file, or a backend (a SQLite file or a PostgreSQL schema).
Where = Path | Backend


def database(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=10, isolation_level=None)


def _select(where: Where, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
    """(column names, rows) of one query on the store's data, on a connection of its own."""
    if isinstance(where, Backend) and where.kind == "postgres":
        with where.connect() as connection:
            cursor = connection.execute(sql.replace("?", "%s"), parameters)
            return [d.name for d in cursor.description], cursor.fetchall()
    connection = database(Path(where.spec) if isinstance(where, Backend) else where)
    try:
        cursor = connection.execute(sql, parameters)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        connection.close()


def stored(where: Where) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every run row and every step row of the store, as stored."""
    _, runs = _select(where, "SELECT * FROM runs ORDER BY 1")
    _, steps = _select(where, "SELECT * FROM steps ORDER BY 1, 2")
    return runs, steps


def facts(where: Where) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the store says happened: every run row (but the lease, which the owner's
    heartbeat renews) and every step row."""
    columns, runs = _select(where, "SELECT * FROM runs ORDER BY 1")
    _, steps = _select(where, "SELECT * FROM steps ORDER BY 1, 2")
    lease = columns.index("lease_expires")
    return [row[:lease] + row[lease + 1 :] for row in runs], steps


def column(where: Where, workflow_id: str, name: str) -> Any:
    """One column of a run's row as stored (None if there is no such run)."""
    _, rows = _select(where, f"SELECT {name} FROM runs WHERE workflow_id = ?", (workflow_id,))
    return rows[0][0] if rows else None


def status_of(where: Where, workflow_id: str) -> str | None:
    status = column(where, workflow_id, "status")
    return None if status is None else WorkflowStatus(status).name


def ledger(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Effects by workflow (action -> undone) and how often each key was executed."""
    connection = database(path)
    try:
        effects: dict[str, dict[str, int]] = {}
        for action, workflow, undone in connection.execute(
            "SELECT action, workflow, undone FROM effects"
        ):
            effects.setdefault(workflow, {})[action] = undone
        executions = dict(
            connection.execute("SELECT key, COUNT(*) FROM executions GROUP BY key").fetchall()
        )
    finally:
        connection.close()
    return effects, executions


APPLIED = {"charge": 0, "pack": 0, "ship": 0}  # every effect applied, none undone


def other_host_prefix() -> list[str] | None:
    """How to run a command as another host: a UTS namespace of its own, renamed."""
    for prefix in (["unshare", "-u"], ["unshare", "-U", "-r", "-u"]):
        try:
            probe = subprocess.run(
                [*prefix, "sh", "-c", f"hostname {OTHER_HOST} && hostname"],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.decode().strip() == OTHER_HOST:
            return prefix
    return None


def as_other_host(prefix: list[str], argv: list[str]) -> list[str]:
    return [*prefix, "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh", *argv]


def release_together(folder: Path, names: str, processes: list[subprocess.Popen[bytes]]) -> None:
    """Once every process wrote `ready-<name>`, give them one start time, 0.2 s ahead."""
    wait_for(
        lambda: all((folder / f"ready-{name}").exists() for name in names), "ready", *processes
    )
    (folder / "go.tmp").write_text(repr(time.time() + 0.2))
    (folder / "go.tmp").rename(folder / "go")


def stop_outside_a_transaction(process: subprocess.Popen[bytes], where: Where) -> None:
    """SIGSTOP `process` at a moment it holds no write lock on the store (its heartbeat
    commits every third of a lease): a stopped lock holder would block every other host."""
    if isinstance(where, Backend) and where.kind == "postgres":
        for _ in range(200):
            process.send_signal(signal.SIGSTOP)
            # The process's connections: none may be inside a statement or a transaction.
            _, busy = _select(
                where,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? "
                "AND state <> 'idle'",
                (f"coordination:{where.spec.partition(':')[2]}",),
            )
            if busy[0][0] == 0:
                return
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the owner was always inside a transaction")
    path = Path(where.spec) if isinstance(where, Backend) else where
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the owner always held the write lock")


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started: whatever happened, none outlives it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        process.communicate()


# -- defect 2: fencing --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["another host", "the same host"])
def test_an_owner_stopped_past_its_lease_is_fenced_out_by_another_process(
    tmp_path: Path, durable_backend: Backend, reap: list[subprocess.Popen[bytes]], host: str
) -> None:
    """A (lease 0.5 s) is SIGSTOPped inside `ship`; process B (on another host, or on A's:
    a live owner whose lease expired is taken over all the same) recovers the run, and its
    `ship` applies the effect. A wakes while B's attempt is in flight: its provider refuses
    the key ("in flight"), and A's record of that failure is refused (`LeaseLost`): A
    records nothing and undoes nothing. B then records `ship`: COMPLETED, each effect
    applied once, none undone. Meanwhile A's get() and runs() show the stored run, B's
    takeover included, not A's own copy (defect 12)."""
    prefix: list[str] | None = []
    if host == "another host":
        prefix = other_host_prefix()
        if prefix is None:
            pytest.skip("cannot run a process under another host name (unshare -u)")
    path = durable_backend
    owner = start(
        command("hold", tmp_path, "--ids", "f-1", "--block", "ship", "--refuse-seen",
                "--go", "go-a", "--lease", "0.5", store=path)
    )  # fmt: skip
    reap.append(owner)
    wait_for((tmp_path / "entered-ship-f-1").exists, "A to enter ship", owner)
    stop_outside_a_transaction(owner, path)

    def lease_expired() -> bool:
        expires = column(path, "f-1", "lease_expires")
        return expires is not None and expires < time.time() - 0.05

    wait_for(lease_expired, "A's lease to run out")
    recovering = command(
        "recover", tmp_path, "--after", "ship", "--go", "go-b", "--lease", "0.5", store=path
    )
    other = start(as_other_host(prefix, recovering) if prefix else recovering)
    reap.append(other)
    wait_for((tmp_path / "applied-ship-f-1").exists, "B to apply ship", other)
    before = facts(path)

    owner.send_signal(signal.SIGCONT)
    (tmp_path / "read").touch()  # A reads while its attempt of ship is still in flight
    wait_for((tmp_path / "reads.json").exists, "A's reads", owner)
    (tmp_path / "go-a").touch()
    result = finish(owner)
    assert result["f-1"]["error"] == "LeaseLost", result
    assert facts(path) == before, "the fenced-out owner wrote something"
    seen = json.loads((tmp_path / "reads.json").read_text())
    assert seen == {"get": {"f-1": "RUNNING"}, "takeovers": {"f-1": 1}, "runs": {"f-1": "RUNNING"}}

    (tmp_path / "go-b").touch()
    expected_host = OTHER_HOST if prefix else socket.gethostname()
    assert finish(other) == {"host": expected_host, "recovered": {"f-1": "COMPLETED"}}
    assert status_of(path, "f-1") == "COMPLETED"
    effects, executions = ledger(tmp_path / "effects.db")
    assert effects == {"f-1": APPLIED}
    assert executions == {"f-1:Bank.charge": 1, "f-1:Depot.pack": 1, "f-1:Courier.ship": 1}


# -- defect 3: atomic starts ----------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["orchestration", "choreography"])
def test_two_processes_starting_one_id_at_once_run_it_once(
    tmp_path: Path, durable_backend: Backend, runner: str, reap: list[subprocess.Popen[bytes]]
) -> None:
    """Two processes start `race-0` ... `race-9` at the same instants (a shared start time):
    for each, exactly one runs the flow; the other finds it finished or busy."""
    trials = 10
    options = ("--runner", runner, "--trials", str(trials), "--gap", "0.12", "--pause", "0.01")
    racers = [
        start(command("race", tmp_path, "--name", name, *options, store=durable_backend))
        for name in "ab"
    ]
    reap.extend(racers)
    release_together(tmp_path, "ab", racers)
    results = [finish(racer) for racer in racers]

    effects, executions = ledger(tmp_path / "effects.db")
    for trial in range(trials):
        workflow_id = f"race-{trial}"
        outcomes = [result[workflow_id] for result in results]
        assert all(o["error"] in (None, "WorkflowBusy") for o in outcomes), outcomes
        assert status_of(durable_backend, workflow_id) == "COMPLETED"
        assert effects[workflow_id] == APPLIED
    assert len(executions) == 3 * trials
    twice = {key: count for key, count in executions.items() if count != 1}
    assert not twice, f"run by both processes: {twice}"


def test_processes_opening_one_new_store_file_at_once_all_open_it(
    tmp_path: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    """Three processes open each of eight new files at the same instant: one creates the
    schema, the others find it (none fails with "table already exists")."""
    names = "abc"
    openers = [
        start(command("open", tmp_path, "--name", name, "--trials", "8", "--gap", "0.04"))
        for name in names
    ]
    reap.extend(openers)
    release_together(tmp_path, names, openers)
    for result in (finish(opener) for opener in openers):
        assert all(o == outcome(None, "opened") for o in result.values()), result


# -- defect 12: reads show what is stored ------------------------------------------------------


def test_reads_show_what_another_process_s_operator_did(
    tmp_path: Path, durable_backend: Backend, reap: list[subprocess.Popen[bytes]]
) -> None:
    """A runs cf-1 to COMPENSATION_FAILED and keeps it; B's operator retries it to
    COMPENSATED; A's get() and runs() say COMPENSATED."""
    holder = start(command("compensation-failed", tmp_path, store=durable_backend))
    reap.append(holder)
    wait_for((tmp_path / "ready").exists, "A's failed compensation", holder)
    assert status_of(durable_backend, "cf-1") == "COMPENSATION_FAILED"
    retried = run(command("retry", tmp_path, "--ids", "cf-1", store=durable_backend))
    assert retried == {"cf-1": "COMPENSATED"}
    (tmp_path / "read").touch()
    assert finish(holder) == {"kept": "COMPENSATION_FAILED"}  # what A's run() returned then
    seen = json.loads((tmp_path / "reads.json").read_text())
    assert seen["get"] == seen["runs"] == {"cf-1": "COMPENSATED"}
    effects, _ = ledger(tmp_path / "effects.db")
    assert effects == {"cf-1": {"charge": 1}}  # charged, then refunded by B's retry


# -- defect 13: a choreography interrupted by Ctrl-C resumes in the same process --------------


def test_a_choreography_interrupted_by_ctrl_c_is_recovered_by_the_same_process(
    tmp_path: Path, durable_backend: Backend
) -> None:
    """Ctrl-C inside `pack` of a durable choreography: the instance is let go, so this
    process's own recover() takes it (it is not skipped as active) and finishes it."""
    effects = Effects(tmp_path / "effects.db")
    interrupted: list[str] = []

    def ctrl_c_once(name: str, ctx: Context) -> None:
        if name == "pack" and not interrupted:
            interrupted.append(ctx.correlation_id)
            raise KeyboardInterrupt

    with durable_backend.open() as store:
        flow = Choreography(
            EventBus(), *Shop(effects, hook=ctrl_c_once).participants(), store=store
        )
        with pytest.raises(KeyboardInterrupt):
            flow.publish(Ordered(order_id="k-1"), correlation_id="k-1")
        assert store.get_run("k-1").status is WorkflowStatus.RUNNING  # type: ignore[union-attr]
        (view,) = flow.recover()
        assert (view.correlation_id, view.status) == ("k-1", WorkflowStatus.COMPLETED)
        assert flow.recover() == []
    effects.connection.close()
    applied, executions = ledger(tmp_path / "effects.db")
    assert applied == {"k-1": APPLIED}
    assert all(count == 1 for count in executions.values()), executions


# -- defect 14: a zombie owner is dead -----------------------------------------------------------


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_owner_not_yet_reaped_counts_as_dead(
    tmp_path: Path, durable_backend: Backend, reap: list[subprocess.Popen[bytes]]
) -> None:
    """The child holds z-1 and z-2 (default 30 s lease) inside `pack` and is SIGKILLed but not
    reaped: this process's run() of z-2 resumes it (no WorkflowBusy) and recover() takes z-1,
    while the child is still a zombie."""
    child = start(
        command("hold", tmp_path, "--ids", "z-1", "z-2", "--block", "pack", store=durable_backend)
    )
    reap.append(child)
    for workflow_id in ("z-1", "z-2"):
        wait_for(
            (tmp_path / f"entered-pack-{workflow_id}").exists, f"the child in {workflow_id}", child
        )
    os.kill(child.pid, signal.SIGKILL)  # not child.kill(), and no wait(): it stays a zombie
    wait_for(lambda: process_state(child.pid) == "Z", "the child to become a zombie")

    effects = Effects(tmp_path / "effects.db")
    with durable_backend.open() as store:
        orders = Checkout(*Shop(effects).participants(), store=store)
        resumed = orders.run(Ordered(order_id="z-2"), workflow_id="z-2")
        assert resumed.status is WorkflowStatus.COMPLETED
        recovered = orders.recover()
        assert [(r.workflow_id, r.status) for r in recovered] == [("z-1", WorkflowStatus.COMPLETED)]
    assert process_state(child.pid) == "Z", "the child was reaped before the assertions"
    child.wait()
    effects.connection.close()
    applied, executions = ledger(tmp_path / "effects.db")
    assert applied == {"z-1": APPLIED, "z-2": APPLIED}
    assert all(count == 1 for count in executions.values()), executions


# -- defect 7: a full disk -----------------------------------------------------------------------


def test_a_full_database_fails_the_run_typed_and_releases_it(tmp_path: Path) -> None:
    """SQLite's `max_page_count` makes the store full inside `pack` (whose output needs new
    pages): run() raises StoreError, the run is let go (no heartbeat renews it); once space
    returns, run() of the same id resumes it and recover() takes another such run."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path, lease=0.3)
    connection = store._db._connection  # the store's own connection: the limit is per connection
    to_fill = {"m-1", "m-2"}

    def limit(pages: int | None) -> None:
        if pages is None:
            (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")

    def full_in_pack(name: str, ctx: Context) -> None:
        if name == "pack" and ctx.correlation_id in to_fill:
            to_fill.discard(ctx.correlation_id)
            limit(None)  # no page more than it has now

    effects = Effects(tmp_path / "effects.db")
    orders = Checkout(*Shop(effects, hook=full_in_pack, bulky=True).participants(), store=store)
    try:
        for workflow_id in ("m-1", "m-2"):
            with pytest.raises(StoreError, match="full"):
                orders.run(Ordered(order_id=workflow_id), workflow_id=workflow_id)
            limit(1_073_741_823)  # space returns
            before = stored(path)[0]
            time.sleep(0.5)  # several heartbeats (every 0.1 s)
            assert stored(path)[0] == before, "a heartbeat still renews the failed run's lease"
            assert status_of(path, workflow_id) == "RUNNING"
            assert column(path, workflow_id, "owner") is None, "the failed run was not let go"
        resumed = orders.run(Ordered(order_id="m-1"), workflow_id="m-1")
        assert resumed.status is WorkflowStatus.COMPLETED
        recovered = orders.recover()
        assert [(r.workflow_id, r.status) for r in recovered] == [("m-2", WorkflowStatus.COMPLETED)]
    finally:
        store.close()
        effects.connection.close()
    applied, executions = ledger(tmp_path / "effects.db")
    assert applied == {"m-1": APPLIED, "m-2": APPLIED}
    assert executions == {
        f"{workflow_id}:{action}": count
        for workflow_id in ("m-1", "m-2")
        for action, count in (("Bank.charge", 1), ("Depot.pack", 2), ("Courier.ship", 1))
    }


def test_a_full_database_fails_a_batch_typed_and_releases_every_run(tmp_path: Path) -> None:
    """The same full disk under run_many(): the round's one commit fails, StoreError is
    raised, every run of the batch is let go (no heartbeat renews any), and once space
    returns the same batch resumes each run from its own records."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path, lease=0.3)
    connection = store._db._connection
    filled = [False]

    def full_in_pack(name: str, ctx: Context) -> None:
        if name == "pack" and not filled[0]:
            filled[0] = True
            (pages,) = connection.execute("PRAGMA page_count").fetchone()
            connection.execute(f"PRAGMA max_page_count = {pages}")

    effects = Effects(tmp_path / "effects.db")
    orders = Checkout(*Shop(effects, hook=full_in_pack, bulky=True).participants(), store=store)
    ids = ["b-1", "b-2"]
    messages = [Ordered(order_id=workflow_id) for workflow_id in ids]
    try:
        with pytest.raises(StoreError, match="full"):
            orders.run_many(messages, workflow_ids=ids)
        connection.execute("PRAGMA max_page_count = 1073741823")  # space returns
        before = stored(path)[0]
        time.sleep(0.5)  # several heartbeats (every 0.1 s)
        assert stored(path)[0] == before, "a heartbeat still renews a failed batch's lease"
        for workflow_id in ids:
            assert status_of(path, workflow_id) == "RUNNING"
            assert column(path, workflow_id, "owner") is None, "a failed run was not let go"
        resumed = orders.run_many(messages, workflow_ids=ids)
        assert [run.status for run in resumed] == [WorkflowStatus.COMPLETED] * 2
    finally:
        store.close()
        effects.connection.close()
    applied, executions = ledger(tmp_path / "effects.db")
    assert applied == {"b-1": APPLIED, "b-2": APPLIED}
    assert executions == {
        f"{workflow_id}:{action}": count
        for workflow_id in ids
        for action, count in (("Bank.charge", 1), ("Depot.pack", 2), ("Courier.ship", 1))
    }


def mount_prefix(folder: Path) -> list[str] | None:
    """How to run a command with a tiny tmpfs on `folder`, in a mount namespace of its own."""
    script = 'mount -t tmpfs -o size=512k tmpfs "$0" && exec "$@"'
    for unshare in (["unshare", "-m"], ["unshare", "-U", "-r", "-m"]):
        try:
            probe = subprocess.run(
                [*unshare, "sh", "-c", script, str(folder), "true"], capture_output=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return [*unshare, "sh", "-c", script, str(folder)]
    return None


def test_a_full_disk_fails_the_run_typed_and_never_wedges_it(tmp_path: Path) -> None:
    """The store on a 512 kB tmpfs that a step fills: every write fails (the release too);
    run() raises StoreError, the heartbeat stops (the lease is not renewed once space
    returns), and run() of the same id and recover() go on with the runs."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    prefix = mount_prefix(mount)
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a mount namespace of its own")
    argv = [*prefix, sys.executable, "-m", "tests.durability.proc", "disk-full",
            str(mount / "s.db"), str(tmp_path / "effects.db"), "--folder", str(mount),
            "--lease", "0.3"]  # fmt: skip
    seen = run(argv)
    for workflow_id in ("d-1", "d-2"):
        first = seen[f"{workflow_id}: first run"]
        assert first["error"] == "StoreError", first
        assert "disk is full" in first["message"], first
        when_full = seen[f"{workflow_id}: stored when full"]
        after = seen[f"{workflow_id}: stored after space returned"]
        assert when_full["status"] == WorkflowStatus.RUNNING.value
        assert when_full["owner"] is not None  # the release failed too: the lease stays
        assert after == when_full, "a heartbeat still renews the failed run's lease"
    assert seen["d-1: run again"] == outcome(None, "COMPLETED")
    assert seen["recover"] == {"d-2": "COMPLETED"}
    effects, executions = ledger(tmp_path / "effects.db")
    assert effects == {"d-1": APPLIED, "d-2": APPLIED}
    assert executions == {  # pack ran again (its record never made it), under its key
        f"{workflow_id}:{action}": count
        for workflow_id in ("d-1", "d-2")
        for action, count in (("Bank.charge", 1), ("Depot.pack", 2), ("Courier.ship", 1))
    }


# -- requests: cancelling an instance another live process drives -----------------------------


@pytest.mark.parametrize("runner", ["orchestration", "choreography"])
def test_a_cancel_from_another_process_stops_the_owner_at_its_next_boundary(
    tmp_path: Path, durable_backend: Backend, reap: list[subprocess.Popen[bytes]], runner: str
) -> None:
    """A drives c-1 and is inside `pack`; this process's cancel() finds it busy, keeps a
    durable request and returns it RUNNING. Once `pack` returns, A takes the request at its
    next step boundary: `ship` never runs, `pack` and `charge` are undone, CANCELLED."""
    owner = start(
        command("hold", tmp_path, "--ids", "c-1", "--block", "pack", "--runner", runner,
                store=durable_backend)
    )  # fmt: skip
    reap.append(owner)
    wait_for((tmp_path / "entered-pack-c-1").exists, "A to enter pack", owner)
    with durable_backend.open() as store:
        shop = Shop(Effects(tmp_path / "effects.db"))
        if runner == "choreography":
            flow = Choreography(EventBus(), *shop.participants(), store=store)
            kept = flow.cancel("c-1").status
        else:
            kept = Checkout(*shop.participants(), store=store).cancel("c-1").status
        assert kept is WorkflowStatus.RUNNING
        assert [request.cancel for request in store.requests("c-1")] == [True]
        shop.effects.connection.close()
    time.sleep(0.15)  # A looks for requests at most every 0.1 s while it drives
    (tmp_path / "go").touch()
    assert finish(owner) == {"c-1": outcome(None, "CANCELLED")}
    effects, executions = ledger(tmp_path / "effects.db")
    assert effects == {"c-1": {"charge": 1, "pack": 1}}  # both undone; ship never ran
    assert "c-1:Courier.ship" not in executions
    with durable_backend.open() as store:
        assert store.requests("c-1") == []


def test_a_cancel_request_outlives_its_owner_s_kill_9(
    tmp_path: Path, durable_backend: Backend, reap: list[subprocess.Popen[bytes]]
) -> None:
    """The owner is SIGKILLed with a cancel request it never saw: whoever recovers the run
    carries the request out, so the run ends CANCELLED, not COMPLETED."""
    owner = start(command("hold", tmp_path, "--ids", "k-1", "--block", "pack",
                          store=durable_backend))  # fmt: skip
    reap.append(owner)
    wait_for((tmp_path / "entered-pack-k-1").exists, "A to enter pack", owner)
    with durable_backend.open() as store:
        shop = Shop(Effects(tmp_path / "effects.db"))
        orders = Checkout(*shop.participants(), store=store)
        assert orders.cancel("k-1").status is WorkflowStatus.RUNNING
        owner.send_signal(signal.SIGKILL)
        owner.communicate()
        (tmp_path / "go").touch()
        (recovered,) = orders.recover()
        assert recovered.status is WorkflowStatus.CANCELLED
        assert store.requests("k-1") == []
        shop.effects.connection.close()
    effects, _executions = ledger(tmp_path / "effects.db")
    assert all(undone == 1 for undone in effects["k-1"].values()), effects
    assert "ship" not in effects["k-1"]
