"""The pytest plugin (entry point `pytest11`): fixtures, a seed, and a compensation report.

Installed with the package, it needs no configuration:

- fixtures `virtual_clock` (a `VirtualClock`), `bus` (an `EventBus` on that clock),
  `memory_store` (a fresh `MemoryStore`), `sqlite_store` (a `SQLiteStore` in the test's
  temporary directory, closed afterwards) and `coordination_random` (a seeded jitter source
  for `random=`);
- `--coordination-seed N`: the seed of `coordination_random` and of every hypothesis test
  that sets none (printed in the header, so a failing run can be run again the same way);
- `--coordination-coverage`: at the end, which compensable actions and which compensations
  the session exercised, and which never ran — a saga whose undo no test ever ran is an
  undo nobody knows works.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination._journal import EntryKind, JournalEntry
from coordination._participants import Action, Participant
from coordination.choreography._bus import EventBus
from coordination.engine._observers import EVERYWHERE
from coordination.stores._memory import MemoryStore
from coordination.stores._sqlite import SQLiteStore
from coordination.testing._clock import VirtualClock

__all__ = [
    "bus",
    "coordination_random",
    "memory_store",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
    "pytest_terminal_summary",
    "sqlite_store",
    "virtual_clock",
]

_UNDO_ENDS = (EntryKind.COMPENSATED, EntryKind.COMPENSATION_FAILED)
_SEED = pytest.StashKey[int]()
_COVERAGE = pytest.StashKey["Coverage"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("coordination")
    group.addoption(
        "--coordination-seed",
        type=int,
        default=None,
        help="seed of coordination_random and of hypothesis tests without a seed of their own",
    )
    group.addoption(
        "--coordination-coverage",
        action="store_true",
        default=False,
        help="report which compensable actions and compensations the session exercised",
    )


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("--coordination-seed")
    config.stash[_SEED] = seed if seed is not None else random.SystemRandom().randrange(2**32)
    if config.getoption("--coordination-coverage"):
        coverage = Coverage()
        config.stash[_COVERAGE] = coverage
        EVERYWHERE.append(coverage.observe)
        config.add_cleanup(lambda: EVERYWHERE.remove(coverage.observe))


def pytest_report_header(config: pytest.Config) -> str:
    return f"coordination: --coordination-seed={config.stash[_SEED]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Seed hypothesis tests that have no seed of their own, when a seed was asked for."""
    if config.getoption("--coordination-seed") is None:
        return
    seed = config.stash[_SEED]
    for item in items:
        function = getattr(item, "obj", None)
        if getattr(function, "is_hypothesis_test", False) and (
            getattr(function, "_hypothesis_internal_use_seed", None) is None
        ):
            function._hypothesis_internal_use_seed = seed  # type: ignore[union-attr]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coverage = config.stash.get(_COVERAGE, None)
    if coverage is None:
        return
    terminalreporter.section("coordination coverage")
    for line in coverage.report():
        terminalreporter.write_line(line)


class Coverage:
    """What the session's journals show of each compensable action and its compensation."""

    def __init__(self) -> None:
        self.completed: set[str] = set()
        self.compensated: set[str] = set()

    def observe(self, entry: JournalEntry) -> None:
        if entry.kind is EntryKind.COMPLETED and entry.undoes is None:
            self.completed.add(entry.name)
        elif entry.kind in _UNDO_ENDS and entry.undoes is not None:
            self.compensated.add(entry.undoes)

    def report(self) -> list[str]:
        known = sorted(compensable_actions())
        if not known:
            return ["no compensable action was defined in this session"]
        ran = [name for name in known if name in self.completed]
        undone = [name for name in known if name in self.compensated]
        lines = [
            f"compensable actions that completed: {len(ran)} of {len(known)}",
            f"compensations that ran: {len(undone)} of {len(known)}",
        ]
        never = [name for name in known if name not in self.compensated]
        if never:
            lines.append("never compensated:")
            lines += [f"  {name}" for name in never]
        return lines


def compensable_actions() -> set[str]:
    """`Interface.action` of every action with a compensation defined in this process."""
    found: set[str] = set()
    seen: set[type[Participant]] = set()
    stack: list[type[Participant]] = [Participant]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            for declared in vars(sub).values():
                if isinstance(declared, Action) and declared.undo is not None:
                    found.add(declared.qualname)
    return found


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """A clock that never waits: sleeps advance it at once."""
    return VirtualClock()


@pytest.fixture
def bus(virtual_clock: VirtualClock) -> EventBus:
    """An EventBus on `virtual_clock` (retries and deadlines without waiting)."""
    return EventBus(clock=virtual_clock)


@pytest.fixture
def memory_store() -> MemoryStore:
    """A fresh in-memory store."""
    return MemoryStore()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A durable store in this test's temporary directory, closed afterwards."""
    store = SQLiteStore(tmp_path / "coordination.db")
    yield store
    store.close()


@pytest.fixture
def coordination_random(request: pytest.FixtureRequest) -> Callable[[], float]:
    """A jitter source for `random=`, seeded by `--coordination-seed` (and the test's id)."""
    seed = request.config.stash[_SEED]
    return random.Random(f"{seed}:{request.node.nodeid}").random
