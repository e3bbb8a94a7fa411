"""Invariants any run of any flow keeps, each failure said in words a user can act on.

- `journal_problems`: the journal is well formed — it opens with `workflow_started`, closes
  once with `workflow_finished` (only a late result's undo may follow), every attempt that
  started ended (unless the instance is still running or was taken over after a crash),
  attempt numbers of one action only grow (across crashes too), one correlation id
  throughout, and every causation names something that happened before it (a completed
  action, a published message, or the start).
- `effect_problems`: what fakes (`fake()`) applied agrees with how the instance ended — no
  action applied twice in one instance (under two keys: a step re-run as a new effect),
  nothing compensable left applied on a COMPENSATED instance, nothing undone on a
  COMPLETED one.
- `status_problems`: a choreography's monitor says what its store says.
- `assert_invariants` checks them all (and the saga rules, for a `WorkflowRun`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from coordination._journal import EntryKind, Journal
from coordination._participants import Compensation, Participant
from coordination._status import WorkflowStatus
from coordination.testing._fakes import Fake

__all__ = ["assert_invariants", "effect_problems", "journal_problems", "status_problems"]

#: What ends an attempt that started.
_ENDS = frozenset(
    {
        EntryKind.COMPLETED,
        EntryKind.FAILED,
        EntryKind.COMPENSATED,
        EntryKind.COMPENSATION_FAILED,
    }
)
#: What may follow `workflow_finished`: a late result, and the undo it owes.
_AFTER_END = frozenset(
    {
        EntryKind.LATE_RESULT,
        EntryKind.STARTED,
        EntryKind.FAILED,
        EntryKind.RETRIED,
        EntryKind.COMPENSATED,
        EntryKind.COMPENSATION_FAILED,
        EntryKind.PUBLISHED,
        EntryKind.RECOVERED,
        EntryKind.WORKFLOW_FINISHED,  # a late undo that failed ends it COMPENSATION_FAILED
    }
)


def journal_problems(journal: Journal | Sequence[Any], *, finished: bool = True) -> list[str]:
    """Every way `journal` is not well formed (empty when it is).

    `finished`: the instance ended (an unfinished one may have attempts in flight).
    """
    entries = list(journal)
    problems: list[str] = []
    if not entries:
        return ["the journal is empty: not even workflow_started"]
    if entries[0].kind is not EntryKind.WORKFLOW_STARTED:
        problems.append(f"the journal opens with {entries[0].kind.value}, not workflow_started")
    correlations = {entry.correlation_id for entry in entries}
    if len(correlations) > 1:
        problems.append(f"one instance, several correlation ids: {sorted(correlations)}")
    finishes = [i for i, e in enumerate(entries) if e.kind is EntryKind.WORKFLOW_FINISHED]
    if finished and not finishes:
        problems.append("the instance ended but its journal has no workflow_finished")
    if finishes:
        late_undo = entries[finishes[0] + 1 :]
        strays = [e for e in late_undo if e.kind not in _AFTER_END or _forward_after_end(e)]
        if strays:
            problems.append(
                f"after workflow_finished, only a late result and its undo may follow; "
                f"found {strays[0].kind.value} {strays[0].name}"
            )
        if len(finishes) > 1 and not _ends_late_undo(entries, finishes):
            problems.append(f"workflow_finished {len(finishes)} times")
    problems += _attempt_problems(entries, finished)
    problems += _causation_problems(entries)
    return problems


def _forward_after_end(entry: Any) -> bool:
    """A forward action's attempt after the end (only late undos may run then)."""
    return entry.kind in (EntryKind.STARTED, EntryKind.FAILED, EntryKind.RETRIED) and (
        entry.undoes is None
    )


def _ends_late_undo(entries: list[Any], finishes: list[int]) -> bool:
    """A second finish is the failure of a late result's undo (COMPENSATION_FAILED)."""
    return len(finishes) == 2 and entries[finishes[1]].detail == "compensation_failed"


def _attempt_problems(entries: list[Any], finished: bool) -> list[str]:
    problems: list[str] = []
    open_attempts: dict[tuple[str, int], int] = {}
    last_attempt: dict[str, int] = {}
    recovered = False
    for position, entry in enumerate(entries):
        if entry.kind is EntryKind.RECOVERED:
            recovered = True
            open_attempts.clear()  # its process died: those attempts end nowhere
            continue
        if entry.kind is EntryKind.STARTED:
            previous = last_attempt.get(entry.name, 0)
            # A compensation may run more than once (a late result's undo, then the step's
            # own): each run of attempts counts from 1. An action runs once per instance.
            if entry.attempt <= previous and not recovered and entry.undoes is None:
                problems.append(
                    f"{entry.name} attempt {entry.attempt} started after attempt {previous}: "
                    f"attempt numbers only grow"
                )
            last_attempt[entry.name] = max(previous, entry.attempt)
            open_attempts[(entry.name, entry.attempt)] = position
        elif entry.kind in _ENDS:
            open_attempts.pop((entry.name, entry.attempt), None)
    if finished:
        for (name, attempt), _ in sorted(open_attempts.items(), key=lambda item: item[1]):
            problems.append(f"{name} attempt {attempt} started and never ended")
    return problems


