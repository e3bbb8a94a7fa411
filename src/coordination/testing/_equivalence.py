"""Run one flow through all four entry points and check they agree.

`run_both()` runs a message through an `Orchestrator` (`run()` and `run_async()`) and
through a `Choreography` that adopts the flow's declarations (`publish()` and
`publish_async()`), each on fresh, identical participants with the same fault plan, the
same correlation id and a virtual clock. `assert_equivalent()` checks they reached the same
status, the same compensations in the same order, journals of the same shape, and left the
participants in the same state — their `snapshot()`s when they all have one, else the net
effects in the journals. Where they differ, it is a bug: the engine decides for all four.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coordination._journal import EntryKind, Journal
from coordination._messages import Message, new_id
from coordination._participants import Participant
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._choreography import Choreography
from coordination.engine._timed import ATTEMPT_THREAD
from coordination.orchestration._orchestrator import Orchestrator
from coordination.stores._store import Store
from coordination.testing._clock import VirtualClock
from coordination.testing._faults import FaultPlan
from coordination.testing._invariants import effect_problems, journal_problems

__all__ = [
    "ENTRY_POINTS",
    "BothRuns",
    "Outcome",
    "assert_equivalent",
    "journal_shape",
    "net_effects",
    "run_both",
    "settle_late_results",
]

#: The four ways to run a flow, as `run_both` names them.
ENTRY_POINTS = ("run", "run_async", "publish", "publish_async")
#: Also accepted by `run_both`: the message as a batch of one, through the batch path
#: (one commit per round) that `run_many()` takes for many.
_BATCHED = ("run_many", "run_many_async")
_ORCHESTRATED = ("run", "run_async", *_BATCHED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one entry point ran the message: its status, journal and participants."""

    entry_point: str
    status: WorkflowStatus
    journal: Journal
    participants: tuple[Participant, ...]
    output: Any = None


@dataclass(frozen=True, slots=True)
class BothRuns:
    """The runs of one message through each entry point, and what each left behind."""

    outcomes: tuple[Outcome, ...]
    runs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, entry_point: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.entry_point == entry_point:
                return outcome
        raise KeyError(entry_point)

    @property
    def orchestrated(self) -> Any:
        """The `WorkflowRun` of `run()`."""
        return self.runs["run"]

    @property
    def choreographed(self) -> Any:
        """The `ProcessView` of `publish()`."""
        return self.runs["publish"]

    @property
    def orchestration_participants(self) -> tuple[Participant, ...]:
        return self["run"].participants

    @property
    def choreography_participants(self) -> tuple[Participant, ...]:
        return self["publish"].participants


