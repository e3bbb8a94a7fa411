"""Requests for an instance another owner drives: a cancel, an outside message that came early.

The owner here is this process's runner on one handle of a SQLite file; the requester is a
runner on another handle of the same file, as another process would be (its live-instance
shortcut does not apply, and the instance is busy). The request is kept durably and
`cancel()` / `send()` return the instance as it stands; the owner carries the request out
at a step boundary (`POLL 0`: the next one) or, when it would otherwise suspend, right after
letting go (`default`: the instance ends sooner than it looks). Under all four entry points.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import WorkflowStatus
from coordination.engine import _requests
from coordination.errors import LeaseLost, StoreError
from coordination.stores import MemoryStore, SQLiteStore
from coordination.testing import ENTRY_POINTS
from tests.test_waits import ORDER, SETTLED, Rig
from tests.waiting_flow import OrderConfirmed, WebhookCheckout, webhook_services

S = WorkflowStatus


@pytest.fixture(params=["next boundary", "after letting go"])
def poll(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "next boundary":
        monkeypatch.setattr(_requests, "REQUEST_POLL", 0.0)  # the owner looks at every boundary
    return str(request.param)


Opener = Callable[..., SQLiteStore]


@pytest.fixture
def handle(tmp_path: Path) -> Iterator[Opener]:
    """Opens handles on one SQLite file (of a given SQLiteStore class); closes them after."""
    opened: list[SQLiteStore] = []

    def open_one(kind: type[SQLiteStore] = SQLiteStore) -> SQLiteStore:
        opened.append(kind(tmp_path / "s.db"))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def rigs(handle: Opener, entry_point: str, during: Any) -> tuple[Rig, Rig, SQLiteStore]:
    owner_store = handle()
    requester = Rig(entry_point, store=handle())
    owner = Rig(entry_point, store=owner_store, during=during)
    return owner, requester, owner_store


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_message_for_an_instance_another_owner_drives_is_kept_and_taken_there(
    handle: Opener, entry_point: str, poll: str
) -> None:
    replies: list[Any] = []

    def webhook_from_elsewhere() -> None:  # the provider answers while authorize runs
        if not replies:
            replies.append(requester.send(SETTLED) or requester.get())

    owner, requester, store = rigs(handle, entry_point, webhook_from_elsewhere)
    owner.start()

    assert replies[0].status is S.RUNNING  # returned as it stood: the owner takes it
    done = owner.get()
    assert done.status is S.COMPLETED
    assert owner.state() == [[("wf:Payments.authorize", 500)], [("wf:Orders.confirm", 500)]]
    if entry_point.startswith("run"):
        assert done.output == OrderConfirmed(order_id="o-1", cents=500)
    assert store.requests("wf") == []  # carried out, then dropped
    assert requester.get().status is S.COMPLETED


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_cancel_of_an_instance_another_owner_drives_stops_it_there_and_undoes(
    handle: Opener, entry_point: str, poll: str
) -> None:
    replies: list[Any] = []

    def cancel_from_elsewhere() -> None:
        if not replies:
            replies.append(requester.runner.cancel("wf"))

    owner, requester, store = rigs(handle, entry_point, cancel_from_elsewhere)
    owner.start()

    assert replies[0].status is S.RUNNING
    done = owner.get()
    assert done.status is S.CANCELLED
    assert owner.state() == [[], []]  # authorized, then released; nothing confirmed
    assert store.requests("wf") == []


def test_a_request_kept_while_the_owner_lets_go_is_carried_out_by_claiming_it_back(
    handle: Opener,
) -> None:
    """The window between a requester finding the instance busy and its owner letting go
    to wait: the request lands there (injected into the owner's release), nobody else
    looks for it, so the owner claims the instance back for it."""

    class LateRequest(SQLiteStore):
        def write(self, write: Any) -> None:
            super().write(write)
            if write.release:
                assert self.request("wf", SETTLED, now=0.0)

    owner = Rig("run", store=handle(LateRequest))
    owner.start()

    done = owner.get()
    assert done.status is S.COMPLETED  # never left WAITING: the message was taken
    assert owner.runner.store.requests("wf") == []


def test_a_request_for_a_finished_instance_is_refused_and_a_killed_owner_s_are_carried_out(
    handle: Opener,
) -> None:
    """The store keeps requests for unfinished instances only; one left for an owner that
    died is carried out by whoever resumes the instance (here: its next send)."""
    rig = Rig("run", store=handle())
    rig.start()
    store = rig.runner.store
    assert rig.get().status is S.WAITING
    assert store.request("wf", None, now=1.0)  # a cancel its (dead) owner never saw
    assert [r.cancel for r in store.requests("wf")] == [True]

    rig.send(SETTLED)  # resumed for the message: the cancel is carried out at its first boundary
    done = rig.get()
    assert done.status is S.CANCELLED
    # The message opened the next generation before the cancel was read: `confirm` runs to
    # its end (the one rule), then what can be undone is (`confirm` declares no undo).
    assert rig.state() == [[], [("wf:Orders.confirm", 500)]]
    assert store.requests("wf") == []
    assert not store.request("wf", None, now=2.0)
    assert not store.request("nobody", None, now=2.0)


def test_dropping_requests_is_fenced() -> None:
    store = MemoryStore()
    store.start_run("wf", "flow", ORDER, owner="a", now=0.0)
    assert store.request("wf", SETTLED, now=1.0)
    assert store.request("wf", None, now=2.0)
    first, second = store.requests("wf")
    assert (first.message, second.message, first.seq < second.seq) == (SETTLED, None, True)
    token = store.claim_run("wf", "b", now=100.0, replacing="a")
    assert token == 2
    with pytest.raises(LeaseLost):
        store.drop_requests("wf", 1, second.seq)
    store.drop_requests("wf", 2, first.seq)
    assert store.requests("wf") == [second]


def test_a_cancel_for_a_run_of_a_batch_stops_that_run_only(handle: Opener, poll: str) -> None:
    """run_many(): the request is carried out by the run it is for, at its next round (or
    once its letting go is committed); the batch's other run goes on (here, to its wait)."""
    requester = WebhookCheckout(*webhook_services(), store=handle())
    replies: list[Any] = []

    def cancel_a_from_elsewhere() -> None:
        if not replies:
            replies.append(requester.cancel("a"))

    owner = WebhookCheckout(*webhook_services(cancel_a_from_elsewhere), store=handle())
    first, second = owner.run_many([ORDER, ORDER], workflow_ids=["a", "b"])

    assert replies[0].status is S.RUNNING
    assert (first.status, second.status) == (S.CANCELLED, S.WAITING)
    assert owner.store.requests("a") == []


@pytest.mark.parametrize(
    "row",
    [
        ("wf", 1.0, '{"type": "coordination_request_evil_xyz:X", "data": {}}'),
        ("wf", "yesterday", None),
        ("wf", 1.0, "not json"),
        ("wf", 1.0, 42),
    ],
    ids=["foreign type", "bad time", "bad json", "not text"],
)
def test_a_hostile_request_row_is_reported_and_never_stops_the_instance(
    handle: Opener,
    row: tuple[Any, ...],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tampered requests row imports nothing and stops nothing: the owner reports it and
    goes on (it looks again later); the row is left as it is."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "coordination_request_evil_xyz.py").write_text(
        "from coordination import Event\nclass X(Event):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(modules))  # importable: reading must still not import it
    rig = Rig("run", store=handle())
    rig.start()
    store = rig.runner.store
    connection = sqlite3.connect(store.path)
    with connection:
        connection.execute("INSERT INTO requests (workflow_id, at, message) VALUES (?, ?, ?)", row)
    connection.close()
    with pytest.raises(StoreError, match="the row is left intact"):
        store.requests("wf")

    rig.send(SETTLED)  # claims it: looks for requests at once, reports, goes on
    assert rig.get().status is S.COMPLETED
    assert "its requests are left for now" in caplog.text
    assert "coordination_request_evil_xyz" not in sys.modules


@pytest.mark.parametrize("request_for", ["cancel", "message"])
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_requests_left_for_a_waiting_instance_nobody_holds_are_carried_out_by_resume_due(
    handle: Opener, entry_point: str, request_for: str
) -> None:
    """The one window a requester cannot close: the owner let go to wait and died before it
    looked for requests (here: the request is written after it let go, as if by then).
    Nobody holds the instance and nothing wakes it, so `resume_due()` (the worker loop)
    finds the request through the owed-work index and carries it out."""
    rig = Rig(entry_point, store=handle())
    rig.start()
    store = rig.runner.store
    assert rig.get().status is S.WAITING
    assert rig.runner.resume_due() == []  # nothing due, nothing requested: nothing moves
    assert store.request("wf", None if request_for == "cancel" else SETTLED, now=1.0)

    (moved,) = rig.runner.resume_due()

    done = rig.get()
    assert moved.status is done.status
    assert done.status is (S.CANCELLED if request_for == "cancel" else S.COMPLETED)
    assert store.requests("wf") == []
    assert rig.runner.resume_due() == []
