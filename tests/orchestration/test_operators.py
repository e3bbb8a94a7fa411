"""Operator actions: retry a parked or compensation-failed run, cancel an unfinished one."""

from __future__ import annotations

import pytest

from coordination import WorkflowStatus
from coordination.errors import InvalidTransition, UsageError, WorkflowNotFound
from tests.orchestration.flows import Alpha, Beta, Boom, Gamma, Harness, Linear, Start

#: Each test on a MemoryStore and on a PostgresStore (tests/orchestration/conftest.py).
pytestmark = pytest.mark.usefixtures("each_store")


def test_retry_goes_on_undoing_after_a_failed_compensation() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Boom("third"))
    h[Beta].fail("undo_second", *[Boom("undo")] * 5)  # all of its 5 attempts
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert h[Alpha].count("undo_first") == 0  # never undo a cause before its effect

    again = h.orchestrator.retry("wf")

    assert again.status is WorkflowStatus.COMPENSATED
    assert h[Beta].count("undo_second") == 6
    assert h[Alpha].count("undo_first") == 1
    assert h[Gamma].count("cancel_third") == 1  # already done: not repeated
    keys = [s.key for s in again.steps if ":undo" in s.key]
    assert keys == [
        "Gamma.third:undo",
        "Beta.second:undo",
        "Beta.second:undo:retry1",
        "Alpha.first:undo",
    ]


def test_retry_of_a_parked_run_resumes_it() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    from coordination.stores import Finish, Write

    stored = h.store.get_run("wf")
    token = h.store.claim_run("wf", "an operator", now=2.0)
    assert stored is not None
    assert token is not None
    h.store.write(Write("wf", token, 2.0, finish=Finish(WorkflowStatus.PARKED)))  # as recover()

    run = h.orchestrator.retry("wf")

    assert run.status is WorkflowStatus.COMPLETED
    assert h[Alpha].count("first") == 1
    assert h[Beta].count("second") == 2


def test_retry_refuses_runs_that_need_no_operator() -> None:
    h = Harness(Linear)
    h.orchestrator.run(Start(n=1), workflow_id="wf")
    with pytest.raises(UsageError, match="PARKED or COMPENSATION_FAILED"):
        h.orchestrator.retry("wf")
    with pytest.raises(WorkflowNotFound):
        h.orchestrator.retry("missing")


def test_cancel_undoes_an_interrupted_run_and_ends_cancelled() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")

    run = h.orchestrator.cancel("wf")

    assert run.status is WorkflowStatus.CANCELLED
    assert h[Beta].count("undo_second") == 1
    assert h[Alpha].count("undo_first") == 1
    assert h[Gamma].count("third") == 1  # cancelling never runs forward steps


def test_cancel_of_a_run_held_by_a_live_owner_leaves_it_a_request() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        h.orchestrator.run(Start(n=1), workflow_id="wf")
    import os
    import socket

    from coordination.engine._ownership import _kernel_start, owner_alive

    parent = os.getppid()  # a live process on this host that is not this one
    live = f"{socket.gethostname()}:{parent}:{_kernel_start(parent)}"
    assert owner_alive(live) is True
    assert h.store.claim_run("wf", live, now=h.clock.now()) is not None
    kept = h.orchestrator.cancel("wf")  # returned as it stands; its owner stops it
    assert kept.status is WorkflowStatus.RUNNING
    assert [request.cancel for request in h.store.requests("wf")] == [True]
    # Its lease runs out (it stopped or hangs; a live owner's heartbeat would renew it):
    # then the run is taken over and cancelled, and the stopped owner is fenced out.
    h.clock.sleep(h.store.lease + 1)
    assert h.orchestrator.cancel("wf").status is WorkflowStatus.CANCELLED


def test_a_completed_run_cannot_be_cancelled() -> None:
    h = Harness(Linear)
    h.orchestrator.run(Start(n=1), workflow_id="wf")
    with pytest.raises(UsageError, match="already finished COMPLETED"):
        h.orchestrator.cancel("wf")


def test_cancel_says_what_to_do_instead_for_every_finished_status() -> None:
    """cancel() never leaks the internal InvalidTransition: operators get a UsageError."""
    h = Harness(Linear)
    h[Gamma].fail("third", Boom("third"))
    h[Beta].fail("undo_second", *[Boom("undo")] * 5)
    assert h.orchestrator.run(Start(n=1), workflow_id="stuck").status is (
        WorkflowStatus.COMPENSATION_FAILED
    )
    with pytest.raises(UsageError, match="retry"):
        h.orchestrator.cancel("stuck")
    h2 = Harness(Linear)
    h2[Gamma].fail("third", Boom("third"))
    assert h2.orchestrator.run(Start(n=1), workflow_id="undone").status is (
        WorkflowStatus.COMPENSATED
    )
    with pytest.raises(UsageError, match="already finished COMPENSATED"):
        h2.orchestrator.cancel("undone")
    assert not issubclass(UsageError, InvalidTransition)