def settle_late_results(timeout: float = 5.0) -> None:
    """Wait for abandoned timed-out attempts still running to return (their late results
    are handled on their own threads), so what they owe has been done."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(ATTEMPT_THREAD) and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))


def run_both(
    flow: type[Orchestrator[Any, Any]],
    participants: Callable[[], Sequence[Participant]],
    message: Message,
    plan: FaultPlan | None = None,
    *,
    correlation_id: str | None = None,
    entry_points: Sequence[str] = ENTRY_POINTS,
    stores: Callable[[], Store] | None = None,
    then: Sequence[Message | float] = (),
) -> BothRuns:
    """Run `message` through `flow` under each entry point, on fresh participants each.

    `participants()` must build fresh participants each call. The fault plan (a fresh copy
    per run) fires at the same attempts under all of them; they share one correlation id,
    so idempotency keys match too. `stores()`, if given, makes each entry point's store (a
    fresh `SQLiteStore` file each, to check durable runs agree too); else each gets a
    `MemoryStore`.

    `then`: what happens after the start, in order, while the instance has not finished:
    a message is an outside message for it (`send()`, or `publish(message,
    correlation_id=...)`, sync or async like its entry point), a number is seconds to let
    pass on the virtual clock, then `resume_due()` (durable timers, wait timeouts).
    """
    unknown = set(entry_points) - set(ENTRY_POINTS) - set(_BATCHED)
    if unknown:
        raise ValueError(
            f"unknown entry points {sorted(unknown)}; use some of {ENTRY_POINTS + _BATCHED}"
        )
    correlation_id = correlation_id or new_id()
    faults = plan.faults if plan is not None else ()
    outcomes: list[Outcome] = []
    runs: dict[str, Any] = {}
    for entry_point in entry_points:
        side = tuple(participants())
        FaultPlan(faults).install(*side)
        clock = VirtualClock()
        store = stores() if stores is not None else None
        result: Any
        if entry_point in _ORCHESTRATED:
            orchestrator = flow(*side, clock=clock, random=lambda: 0.5, store=store)
            ids = [correlation_id]
            if entry_point == "run":
                result = orchestrator.run(message, workflow_id=correlation_id)
            elif entry_point == "run_async":
                result = asyncio.run(orchestrator.run_async(message, workflow_id=correlation_id))
            elif entry_point == "run_many":
                result = orchestrator.run_many([message], workflow_ids=ids)[0]
            else:
                result = asyncio.run(orchestrator.run_many_async([message], workflow_ids=ids))[0]
            for step in then:
                if orchestrator.get(correlation_id).status.finished:
                    break
                if not isinstance(step, Message):
                    clock.advance(step)
                    orchestrator.resume_due()
                elif entry_point in ("run", "run_many"):
                    orchestrator.send(correlation_id, step)
                else:
                    asyncio.run(orchestrator.send_async(correlation_id, step))
            settle_late_results()
            result = orchestrator.get(correlation_id)
            output = result.output
        else:
            choreography = Choreography(
                EventBus(clock=clock), *side, flow=flow, clock=clock, random=lambda: 0.5,
                store=store,
            )  # fmt: skip
            if entry_point == "publish":
                choreography.publish(message, correlation_id=correlation_id)
            else:
                asyncio.run(choreography.publish_async(message, correlation_id=correlation_id))
            for step in then:
                if choreography.monitor.get(correlation_id).status.finished:
                    break
                if not isinstance(step, Message):
                    clock.advance(step)
                    choreography.resume_due()
                elif entry_point == "publish":
                    choreography.publish(step, correlation_id=correlation_id)
                else:
                    asyncio.run(choreography.publish_async(step, correlation_id=correlation_id))
            settle_late_results()
            result = choreography.monitor.get(correlation_id)
            output = None
        runs[entry_point] = result
        outcomes.append(Outcome(entry_point, result.status, result.journal, side, output))
    return BothRuns(tuple(outcomes), runs)


def net_effects(journal: Journal) -> set[str]:
    """Forward actions that completed and were not undone, by `Interface.action`."""
    completed = {
        entry.name
        for entry in journal
        if entry.kind is EntryKind.COMPLETED and entry.undoes is None
    }
    undone = {
        entry.undoes
        for entry in journal
        if entry.kind is EntryKind.COMPENSATED and entry.undoes is not None
    }
    return completed - undone


_SHAPE_KINDS = frozenset(
    {
        EntryKind.STARTED,
        EntryKind.COMPLETED,
        EntryKind.FAILED,
        EntryKind.RETRIED,
        EntryKind.COMPENSATED,
        EntryKind.COMPENSATION_FAILED,
        EntryKind.LATE_RESULT,
        EntryKind.SKIPPED,
    }
)


def journal_shape(journal: Journal) -> tuple[Any, ...]:
    """What two runners' journals of one instance must share, whatever the scheduling.

    For each forward action, the sequence of its entries (kind, attempt, error); then the
    undos in the order they ran. Publications and ids (only a choreography has them) and
    the interleaving of siblings' entries (scheduling) are left out.
    """
    forward: dict[str, list[tuple[str, int, str | None]]] = {}
    undos: list[tuple[str, str | None, int, str | None]] = []
    for entry in journal:
        if entry.kind not in _SHAPE_KINDS or entry.participant == "subscriber":
            continue
        if entry.undoes is not None:
            undos.append((entry.kind.value, entry.undoes, entry.attempt, entry.error))
        else:
            forward.setdefault(entry.name, []).append(
                (entry.kind.value, entry.attempt, entry.error)
            )
    return (tuple(sorted((k, tuple(v)) for k, v in forward.items())), tuple(undos))


def _compensations(journal: Journal) -> list[str]:
    return [
        entry.undoes
        for entry in journal
        if entry.undoes is not None
        and entry.kind in (EntryKind.COMPENSATED, EntryKind.COMPENSATION_FAILED)
    ]


def _snapshots(participants: Sequence[Participant]) -> list[Any] | None:
    taken = []
    for participant in participants:
        snapshot = getattr(participant, "snapshot", None)
        if not callable(snapshot):
            return None
        taken.append(snapshot())
    return taken


def assert_equivalent(both: BothRuns) -> None:
    """Fail, showing the journals, unless every entry point reached the same outcome.

    Each outcome is also held to the invariants every run keeps: a well-formed journal,
    and (for fakes) effects that agree with how it ended.
    """
    problems: list[str] = []
    first = both.outcomes[0]
    for other in both.outcomes[1:]:
        name = f"{first.entry_point} vs {other.entry_point}"
        if other.status is not first.status:
            problems.append(f"status: {name}: {first.status.name}, {other.status.name}")
        left, right = _snapshots(first.participants), _snapshots(other.participants)
        if left is not None and right is not None:
            if left != right:
                problems.append(f"participants differ ({name}):\n    {left}\n    {right}")
        elif net_effects(first.journal) != net_effects(other.journal):
            problems.append(
                f"net effects differ ({name}): {sorted(net_effects(first.journal))} vs "
                f"{sorted(net_effects(other.journal))}"
            )
        if _compensations(first.journal) != _compensations(other.journal):
            problems.append(
                f"compensations differ ({name}): {_compensations(first.journal)} vs "
                f"{_compensations(other.journal)}"
            )
        if journal_shape(first.journal) != journal_shape(other.journal):
            problems.append(f"journal shapes differ ({name})")
    for outcome in both.outcomes:
        finished = outcome.status.finished and outcome.status is not WorkflowStatus.PARKED
        for problem in journal_problems(outcome.journal, finished=finished):
            problems.append(f"{outcome.entry_point}: {problem}")
        for problem in effect_problems(outcome.status, outcome.participants):
            problems.append(f"{outcome.entry_point}: {problem}")
        ran = outcome.entry_point.startswith("run")
        if ran and outcome.status is WorkflowStatus.COMPLETED and outcome.output is None:
            problems.append(f"{outcome.entry_point} COMPLETED without an output")
    if problems:
        listing = "\n  ".join(problems)
        journals = "\n".join(
            f"{outcome.entry_point} journal:\n{outcome.journal.render()}"
            for outcome in both.outcomes
        )
        raise AssertionError(f"the entry points disagree:\n  {listing}\n{journals}")
