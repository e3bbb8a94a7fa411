"""A deterministic crash sweep: SIGKILL each runner at every point of its run, then recover.

Each scenario (tests.crash.sweep_worker: orchestration or choreography, sync or async,
an order that goes through or one that is compensated after a parallel generation) first
runs once without a kill, which names its points: before and after every call to the store
protocols, and before and after every effect of a participant's action or compensation.
Then, for each point, a real process runs the scenario on real SQLite files and SIGKILLs
itself there, and a fresh process goes back to it in each of the two ways a user can:
`recover()`, or the same `run()` / `publish()` (or its async form) again. The files are
then checked:

- no instance lost: a run whose start was committed exists;
- no effect applied twice (one per order and action; re-executed attempts at most one per
  kill), none applied again after its undo, none left applied on a COMPENSATED instance,
  none at all for a run never started;
- each instance ended as it should (COMPLETED with every effect, or COMPENSATED with every
  effect undone), owes nothing, has no owner, and no delivery was set aside as a dead
  letter.

The second level kills the process on its way back too, at each point of its own run
(which depends on where the first one died), then runs `recover()` to the end and checks
the same.

Deterministic: points are named, not numbered, so a kill hits the same call whatever the
threads do, and under `run_async()` the courier step waits until its sibling's record
landed (the sync drives see the other order). Cheap: one fork server per core imports
everything once and forks one child process per run.

`make test` tries a deterministic sample (every first-level point, every k-th of the
second level); `make test-long` tries every point of every scenario at both levels. The
counts are printed (`-s`) and repeated in the terminal summary.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from coordination import Journal
from coordination.stores import SQLiteStore
from tests.crash import harness
from tests.crash.shop import Effects
from tests.crash.sweep_worker import (
    EFFECTS,
    POINTS,
    ROLES,
    SCENARIOS,
    STARTED,
    STORE,
    workflow_of,
)

CORES = max(1, len(os.sched_getaffinity(0)))
KILLED = -signal.SIGKILL
#: The default run tries every k-th point of the second level (offset per scenario).
SECOND_LEVEL_EVERY = 24


class Server:
    """One fork server (tests.crash.sweep_worker serve): one child process per request."""

    def __init__(self, log: Path) -> None:
        self.log_path = log
        self.log: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.sweep_worker", "serve"],
            cwd=harness.ROOT,
            env=harness.worker_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def run(self, scenario: str, role: str, directory: Path, kill: str | None = None) -> int:
        """Run one role in a new child process; its exit status (-9: it killed itself)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        request = {"scenario": scenario, "role": role, "dir": str(directory), "kill": kill}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise AssertionError(f"the fork server died: {self.log_path.read_text()}")
        status: int = json.loads(answer)["status"]
        return status

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.log.close()


class Pool:
    """As many fork servers as cores, each used by one thread at a time."""

    def __init__(self, directory: Path) -> None:
        self.servers = [Server(directory / f"server-{n}.log") for n in range(CORES)]
        self.free: queue.Queue[Server] = queue.Queue()
        for server in self.servers:
            self.free.put(server)

    def map(self, task: Callable[[Server, Any], Any], items: list[Any]) -> list[Any]:
        def run(item: Any) -> Any:
            server = self.free.get()
            try:
                return task(server, item)
            finally:
                self.free.put(server)

        with ThreadPoolExecutor(len(self.servers)) as executor:
            return list(executor.map(run, items))

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    servers = Pool(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.close()


def check(directory: Path, scenario: str, kills: int) -> None:
    """The files after the last recovery: nothing lost, doubled, left applied or owed."""
    workflow_id = workflow_of(scenario)
    index = int(workflow_id.removeprefix("order-"))
    started = directory / STARTED
    was_started = started.exists() and workflow_id in started.read_text().split()
    with SQLiteStore(directory / STORE) as store:
        record = store.get_run(workflow_id)
        letters = store.dead_letters()
    assert letters == [], letters
    if record is None:
        assert not was_started, f"{workflow_id} was started and is lost"
        effects = Effects(directory / EFFECTS)
        (executions,) = effects.connection.execute("SELECT COUNT(*) FROM executions").fetchone()
        effects.connection.close()
        assert executions == 0, "a run never started has effects"
        return
    journal = Journal.from_rows(record.journal).render()
    assert not record.owed, (record.status, "still owes work", journal)
    assert record.owner is None, (record.status, record.owner)
    harness.check_outcome(
        directory,
        {workflow_id: record.status},
        index + 1,
        kills,  # attempts run again: only the one each kill interrupted
        {workflow_id: journal},
        indexes=[index],
    )


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _points(directory: Path) -> list[str]:
    points: list[str] = json.loads((directory / POINTS).read_text())
    return points


def _why(directory: Path, error: BaseException) -> str:
    logs = "".join(_read(directory / f"{role}.stderr") for role in ROLES)
    return f"{type(error).__name__}: {error}" + (f"\n{logs[-2000:]}" if logs.strip() else "")


@dataclass
class Tally:
    """What one scenario's sweep tried, and what it found."""

    scenario: str
    points: int = 0  #: points of the scenario's own run (each killed, then both ways back)
    second_total: int = 0  #: points of all the ways back after a first kill
    second: int = 0  #: of those, killed (then recovered)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.scenario}: {self.points} points, each killed then recovered and rerun; "
            f"killed again on the way back at {self.second} of {self.second_total} points; "
            f"{self.points + self.second} kills in {self.seconds:.1f}s, "
            f"{len(self.problems)} problems"
        )


