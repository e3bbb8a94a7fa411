"""The pytest plugin: fixtures, --coordination-seed and --coordination-coverage."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USER_TEST = """
from abc import abstractmethod

from coordination import Context, Event, Participant, WorkflowStatus, action
from coordination.choreography import Choreography
from coordination.orchestration import Orchestrator, step
from coordination.testing import FaultKind, Fault, FaultPlan, fake


class Booked(Event):
    trip: str


class Asked(Event):
    trip: str


class Paid(Event):
    trip: str


class Hotel(Participant):
    @action
    @abstractmethod
    def book(self, asked: Asked, ctx: Context) -> Booked: ...

    @book.compensation
    @abstractmethod
    def cancel(self, booked: Booked, ctx: Context) -> None: ...


class Bank(Participant):
    @action
    @abstractmethod
    def pay(self, booked: Booked, ctx: Context) -> Paid: ...


class Trip(Orchestrator[Asked, Paid]):
    steps = (step(Hotel.book), step(Bank.pay))


def test_fixtures(virtual_clock, bus, memory_store, sqlite_store, coordination_random):
    refused = FaultPlan.of(Fault("Bank.pay", 1, FaultKind.REFUSAL))
    trip = Trip(fake(Hotel), fake(Bank, faults=refused), store=sqlite_store,
                clock=virtual_clock, random=coordination_random)
    assert trip.run(Asked(trip="t")).status is WorkflowStatus.COMPENSATED
    flow = Choreography(bus, fake(Hotel), fake(Bank), flow=Trip, store=memory_store)
    flow.publish(Asked(trip="u"), correlation_id="u")
    assert flow.monitor.get("u").status is WorkflowStatus.COMPLETED
    print("jitter", coordination_random())
"""


def test_the_fixtures_work_in_a_project_with_no_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["coordination: --coordination-seed=*"])


def test_the_seed_makes_the_jitter_the_same_again(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    first = pytester.runpytest_subprocess("--coordination-seed=7", "-s")
    again = pytester.runpytest_subprocess("--coordination-seed=7", "-s")
    other = pytester.runpytest_subprocess("--coordination-seed=8", "-s")

    def jitter(result: pytest.RunResult) -> str:
        return next(line for line in result.outlines if "jitter 0" in line or "jitter 1" in line)

    assert jitter(first) == jitter(again) != jitter(other)


def test_the_seed_seeds_hypothesis_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_drawn="""
from hypothesis import given, settings, strategies as st

seen = []

@settings(max_examples=5, database=None)
@given(st.integers())
def test_draws(n):
    seen.append(n)

def test_report():
    print("drawn", seen)
"""
    )
    first = pytester.runpytest_subprocess("--coordination-seed=3", "-s")
    again = pytester.runpytest_subprocess("--coordination-seed=3", "-s")

    def drawn(result: pytest.RunResult) -> str:
        return next(line for line in result.outlines if "drawn [" in line)

    assert drawn(first) == drawn(again)


def test_coverage_names_the_compensations_that_never_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=USER_TEST.replace(
            "def test_fixtures(",
            "def test_only_success(virtual_clock):\n"
            "    Trip(fake(Hotel), fake(Bank), clock=virtual_clock).run(Asked(trip='v'))\n\n\n"
            "def _unused(",
        )
    )
    result = pytester.runpytest_subprocess("--coordination-coverage")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*coordination coverage*",
            "compensable actions that completed: 1 of 1",
            "compensations that ran: 0 of 1",
            "never compensated:",
            "  Hotel.book",
        ]
    )


@pytest.mark.long
def test_a_project_installed_from_the_wheel_gets_the_plugin(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True, timeout=300,
    )  # fmt: skip
    wheel = next(dist.glob("coordination-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel), "pytest", "hypothesis"],
        check=True, timeout=600,
    )  # fmt: skip
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_user.py").write_text(USER_TEST)
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "--coordination-coverage"],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compensations that ran: 1 of 1" in done.stdout
