"""run(): outputs, the journal, step records and the context an action sees."""

from __future__ import annotations

from coordination import EntryKind, WorkflowStatus
from coordination.stores import StepOutcome
from tests.orchestration.flows import (
    A,
    Alpha,
    B,
    Beta,
    Boom,
    C,
    Fork,
    ForkJoin,
    Gamma,
    Harness,
    J,
    L,
    Linear,
    R,
    Single,
    Start,
)


def test_a_single_last_step_gives_its_output() -> None:
    h = Harness(Linear)
    run = h.orchestrator.run(Start(n=1), workflow_id="wf-1")
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == C(n=4)
    assert run.workflow_id == "wf-1"
    assert run.flow == Linear.plan.name
    assert run.input == Start(n=1)
    assert run.error is None
    assert run.compensation_error is None
    assert h[Beta].named("second")[0].message == A(n=2)


def test_a_parallel_last_group_gives_a_tuple_in_declared_order() -> None:
    h = Harness(Fork)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == (L(n=12), R(n=22))


def test_a_join_receives_both_branches() -> None:
    h = Harness(ForkJoin)
    run = h.orchestrator.run(Start(n=0))
    assert run.output == J(n=(1 + 10) + (1 + 20))


def test_journal_order_and_kinds() -> None:
    h = Harness(Linear)
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    kinds = [entry.kind for entry in run.journal]
    assert kinds == [
        EntryKind.WORKFLOW_STARTED,
        EntryKind.STARTED,
        EntryKind.COMPLETED,
        EntryKind.STARTED,
        EntryKind.COMPLETED,
        EntryKind.STARTED,
        EntryKind.COMPLETED,
        EntryKind.WORKFLOW_FINISHED,
    ]
    assert run.journal.names(EntryKind.COMPLETED) == ["Alpha.first", "Beta.second", "Gamma.third"]
    assert all(entry.correlation_id == "wf" for entry in run.journal)
    assert run.journal[0].participant == Linear.plan.name
    assert run.journal[-1].detail == "completed"
    # causation: each step names the step whose output triggered it
    started = run.journal.of_kind(EntryKind.STARTED)
    assert [entry.causation_id for entry in started] == [None, "Alpha.first", "Beta.second"]


def test_journal_timestamps_come_from_the_injected_clock() -> None:
    h = Harness(Single)
    run = h.orchestrator.run(Start(n=1))
    assert {entry.at for entry in run.journal} == {h.clock.time}
    completed = run.journal.of_kind(EntryKind.COMPLETED)[0]
    assert completed.duration == 0.0


def test_str_of_an_entry_is_one_readable_line() -> None:
    h = Harness(Linear)
    h[Alpha].fail("first", Boom("flaky"))
    run = h.orchestrator.run(Start(n=1))
    lines = [str(entry) for entry in run.journal]
    assert all("\n" not in line for line in lines)
    assert lines[1].startswith("started")
    assert "Alpha.first attempt 1" in lines[1]
    failed = str(run.journal.of_kind(EntryKind.FAILED)[0])
    assert "Alpha.first" in failed
    assert "error: Boom: flaky" in failed
    assert "after 1.000s" in str(run.journal.of_kind(EntryKind.RETRIED)[0])
    assert run.journal.render().splitlines() == lines


def test_step_records() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", Boom())
    # Beta.second makes one attempt (bare @action): the run compensates
    run = h.orchestrator.run(Start(n=1))
    steps = run.steps
    assert [(s.key, s.outcome, s.attempts) for s in steps] == [
        ("Alpha.first", StepOutcome.COMPLETED, 1),
        ("Beta.second", StepOutcome.FAILED, 1),
        ("Alpha.first:undo", StepOutcome.COMPENSATED, 1),
    ]
    assert steps[0].output == A(n=2)
    assert steps[1].output is None
    assert steps[1].error == "Boom"
    # a record's entries are exactly that step's part of the journal
    assert [e.kind for e in steps[0].entries] == [EntryKind.STARTED, EntryKind.COMPLETED]


def test_step_records_of_a_completed_run() -> None:
    h = Harness(Fork)
    run = h.orchestrator.run(Start(n=1))
    assert [(s.key, s.outcome, s.output) for s in run.steps] == [
        ("Alpha.first", StepOutcome.COMPLETED, A(n=2)),
        ("Left.left", StepOutcome.COMPLETED, L(n=12)),
        ("Right.right", StepOutcome.COMPLETED, R(n=22)),
    ]


def test_idempotency_key_is_stable_across_retries_and_attempt_increments() -> None:
    h = Harness(Linear)
    alpha = h[Alpha]
    alpha.fail("first", Boom(), Boom())
    run = h.orchestrator.run(Start(n=1), workflow_id="order-7")
    assert run.status is WorkflowStatus.COMPLETED
    calls = alpha.named("first")
    assert [call.key for call in calls] == ["order-7:Alpha.first"] * 3
    assert [call.attempt for call in calls] == [1, 2, 3]
    beta = h[Beta]
    assert beta.named("second")[0].key == "order-7:Beta.second"


def test_compensation_key_is_the_step_key_plus_undo() -> None:
    h = Harness(Linear)
    alpha = h[Alpha]
    alpha.fail("undo_first", Boom())
    h[Beta].fail("second", Boom())
    run = h.orchestrator.run(Start(n=1), workflow_id="order-8")
    assert run.status is WorkflowStatus.COMPENSATED
    undo = alpha.named("undo_first")
    assert [call.key for call in undo] == ["order-8:Alpha.first:undo"] * 2
    assert [call.attempt for call in undo] == [1, 2]


def test_a_run_that_did_not_complete_has_no_output() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Boom())
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.output is None
    assert run.error is not None


def test_the_step_failed_error_names_the_step_and_keeps_the_cause() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Boom("disk full"))
    run = h.orchestrator.run(Start(n=1))
    error = run.error
    assert error is not None
    assert error.step == "Gamma.third"  # type: ignore[attr-defined]
    assert error.attempts == 1  # type: ignore[attr-defined]
    assert isinstance(error.__cause__, Boom)
    assert "Gamma.third failed after 1 attempt(s): Boom: disk full" in str(error)


def test_repr_of_a_run() -> None:
    h = Harness(Single)
    run = h.orchestrator.run(Start(n=1), workflow_id="x")
    assert "x" in repr(run)
    assert "COMPLETED" in repr(run)
    assert B not in Single.plan.slot_types
