"""Saga: a failed step undoes what completed, newest first, and says what could not be undone."""

from __future__ import annotations

from coordination import EntryKind, WorkflowStatus
from coordination.errors import CompensationFailed
from coordination.stores import StepOutcome
from tests.orchestration.flows import (
    A,
    Alpha,
    B,
    Beta,
    Boom,
    D,
    Delta,
    Gamma,
    Harness,
    Join,
    L,
    Linear,
    Longer,
    Plain,
    R,
    Refused,
    Returns,
    Single,
    Split,
    SplitFlow,
    SplitJoin,
    Start,
    Tail,
    WithPlain,
)


def test_a_failure_undoes_completed_steps_newest_first() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Refused("no"))
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "Gamma.cancel_third",
        "Beta.undo_second",
        "Alpha.undo_first",
    ]
    # output-typed compensations receive the step's output
    assert [c.message for c in h[Beta].named("undo_second")] == [B(n=3)]
    assert [c.message for c in h[Alpha].named("undo_first")] == [A(n=2)]
    assert [c.key for c in h[Alpha].named("undo_first")] == ["wf:Alpha.first:undo"]
    compensated = run.journal.of_kind(EntryKind.COMPENSATED)
    assert [entry.undoes for entry in compensated] == ["Gamma.third", "Beta.second", "Alpha.first"]
    assert "(undoes Alpha.first)" in str(compensated[-1])
    assert run.journal[-1].kind is EntryKind.WORKFLOW_FINISHED
    assert run.journal[-1].detail == "compensated"


def test_an_input_typed_compensation_runs_for_the_failed_step_itself() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Refused("no"))
    h.orchestrator.run(Start(n=1), workflow_id="wf")
    cancel = h[Gamma].named("cancel_third")
    assert [c.message for c in cancel] == [B(n=3)]  # the step's input
    assert [c.key for c in cancel] == ["wf:Gamma.third:undo"]


def test_an_input_typed_compensation_runs_for_a_completed_step_too() -> None:
    h = Harness(Longer)
    h[Delta].fail("fourth", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert [c.message for c in h[Gamma].named("cancel_third")] == [B(n=3)]
    assert run.journal.names(EntryKind.COMPENSATED) == [
        "Gamma.cancel_third",
        "Beta.undo_second",
        "Alpha.undo_first",
    ]


def test_a_completed_run_runs_no_compensation() -> None:
    h = Harness(Longer)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert run.output == D(n=5)
    assert h[Gamma].count("cancel_third") == 0
    assert h[Beta].count("undo_second") == 0
    assert h[Alpha].count("undo_first") == 0


def test_an_output_typed_compensation_does_not_run_for_its_failed_step() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert h[Beta].count("undo_second") == 0
    assert run.journal.names(EntryKind.COMPENSATED) == ["Alpha.undo_first"]


def test_a_step_without_compensation_is_skipped() -> None:
    h = Harness(WithPlain)
    h[Tail].fail("tail", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Plain].count("plain") == 1
    assert run.journal.names(EntryKind.COMPENSATED) == ["Alpha.undo_first"]


def test_nothing_to_undo_is_compensated() -> None:
    h = Harness(Single)
    h[Alpha].fail("first", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert (
        run.journal.of_kind(EntryKind.COMPENSATED, EntryKind.COMPENSATION_FAILED)
        == (run.journal[:0])
    )
    assert run.compensation_error is None
    assert h[Alpha].count("undo_first") == 0


def test_compensation_retries_are_journaled() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Refused("no"))
    h[Beta].fail("undo_second", Boom(), Boom())
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert h[Beta].count("undo_second") == 3
    undo_entries = [e for e in run.journal if e.action == "undo_second"]
    assert [(e.kind, e.attempt) for e in undo_entries] == [
        (EntryKind.STARTED, 1),
        (EntryKind.COMPENSATION_FAILED, 1),
        (EntryKind.RETRIED, 2),
        (EntryKind.STARTED, 2),
        (EntryKind.COMPENSATION_FAILED, 2),
        (EntryKind.RETRIED, 3),
        (EntryKind.STARTED, 3),
        (EntryKind.COMPENSATED, 3),
    ]
    assert all(e.undoes == "Beta.second" for e in undo_entries)
    # the compensation default waits 0.1 s, doubling, through the injected clock
    assert h.clock.sleeps == [0.1, 0.2]
    undo_record = next(s for s in run.steps if s.key == "Beta.second:undo")
    assert undo_record.outcome is StepOutcome.COMPENSATED
    assert undo_record.attempts == 3


def test_a_compensation_that_keeps_failing_stops_the_saga() -> None:
    h = Harness(Linear)
    h[Gamma].fail("third", Refused("no"))
    h[Beta].fail("undo_second", *[Boom("ledger down")] * 5)
    run = h.orchestrator.run(Start(n=1), workflow_id="wf")
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert h[Beta].count("undo_second") == 5  # the compensation default: 5 attempts
    # older steps are not undone: never undo a cause before its effect
    assert h[Alpha].count("undo_first") == 0
    error = run.compensation_error
    assert isinstance(error, CompensationFailed)
    assert error.step == "Beta.second"
    assert error.compensation == "Beta.undo_second"
    assert error.attempts == 5
    assert isinstance(error.__cause__, Boom)
    assert "still applied: Beta.second, Alpha.first" in str(error)
    assert run.error is not None  # the original failure is kept too
    assert run.journal.names(EntryKind.COMPENSATED) == ["Gamma.cancel_third"]
    assert len(run.journal.of_kind(EntryKind.COMPENSATION_FAILED)) == 5
    assert run.journal[-1].detail == "compensation_failed"
    failed = next(s for s in run.steps if s.key == "Beta.second:undo")
    assert failed.outcome is StepOutcome.COMPENSATION_FAILED
    assert failed.error == "Boom: ledger down"


def test_a_failing_last_compensation_names_only_its_step() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", Refused("no"))
    h[Alpha].fail("undo_first", *[Boom()] * 5)
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert str(run.compensation_error).endswith("still applied: Alpha.first")


def test_a_never_retried_compensation_error_fails_at_once() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", Refused("no"))
    h[Alpha].fail("undo_first", Refused("cannot refund"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert h[Alpha].count("undo_first") == 1
    assert h.clock.sleeps == []


def test_a_wrong_compensation_output_fails_the_compensation() -> None:
    h = Harness(Linear)
    h[Beta].fail("second", Refused("no"))
    h[Alpha].script("undo_first", Returns(A(n=0)))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATION_FAILED
    assert h[Alpha].count("undo_first") == 1  # an OutputTypeError is never retried


def test_a_tuple_output_is_undone_by_the_member_its_compensation_takes() -> None:
    h = Harness(SplitJoin)
    h[Join].fail("join", Refused("no"))
    run = h.orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPENSATED
    assert [c.message for c in h[Split].named("unsplit")] == [R(n=22)]
    assert run.journal.names(EntryKind.COMPENSATED) == ["Split.unsplit", "Alpha.undo_first"]


def test_a_last_step_returning_a_tuple_gives_that_tuple() -> None:
    h = Harness(SplitFlow)
    run = h.orchestrator.run(Start(n=1))
    assert run.output == (L(n=12), R(n=22))
    assert run.steps[-1].output == (L(n=12), R(n=22))
