"""Saga invariants and an oracle: what a run *must* look like, checked from its record.

`predict()` works out from a flow and a fault plan alone which steps complete, which undo,
and how the run ends; `saga_problems()` checks a finished run against the saga rules
(all effects committed, or every committed effect undone newest first). Property tests
combine them with hypothesis-generated fault plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordination._journal import EntryKind
from coordination._retry import Retry
from coordination._status import WorkflowStatus
from coordination.orchestration._flow import CompiledStep, FlowDefinition
from coordination.orchestration._orchestrator import Orchestrator
from coordination.orchestration._run import WorkflowRun
from coordination.stores._records import StepOutcome
from coordination.testing._faults import FaultKind, FaultPlan

__all__ = ["Prediction", "assert_saga_atomic", "predict", "saga_problems"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """How a run of a flow under a fault plan must end (sequential `run()` semantics)."""

    status: WorkflowStatus
    completed: tuple[str, ...]  #: forward steps that complete, in order
    failed: str | None  #: the step that fails, if any
    undone: tuple[str, ...]  #: steps whose compensation succeeds, in order
    undo_failed: str | None  #: the step whose compensation fails, if any
    attempts: dict[str, int]  #: attempts made per target (`Interface.method`)


def _flow_of(flow: type[Orchestrator[Any, Any]] | FlowDefinition) -> FlowDefinition:
    return flow if isinstance(flow, FlowDefinition) else flow.flow


def _outcome(target: str, retry: Retry, plan: FaultPlan) -> tuple[bool, int]:
    """(succeeds?, attempts made) for one target whose faults are all raised before effect."""
    for attempt in range(1, retry.attempts + 1):
        fault = plan.fault_for(target, attempt)
        if fault is None:
            return True, attempt
        if fault.kind is FaultKind.REFUSAL:
            return False, attempt
    return False, retry.attempts


def predict(
    flow: type[Orchestrator[Any, Any]] | FlowDefinition,
    plan: FaultPlan,
    *,
    concurrent: bool = False,
) -> Prediction:
    """The outcome a run must reach for `flow` under `plan`.

    By default, sequential `run()` semantics: in a parallel group, no branch starts after
    one failed. With `concurrent=True` (`run_async()`, or a group on worker threads) every
    branch of the failing group runs; the status and the set of undone steps are still
    determined, but the order of undos among siblings is not. Assumes faults fire before
    the effect (`after_effect=False`) and no retry deadline.
    """
    definition = _flow_of(flow)
    attempts: dict[str, int] = {}
    settled: list[tuple[CompiledStep, bool]] = []
    failed: str | None = None
    completed: list[str] = []
    for group in definition.groups:
        for compiled in group:
            ok, made = _outcome(compiled.key, compiled.step.retry, plan)
            attempts[compiled.key] = made
            settled.append((compiled, ok))
            if ok:
                completed.append(compiled.key)
            elif failed is None:
                failed = compiled.key
                if not concurrent:
                    break
        if failed is not None:
            break
    if failed is None:
        return Prediction(WorkflowStatus.COMPLETED, tuple(completed), None, (), None, attempts)
    undone: list[str] = []
    for compiled, ok in reversed(settled):
        compensation = compiled.compensation
        if compensation is None or (compiled.undo_output_member is not None and not ok):
            continue
        undo_ok, made = _outcome(compensation.qualname, compensation.retry, plan)
        attempts[compensation.qualname] = made
        if not undo_ok:
            return Prediction(
                WorkflowStatus.COMPENSATION_FAILED,
                tuple(completed),
                failed,
                tuple(undone),
                compiled.key,
                attempts,
            )
        undone.append(compiled.key)
    return Prediction(
        WorkflowStatus.COMPENSATED, tuple(completed), failed, tuple(undone), None, attempts
    )


def saga_problems(
    run: WorkflowRun[Any], flow: type[Orchestrator[Any, Any]] | FlowDefinition
) -> list[str]:
    """Every way `run` breaks the saga rules (empty when it keeps them all).

    COMPLETED: every step completed once and nothing was undone. COMPENSATED: every step
    that completed (output-typed undo) or started (input-typed undo) was undone, newest
    first, once. COMPENSATION_FAILED: the same, up to the undo that failed, and only when
    one did. The journal starts and ends with the workflow's own entries.
    """
    definition = _flow_of(flow)
    problems: list[str] = []
    by_key = {compiled.key: compiled for compiled in definition.steps}
    forward = [r for r in run.steps if r.key in by_key]
    undos = [r for r in run.steps if r.key.endswith(":undo") and ":late" not in r.key]
    journal = run.journal
    if not journal or journal[0].kind is not EntryKind.WORKFLOW_STARTED:
        problems.append("journal does not start with workflow_started")
    if run.status.finished and journal and journal[-1].kind is not EntryKind.WORKFLOW_FINISHED:
        problems.append("journal of a finished run does not end with workflow_finished")
    keys = [r.key for r in run.steps]
    if len(keys) != len(set(keys)):
        problems.append(f"a step was recorded twice: {keys}")

    if run.status is WorkflowStatus.COMPLETED:
        done = [r.key for r in forward if r.outcome is StepOutcome.COMPLETED]
        if sorted(done) != sorted(by_key):
            problems.append(f"COMPLETED but steps completed were {done}, not {sorted(by_key)}")
        if undos:
            problems.append(f"COMPLETED but compensations ran: {[r.key for r in undos]}")
        if run.output is None and definition.groups[-1][0].signature.outputs:
            problems.append("COMPLETED without an output")
        return problems

    failures = [r for r in forward if r.outcome is StepOutcome.FAILED]
    if run.status in (WorkflowStatus.COMPENSATED, WorkflowStatus.COMPENSATION_FAILED):
        if not failures:
            problems.append(f"{run.status.name} but no step failed")
        owed: list[str] = []
        for record in reversed(forward):
            compiled = by_key[record.key]
            if compiled.compensation is None:
                continue
            if compiled.undo_output_member is not None and record.outcome is not (
                StepOutcome.COMPLETED
            ):
                continue
            owed.append(record.key)
        ran = [r.key.removesuffix(":undo") for r in undos]
        failed_undos = [r for r in undos if r.outcome is StepOutcome.COMPENSATION_FAILED]
        if run.status is WorkflowStatus.COMPENSATED:
            if ran != owed:
                problems.append(f"undid {ran}, but newest first it owed {owed}")
            if failed_undos:
                problems.append("COMPENSATED although a compensation failed")
        else:
            if not failed_undos and not any(
                r.outcome is StepOutcome.COMPENSATION_FAILED for r in run.steps
            ):
                problems.append("COMPENSATION_FAILED but no compensation failed")
            if ran != owed[: len(ran)]:
                problems.append(f"undid {ran}, which is not the newest-first order {owed}")
            if failed_undos and ran[-1] != failed_undos[-1].key.removesuffix(":undo"):
                problems.append("undoing went on after a compensation failed")
    return problems


def assert_saga_atomic(
    run: WorkflowRun[Any], flow: type[Orchestrator[Any, Any]] | FlowDefinition
) -> None:
    """Fail with every broken saga rule listed, and the journal, if `run` breaks any."""
    problems = saga_problems(run, flow)
    if problems:
        listing = "\n  ".join(problems)
        raise AssertionError(
            f"run {run.workflow_id} ({run.status.name}) breaks the saga rules:\n  {listing}\n"
            f"journal:\n{run.journal.render()}"
        )
