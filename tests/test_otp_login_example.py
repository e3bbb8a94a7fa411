"""The OTP login example: every end a business outcome, under both runners."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordination import EntryKind, WorkflowStatus
from coordination.choreography import Choreography, EventBus
from coordination.stores import SQLiteStore
from coordination.testing import ENTRY_POINTS, VirtualClock, journal_problems
from examples.otp_login import (
    CODE_TTL,
    CodeEntered,
    CodeStore,
    LoggedIn,
    LoginExpired,
    LoginRefused,
    LoginRequested,
    OtpLogin,
    SessionBook,
    SmsGateway,
)

ROOT = Path(__file__).resolve().parent.parent
REQUEST = LoginRequested(user="ada", phone="+44 20 7946 0000")


class Rig:
    def __init__(self, entry_point: str, store: Any = None) -> None:
        self.entry_point = entry_point
        self.clock = VirtualClock()
        self.codes = CodeStore({"ada": "424242"})
        parts = (self.codes, SmsGateway(), SessionBook())
        if entry_point.startswith("run"):
            self.runner: Any = OtpLogin(*parts, clock=self.clock, store=store)
        else:
            self.runner = Choreography(
                EventBus(clock=self.clock), *parts, flow=OtpLogin, clock=self.clock, store=store
            )

    def start(self) -> None:
        point, runner = self.entry_point, self.runner
        if point == "run":
            runner.run(REQUEST, workflow_id="login")
        elif point == "run_async":
            asyncio.run(runner.run_async(REQUEST, workflow_id="login"))
        elif point == "publish":
            runner.publish(REQUEST, correlation_id="login")
        else:
            asyncio.run(runner.publish_async(REQUEST, correlation_id="login"))

    def enter(self, code: str) -> None:
        if self.entry_point.startswith("run"):
            self.runner.send("login", CodeEntered(code=code))
        else:
            self.runner.publish(CodeEntered(code=code), correlation_id="login")

    def view(self) -> Any:
        if self.entry_point.startswith("run"):
            return self.runner.get("login")
        return self.runner.monitor.get("login")


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("typed", "last"),
    [("424242", "Sessions.open"), ("000000", "Sessions.refuse"), (None, "Sessions.expire")],
)
def test_every_login_completes_with_an_outcome(
    entry_point: str, typed: str | None, last: str
) -> None:
    rig = Rig(entry_point)
    rig.start()
    assert rig.view().status is WorkflowStatus.WAITING
    if typed is None:
        rig.clock.advance(CODE_TTL.total_seconds())
        assert len(rig.runner.resume_due()) == 1
    else:
        rig.enter(typed)
    ended = rig.view()
    assert ended.status is WorkflowStatus.COMPLETED
    completed = ended.journal.names(EntryKind.COMPLETED)
    ends = {"Sessions.open", "Sessions.refuse", "Sessions.expire"}
    assert [name for name in completed if name in ends] == [last]
    assert ended.journal.names(EntryKind.FAILED) == []
    assert journal_problems(ended.journal) == []


def test_the_caller_gets_a_value_back() -> None:
    outputs = []
    for typed in ("424242", "000000", None):
        rig = Rig("run")
        rig.start()
        if typed is None:
            rig.clock.advance(CODE_TTL.total_seconds())
            (run,) = rig.runner.resume_due()
        else:
            run = rig.runner.send("login", CodeEntered(code=typed))
        outputs.append(type(run.output))
    assert outputs == [LoggedIn, LoginRefused, LoginExpired]


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_an_expiry_on_sqlite_fires_once_in_another_process(runner: str, tmp_path: Path) -> None:
    path = tmp_path / "logins.db"
    with SQLiteStore(path) as store:
        Rig(runner, store).start()
    with SQLiteStore(path) as store:
        rig = Rig(runner, store)
        rig.clock.advance(CODE_TTL.total_seconds())
        assert len(rig.runner.resume_due()) == 1
        assert rig.runner.resume_due() == []
        assert rig.view().status is WorkflowStatus.COMPLETED


def test_the_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.otp_login"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.count("COMPLETED") == 6
    assert "LoginExpired" in done.stdout
