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
from coordination.engine import FlowPlan, PlannedAction
from coordination.orchestration._orchestrator import Orchestrator
from coordination.orchestration._run import WorkflowRun
from coordination.stores._records import StepOutcome
from coordination.testing._faults import FaultKind, FaultPlan

__all__ = ["Prediction", "assert_saga_atomic", "predict", "saga_problems"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """How an instance of a flow under a fault plan must end, under either runner."""

    status: WorkflowStatus
    completed: tuple[str, ...]  #: forward steps that complete, in order
    failed: str | None  #: the step that fails, if any
    #: undos that succeed, in order: a step's key, or `<key>:late<n>` for a late result's
    undone: tuple[str, ...]
    undo_failed: str | None  #: the step whose compensation fails, if any
    attempts: dict[str, int]  #: attempts made per target (`Interface.method`)


def _flow_of(flow: type[Orchestrator[Any, Any]] | FlowPlan) -> FlowPlan:
    return flow if isinstance(flow, FlowPlan) else flow.plan


def _outcome(target: str, retry: Retry, plan: FaultPlan) -> tuple[bool, int, list[int]]:
    """(succeeds?, attempts made, attempts whose result came back late) for one target."""
    late: list[int] = []
    landed = False
    limit = retry.attempts
    if limit is None:  # until it succeeds: the plan's faults are finite
        limit = 1 + max((f.attempt for f in plan if f.target == target), default=0)
    for attempt in range(1, limit + 1):
        fault = plan.fault_for(target, attempt)
        if fault is not None and fault.kind is FaultKind.REFUSAL and landed:
            fault = None  # an applied key is answered, never refused (see FaultPlan)
        if fault is None:
            return True, attempt, late
        landed = landed or fault.lands
        if fault.kind is FaultKind.LATE:
            late.append(attempt)
        if fault.kind is FaultKind.REFUSAL:
            return False, attempt, late
    return False, limit, late


def predict(flow: type[Orchestrator[Any, Any]] | FlowPlan, plan: FaultPlan) -> Prediction:
    """The outcome an instance must reach for `flow` under `plan`, by the engine's one rule.

    Every action of a generation runs to its end; after a failure no later generation
    starts; undo runs newest generation first, siblings in reverse declared order (a failed
    action's late results first, each undone on its own), and stops at the first
    compensation that fails; a failure after the pivot undoes nothing and parks. Assumes
    faults other than LATE fire before the effect (`after_effect=False`), no retry
    deadline, and no business outcome (which branch runs is the participants' to say).
    """
    definition = _flow_of(flow)
    attempts: dict[str, int] = {}
    settled: list[tuple[PlannedAction, bool, list[int]]] = []
    failed: str | None = None
    completed: list[str] = []
    for generation in definition.generations:
        for planned in generation:
            ok, made, late = _outcome(planned.key, planned.step.retry, plan)
            attempts[planned.key] = made
            settled.append((planned, ok, late))
            if ok:
                completed.append(planned.key)
            elif failed is None:
                failed = planned.key
        if failed is not None:
            break
    if failed is None:
        return Prediction(WorkflowStatus.COMPLETED, tuple(completed), None, (), None, attempts)
    if definition.past_pivot(definition.by_key[failed]):
        return Prediction(WorkflowStatus.PARKED, tuple(completed), failed, (), None, attempts)
    undone: list[str] = []
    made_undos: dict[str, int] = {}
    for planned, ok, late in reversed(settled):
        compensation = planned.compensation
        if compensation is None:
            continue
        runs = [] if ok else [f"{planned.key}:late{n}" for n in late]
        if not (planned.undo_output_member is not None and not ok):
            runs.append(planned.key)
        for undo in runs:
            undo_ok, made, _ = _outcome(compensation.qualname, compensation.retry, plan)
            made_undos[compensation.qualname] = made_undos.get(compensation.qualname, 0) + made
            attempts[compensation.qualname] = made_undos[compensation.qualname]
            if not undo_ok:
                return Prediction(
                    WorkflowStatus.COMPENSATION_FAILED,
                    tuple(completed),
                    failed,
                    tuple(undone),
                    planned.key,
                    attempts,
                )
            undone.append(undo)
    return Prediction(
        WorkflowStatus.COMPENSATED, tuple(completed), failed, tuple(undone), None, attempts
    )


def saga_problems(
    run: WorkflowRun[Any], flow: type[Orchestrator[Any, Any]] | FlowPlan
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
    recorded = definition.action  # a planned action, or an item of a mapped step
    actions = {r.key: recorded(r.key) for r in run.steps}
    forward = [r for r in run.steps if actions[r.key] is not None]
    by_key.update({key: found for key, found in actions.items() if found is not None})
    undos = [r for r in run.steps if ":undo" in r.key and ":late" not in r.key]
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
        skipped = [r.key for r in forward if r.outcome is StepOutcome.SKIPPED]
        # A mapped step's items settle it: each counts as its step.
        steps = sorted({by_key[key].step.key for key in done + skipped})
        planned = sorted(compiled.key for compiled in definition.steps)
        if steps != planned or any(r.outcome is StepOutcome.FAILED for r in forward):
            problems.append(
                f"COMPLETED but steps completed were {done} (skipped: {skipped}), not {planned}"
            )
        if undos:
            problems.append(f"COMPLETED but compensations ran: {[r.key for r in undos]}")
        if run.output is None and definition.generations[-1][0].signature.outputs:
            problems.append("COMPLETED without an output")
        return problems

    failures = [r for r in forward if r.outcome is StepOutcome.FAILED]
    if run.status in (WorkflowStatus.COMPENSATED, WorkflowStatus.COMPENSATION_FAILED):
        if not failures:
            problems.append(f"{run.status.name} but no step failed")
        owed: list[str] = []
        for record in _newest_first(forward, by_key):
            compiled = by_key[record.key]
            if compiled.compensation is None:
                continue
            if compiled.undo_output_member is not None and record.outcome is not (
                StepOutcome.COMPLETED
            ):
                continue
            owed.append(record.key)
        ran = [r.key.split(":undo")[0] for r in undos]
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
            if failed_undos and ran[-1] != failed_undos[-1].key.split(":undo")[0]:
                problems.append("undoing went on after a compensation failed")
    return problems


def _newest_first(records: list[Any], by_key: dict[str, PlannedAction]) -> list[Any]:
    """Forward records in undo order: newest generation first, reverse declared order."""

    def order(record: Any) -> tuple[int, int, int]:
        action = by_key[record.key]
        return (-action.generation, -action.index, -(action.item or 0))

    return sorted(records, key=order)


def assert_saga_atomic(
    run: WorkflowRun[Any], flow: type[Orchestrator[Any, Any]] | FlowPlan
) -> None:
    """Fail with every broken saga rule listed, and the journal, if `run` breaks any."""
    problems = saga_problems(run, flow)
    if problems:
        listing = "\n  ".join(problems)
        raise AssertionError(
            f"run {run.workflow_id} ({run.status.name}) breaks the saga rules:\n  {listing}\n"
            f"journal:\n{run.journal.render()}"
        )