def _run_once(
    server: Server, scenario: str, role: str, directory: Path, kill: str | None
) -> str | None:
    """Run one role; a problem, if its process did not end as it should."""
    code = server.run(scenario, role, directory, kill)
    expected = 0 if kill is None else KILLED
    if code == expected:
        return None
    if kill is not None and code == 0:
        return f"{role} never reached {kill}"
    return f"{role} exited {code}\n{_read(directory / f'{role}.stderr')[-3000:]}"


#: The ways back after a kill: `recover()`, or the same call again (same id and message).
BACK = ("recover", "rerun")


def sweep(pool: Pool, base: Path, scenario: str, *, every_second: int) -> Tally:
    """Kill `scenario` at every point; then its way back at every `every_second`-th one."""
    tally = Tally(scenario)
    began = time.monotonic()
    counting = base / "count"
    counting.mkdir()
    problem = _run_once(pool.servers[0], scenario, "first", counting, None)
    assert problem is None, problem
    check(counting, scenario, kills=0)  # without a kill, it simply ends as it should
    points = _points(counting)
    tally.points = len(points)

    def first_level(server: Server, item: tuple[int, str]) -> list[list[str]]:
        """Kill at `point`, then each way back on a copy: the points each way passed."""
        number, point = item
        directory = base / f"k{number}"
        directory.mkdir()
        problem = _run_once(server, scenario, "first", directory, point)
        if problem is not None:
            tally.problems.append(f"kill at {point}: {problem}")
            return [[] for _ in BACK]
        passed: list[list[str]] = []
        for role in BACK:
            where = base / f"k{number}-{role}"
            shutil.copytree(directory, where)
            problem = _run_once(server, scenario, role, where, None)
            try:
                assert problem is None, problem
                check(where, scenario, kills=1)
            except AssertionError as error:
                tally.problems.append(f"kill at {point}, then {role}: {_why(where, error)}")
                passed.append([])
                continue
            passed.append(_points(where))
            shutil.rmtree(where)
        return passed  # the killed files stay: the second level starts from them

    ways = pool.map(first_level, list(enumerate(points)))
    pairs = [
        (number, point, role, again)
        for number, (point, passed) in enumerate(zip(points, ways, strict=True))
        for role, points_back in zip(BACK, passed, strict=True)
        for again in points_back
    ]
    tally.second_total = len(pairs)
    offset = SCENARIOS.index(scenario) % every_second
    chosen = [pair for index, pair in enumerate(pairs) if index % every_second == offset]

    def second_level(server: Server, item: tuple[int, tuple[int, str, str, str]]) -> None:
        """Kill the way back at `again`; then recover() to the end, and check."""
        index, (number, point, role, again) = item
        directory = base / f"k{number}-again{index}"
        shutil.copytree(base / f"k{number}", directory)
        where = f"kill at {point}, then in {role} at {again}"
        problem = _run_once(server, scenario, role, directory, again)
        if problem is None:
            problem = _run_once(server, scenario, "recover", directory, None)
        if problem is not None:
            tally.problems.append(f"{where}: {problem}")
            return
        try:
            check(directory, scenario, kills=2)
        except AssertionError as error:
            tally.problems.append(f"{where}: {_why(directory, error)}")
            return
        shutil.rmtree(directory)

    pool.map(second_level, list(enumerate(chosen)))
    tally.second = len(chosen)
    tally.seconds = time.monotonic() - began
    return tally


def _report(tally: Tally, report: Callable[[str], None]) -> None:
    report(tally.line())
    shown = "\n\n".join(tally.problems[:5])
    assert not tally.problems, f"{len(tally.problems)} kill points went wrong:\n{shown}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_point_recovers_and_a_sample_of_kills_during_recovery(
    pool: Pool, tmp_path: Path, scenario: str, sweep_report: Callable[[str], None]
) -> None:
    tally = sweep(pool, tmp_path, scenario, every_second=SECOND_LEVEL_EVERY)
    assert tally.points >= 20, "the scenario passed too few points: was anything counted?"
    _report(tally, sweep_report)


@pytest.mark.long
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_point_recovers_even_when_recovery_is_killed_at_every_point(
    pool: Pool, tmp_path: Path, scenario: str, sweep_report: Callable[[str], None]
) -> None:
    tally = sweep(pool, tmp_path, scenario, every_second=1)
    assert tally.second == tally.second_total
    _report(tally, sweep_report)