def _causation_problems(entries: list[Any]) -> list[str]:
    """Each causation names an action that completed (or started: an undo), a message
    published before it, or the start."""
    problems: list[str] = []
    actions: set[str] = set()
    messages: set[str] = set()
    start: str | None = None
    first = True
    for entry in entries:
        cause = entry.causation_id
        if first and entry.kind is EntryKind.STARTED:
            start, first = cause, False  # the first action's cause: the start message
        if entry.kind is EntryKind.PUBLISHED and entry.detail:
            messages.add(entry.detail)
        if entry.kind in (EntryKind.STARTED, EntryKind.COMPLETED) and entry.undoes is None:
            actions.add(entry.name)
        if cause is None or entry.kind is EntryKind.WORKFLOW_STARTED:
            continue
        if cause in actions or cause in messages or cause == start:
            continue
        problems.append(
            f"{entry.kind.value} {entry.name} is caused by {cause!r}, which nothing before "
            f"it produced"
        )
    return problems


def effect_problems(
    status: WorkflowStatus, participants: Iterable[Participant], *, workflow_id: str | None = None
) -> list[str]:
    """How the effects fakes recorded disagree with an instance that ended `status`.

    Only fakes (built by `fake()`) keep a ledger; other participants are passed over.
    `workflow_id` limits the check to one instance's keys (`<workflow_id>:...`).
    """
    problems: list[str] = []
    for participant in participants:
        if not isinstance(participant, Fake):
            continue
        effects = [
            e
            for e in participant.effects.values()
            if workflow_id is None or e.key.startswith(f"{workflow_id}:")
        ]
        per_action: dict[tuple[str, str], list[str]] = {}
        for effect in effects:
            instance = effect.key.split(":", 1)[0] if ":" in effect.key else ""
            per_action.setdefault((instance, effect.action), []).append(effect.key)
        for (instance, action), keys in per_action.items():
            if len(keys) > 1:
                problems.append(
                    f"{action} was applied {len(keys)} times in {instance or 'one instance'} "
                    f"(keys {keys}): a step ran again as a new effect"
                )
        compensable = {
            declared.action.qualname
            for declared in type(participant).__coordination_declared__.values()
            if isinstance(declared, Compensation)
        }
        if status is WorkflowStatus.COMPENSATED:
            for effect in effects:
                if effect.applied and effect.action in compensable:
                    problems.append(
                        f"{effect.action} is still applied (key {effect.key}) on a "
                        f"COMPENSATED instance: its compensation never undid it"
                    )
        if status is WorkflowStatus.COMPLETED:
            for effect in effects:
                if not effect.applied:
                    problems.append(
                        f"{effect.action} was undone (by {effect.undone_by}) on a COMPLETED "
                        f"instance"
                    )
    return problems


def status_problems(choreography: Any, correlation_id: str) -> list[str]:
    """Whether a choreography's monitor shows the status its store holds."""
    view = choreography.monitor.get(correlation_id)
    record = choreography.store.get_run(correlation_id)
    if record is None:
        return [f"{correlation_id!r} is in the monitor but not in the store"]
    if view.status is not record.status:
        return [
            f"the monitor says {view.status.name} but the store says {record.status.name} "
            f"for {correlation_id!r}"
        ]
    return []


def assert_invariants(
    run: Any,
    participants: Iterable[Participant] = (),
    *,
    flow: Any = None,
) -> None:
    """Fail listing every broken invariant of `run` (a `WorkflowRun` or `ProcessView`).

    With `flow` (the Orchestrator subclass) a `WorkflowRun` is also held to the saga rules
    (`saga_problems`); `participants` that are fakes are held to `effect_problems`.
    """
    from coordination.testing._saga import saga_problems

    finished = run.status.finished and run.status is not WorkflowStatus.PARKED
    problems = journal_problems(run.journal, finished=finished)
    problems += effect_problems(run.status, participants, workflow_id=run.workflow_id)
    if flow is not None and hasattr(run, "steps") and hasattr(run, "output"):
        problems += saga_problems(run, flow)
    if problems:
        listing = "\n  ".join(dict.fromkeys(problems))
        raise AssertionError(
            f"{run.workflow_id} ({run.status.name}) breaks {len(problems)} invariant(s):\n"
            f"  {listing}\njournal:\n{run.journal.render()}"
        )
