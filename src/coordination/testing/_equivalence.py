"""Run one flow both ways and check the two patterns agree.

`run_both()` runs a message through an `Orchestrator` and through a `Choreography` of
fresh, identical participants (with the same fault plan, the same correlation id and
virtual clocks); `assert_equivalent()` checks they reached the same status and left the
participants in the same state — their `snapshot()`s when they all have one, else the net
effects in the journals (actions completed and not undone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coordination._journal import EntryKind, Journal
from coordination._messages import Message, new_id
from coordination._participants import Participant
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._choreography import Choreography
from coordination.choreography._monitor import ProcessView
from coordination.orchestration._orchestrator import Orchestrator
from coordination.orchestration._run import WorkflowRun
from coordination.testing._clock import VirtualClock
from coordination.testing._faults import FaultPlan

__all__ = ["BothRuns", "assert_equivalent", "net_effects", "run_both"]


@dataclass(frozen=True, slots=True)
class BothRuns:
    """The two runs of one message, and the participants each left behind."""

    orchestrated: WorkflowRun[Any]
    choreographed: ProcessView
    orchestration_participants: tuple[Participant, ...]
    choreography_participants: tuple[Participant, ...]


def run_both(
    flow: type[Orchestrator[Any, Any]],
    participants: Callable[[], Sequence[Participant]],
    message: Message,
    plan: FaultPlan | None = None,
    *,
    correlation_id: str | None = None,
) -> BothRuns:
    """Run `message` through `flow` and through a choreography of the same participants.

    `participants()` must build fresh participants each call. The fault plan (a fresh copy
    per side) fires at the same attempts under both; both sides use one correlation id, so
    idempotency keys match too.
    """
    correlation_id = correlation_id or new_id()
    faults = plan.faults if plan is not None else ()

    orchestration_side = tuple(participants())
    FaultPlan(faults).install(*orchestration_side)
    run = flow(*orchestration_side, clock=VirtualClock(), random=lambda: 0.5).run(
        message, workflow_id=correlation_id
    )

    choreography_side = tuple(participants())
    FaultPlan(faults).install(*choreography_side)
    clock = VirtualClock()
    choreography = Choreography(
        EventBus(clock=clock), *choreography_side, clock=clock, random=lambda: 0.5
    )
    choreography.publish(message, correlation_id=correlation_id)
    view = choreography.monitor.get(correlation_id)
    return BothRuns(run, view, orchestration_side, choreography_side)


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


def _snapshots(participants: Sequence[Participant]) -> list[Any] | None:
    taken = []
    for participant in participants:
        snapshot = getattr(participant, "snapshot", None)
        if not callable(snapshot):
            return None
        taken.append(snapshot())
    return taken


def assert_equivalent(both: BothRuns) -> None:
    """Fail, showing both journals, unless both runs reached the same outcome and state."""
    problems: list[str] = []
    ran, reacted = both.orchestrated.status, both.choreographed.status
    if ran is not reacted:
        problems.append(f"status: orchestration {ran.name}, choreography {reacted.name}")
    left = _snapshots(both.orchestration_participants)
    right = _snapshots(both.choreography_participants)
    if left is not None and right is not None:
        if left != right:
            problems.append(f"participants differ:\n    {left}\n    {right}")
    else:
        mine = net_effects(both.orchestrated.journal)
        theirs = net_effects(both.choreographed.journal)
        if mine != theirs:
            problems.append(f"net effects differ: {sorted(mine)} vs {sorted(theirs)}")
    if ran is WorkflowStatus.COMPLETED and reacted is WorkflowStatus.COMPLETED:
        outputs = both.orchestrated.output
        if outputs is None and both.orchestrated.journal:
            problems.append("orchestration COMPLETED without an output")
    if problems:
        listing = "\n  ".join(problems)
        raise AssertionError(
            f"orchestration and choreography disagree:\n  {listing}\n"
            f"orchestration journal:\n{both.orchestrated.journal.render()}\n"
            f"choreography journal:\n{both.choreographed.journal.render()}"
        )
