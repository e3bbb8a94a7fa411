"""Retry: which errors earn another attempt, how long the runner waits, and when it stops."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from coordination import EntryKind, Retry, WorkflowStatus
from coordination.errors import OutputTypeError
from coordination.orchestration import Orchestrator, step
from tests.orchestration.flows import (
    A,
    Alpha,
    B,
    Boom,
    Guarded,
    GuardedFlow,
    Harness,
    Refused,
    Returns,
    Single,
    Start,
    UnguardedFlow,
)


class Quick(Orchestrator[Start, A]):
    """Alpha.first with a retry policy of its own for this flow."""

    steps = (step(Alpha.first, retry=Retry(attempts=5, backoff=0.5)),)


class Once(Orchestrator[Start, A]):
    steps = (step(Alpha.first, retry=Retry(attempts=1)),)


class Patient(Orchestrator[Start, A]):
    steps = (step(Alpha.first, retry=Retry(attempts=10, backoff=1.0, deadline=2.5)),)


class Capped(Orchestrator[Start, A]):
    steps = (step(Alpha.first, retry=Retry(attempts=4, backoff=1.0, max_backoff=1.5)),)


class Picky(Orchestrator[Start, A]):
    steps = (step(Alpha.first, retry=Retry(attempts=3, retry_on=(ConnectionError,))),)


def test_transient_errors_are_retried_up_to_attempts() -> None:
    h = Harness(Single)  # Alpha.first: Retry(attempts=3, backoff=1.0)
    h[Alpha].fail("first", Boom(), Boom(), Boom())
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Alpha].count("first") == 3
    assert run.steps[0].attempts == 3
    assert run.journal.names(EntryKind.FAILED) == ["Alpha.first"] * 3
    retried = run.journal.of_kind(EntryKind.RETRIED)
    assert [entry.attempt for entry in retried] == [2, 3]


def test_a_step_succeeding_on_its_last_attempt_completes() -> None:
    h = Harness(Single)
    h[Alpha].fail("first", Boom(), Boom())
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == A(n=2)
    assert run.steps[0].attempts == 3


@pytest.mark.parametrize(
    "error",
    [Refused("card declined"), TypeError("bad call")],
    ids=["NonRetryable", "TypeError"],
)
def test_never_retried_errors(error: Exception) -> None:
    h = Harness(Single)
    h[Alpha].fail("first", error)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Alpha].count("first") == 1
    assert h.clock.sleeps == []
    assert run.journal.of_kind(EntryKind.RETRIED) == run.journal[:0]


def test_validation_errors_are_never_retried() -> None:
    try:
        Start(n="not a number")  # type: ignore[arg-type]
    except ValidationError as error:
        invalid = error
    h = Harness(Single)
    h[Alpha].fail("first", invalid)
    run = h.orchestrator.run(Start(n=1))
    assert h[Alpha].count("first") == 1
    assert run.status is WorkflowStatus.COMPENSATED


def test_errors_outside_retry_on_are_not_retried() -> None:
    h = Harness(Picky)
    h[Alpha].fail("first", ConnectionError(), Boom())
    run = h.orchestrator.run(Start(n=1))
    assert h[Alpha].count("first") == 2  # ConnectionError retried, Boom not
    assert run.status is WorkflowStatus.COMPENSATED


def test_backoff_waits_go_through_the_clock() -> None:
    h = Harness(Single)  # backoff 1.0, jitter source fixed at 0.5 (no jitter)
    h[Alpha].fail("first", Boom(), Boom())
    h.orchestrator.run(Start(n=1))
    assert h.clock.sleeps == pytest.approx([1.0, 2.0])


@pytest.mark.parametrize(("draw", "expected"), [(0.0, [0.9, 1.8]), (1.0, [1.1, 2.2])])
def test_jitter_comes_from_the_injected_random(draw: float, expected: list[float]) -> None:
    h = Harness(Single, random=lambda: draw)
    h[Alpha].fail("first", Boom(), Boom())
    h.orchestrator.run(Start(n=1))
    assert h.clock.sleeps == pytest.approx(expected)


def test_backoff_is_capped_by_max_backoff() -> None:
    h = Harness(Capped, random=lambda: 1.0)
    h[Alpha].fail("first", Boom(), Boom(), Boom())
    h.orchestrator.run(Start(n=1))
    assert h.clock.sleeps == pytest.approx([1.1, 1.5, 1.5])


def test_retry_deadline_stops_further_attempts() -> None:
    h = Harness(Patient)  # waits 1 then 2: the second wait would end past 2.5 s
    h[Alpha].fail("first", *[Boom()] * 10)
    run = h.orchestrator.run(Start(n=1))
    assert h[Alpha].count("first") == 2
    assert h.clock.sleeps == pytest.approx([1.0])
    last_failure = run.journal.of_kind(EntryKind.FAILED)[-1]
    assert last_failure.detail is not None
    assert "deadline" in last_failure.detail


def test_ctx_deadline_is_the_step_deadline_without_a_timeout() -> None:
    h = Harness(Patient)
    start = h.clock.monotonic()
    h.orchestrator.run(Start(n=1))
    assert h[Alpha].named("first")[0].deadline == pytest.approx(start + 2.5)


def test_ctx_deadline_is_none_without_timeout_or_deadline() -> None:
    h = Harness(Single)
    h.orchestrator.run(Start(n=1))
    assert h[Alpha].named("first")[0].deadline is None


def test_step_retry_overrides_the_actions() -> None:
    h = Harness(Quick)
    h[Alpha].fail("first", *[Boom()] * 4)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert h[Alpha].count("first") == 5
    assert h.clock.sleeps == pytest.approx([0.5, 1.0, 2.0, 4.0])

    h = Harness(Once)
    h[Alpha].fail("first", Boom())
    assert h.orchestrator.run(Start(n=1)).status is WorkflowStatus.COMPENSATED
    assert h[Alpha].count("first") == 1


def test_an_actions_timeout_runs_it_on_a_worker_thread() -> None:
    h = Harness(GuardedFlow)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    call = h[Guarded].named("guarded")[0]
    assert call.thread is not threading.current_thread()
    assert call.thread.daemon
    assert call.deadline == pytest.approx(h.clock.monotonic() + 5.0)


def test_step_timeout_overrides_the_actions() -> None:
    h = Harness(UnguardedFlow)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    call = h[Guarded].named("guarded")[0]
    assert call.thread is threading.current_thread()
    assert call.deadline is None
    assert UnguardedFlow.plan.steps[0].step.timeout is None
    assert GuardedFlow.plan.steps[0].step.timeout == 5.0


def test_a_wrong_output_type_is_an_output_type_error_and_not_retried() -> None:
    h = Harness(Single)
    h[Alpha].script("first", Returns(B(n=1)))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Alpha].count("first") == 1
    assert run.error is not None
    assert isinstance(run.error.__cause__, OutputTypeError)
    assert "Alpha.first returned B, not its declared output A" in str(run.error.__cause__)
    assert h[Alpha].count("undo_first") == 0  # the step failed: nothing completed to undo


def test_returning_none_from_an_action_that_returns_a_message_fails() -> None:
    h = Harness(Single)
    h[Alpha].script("first", Returns(None))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert isinstance(run.error.__cause__, OutputTypeError)  # type: ignore[union-attr]


class Bounded(Orchestrator[Start, A]):
    """Alpha.first as Single has it, plus a step deadline far away: never made inline."""

    steps = (step(Alpha.first, retry=Retry(attempts=3, backoff=1.0, deadline=1_000.0)),)


def _journal_facts(flow: type[Orchestrator[Start, A]], *errors: Exception) -> list[object]:
    h = Harness(flow)
    h[Alpha].fail("first", *errors)
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    facts: list[object] = [run.status, [(s.key, s.outcome, s.attempts) for s in run.steps]]
    facts += [
        (e.kind, e.action, e.causation_id, e.attempt, e.error, e.detail)
        if e.kind in (EntryKind.WORKFLOW_STARTED, EntryKind.WORKFLOW_FINISHED)  # the flow
        else (e.kind, e.participant, e.action, e.causation_id, e.attempt, e.error, e.detail)
        for e in run.journal
    ]
    return facts


@pytest.mark.parametrize(
    "errors",
    [(), (Boom(),), (Boom(), Boom(), Boom()), (Refused("no"),)],
    ids=["succeeds", "fails-once", "fails-for-good", "refused"],
)
def test_a_first_attempt_made_inline_is_journaled_and_recorded_as_any_attempt(
    errors: tuple[Exception, ...],
) -> None:
    # Single's first attempt is made inline (sync, no timeout, no deadline); Bounded's by an
    # ActionRun from the start. Whatever it does, the records and the journal are the same.
    assert _journal_facts(Single, *errors) == _journal_facts(Bounded, *errors)
