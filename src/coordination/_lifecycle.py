"""The lifecycle of a flow instance: which status may follow which, defined once.

Both runners move their instances only through the engine, which checks every move against
this one table, so an orchestrated run and a choreographed instance can never take a path
the other could not. The rules are a `transitions` Machine built at import time; per
instance, moves are checked against the table it defines instead of triggering a Machine
(one Machine per run costs ~100-250 µs; a dict lookup costs nanoseconds).
"""

from __future__ import annotations

from transitions import Machine

from coordination._status import WorkflowStatus
from coordination.errors import InvalidTransition

__all__ = ["LIFECYCLE", "MOVES", "check_move", "lifecycle_mermaid"]

S = WorkflowStatus

#: (trigger, sources, destination): every move a run can make.
_TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "start", "source": S.PENDING.value, "dest": S.RUNNING.value},
    {"trigger": "complete", "source": S.RUNNING.value, "dest": S.COMPLETED.value},
    {"trigger": "fail", "source": S.RUNNING.value, "dest": S.COMPENSATING.value},
    # Suspended for an outside message or a timer; holds no thread and no lease meanwhile.
    {"trigger": "suspend", "source": S.RUNNING.value, "dest": S.WAITING.value},
    {"trigger": "wake", "source": S.WAITING.value, "dest": S.RUNNING.value},
    {"trigger": "wait_failed", "source": S.WAITING.value, "dest": S.COMPENSATING.value},
    {"trigger": "undone", "source": S.COMPENSATING.value, "dest": S.COMPENSATED.value},
    {
        "trigger": "undo_failed",
        "source": S.COMPENSATING.value,
        "dest": S.COMPENSATION_FAILED.value,
    },
    # A timed-out attempt that lands after the run ended is undone; if that undo fails:
    {
        "trigger": "late_undo_failed",
        "source": [S.COMPENSATED.value, S.CANCELLED.value],
        "dest": S.COMPENSATION_FAILED.value,
    },
    {
        "trigger": "park",
        "source": [S.RUNNING.value, S.COMPENSATING.value],
        "dest": S.PARKED.value,
    },
    {"trigger": "resume", "source": S.PARKED.value, "dest": S.RUNNING.value},
    {"trigger": "retry_undo", "source": S.COMPENSATION_FAILED.value, "dest": S.COMPENSATING.value},
    {
        "trigger": "cancel",
        "source": [S.PENDING.value, S.RUNNING.value, S.WAITING.value, S.PARKED.value],
        "dest": S.COMPENSATING.value,
    },
    {"trigger": "cancelled", "source": S.COMPENSATING.value, "dest": S.CANCELLED.value},
]

#: The machine itself: the single definition of the lifecycle (and what the docs draw).
LIFECYCLE = Machine(
    model=None,
    states=[status.value for status in WorkflowStatus],
    transitions=_TRANSITIONS,
    initial=S.PENDING.value,
    auto_transitions=False,
)


def _table(machine: Machine) -> dict[WorkflowStatus, frozenset[WorkflowStatus]]:
    moves: dict[WorkflowStatus, set[WorkflowStatus]] = {status: set() for status in S}
    for event in machine.events.values():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                moves[S(source)].add(S(str(transition.dest)))
    return {source: frozenset(destinations) for source, destinations in moves.items()}


#: status -> statuses it may move to, read off `LIFECYCLE`.
MOVES = _table(LIFECYCLE)


def check_move(source: WorkflowStatus, destination: WorkflowStatus) -> None:
    """Raise `InvalidTransition` unless the lifecycle allows `source` -> `destination`."""
    if destination not in MOVES[source]:
        allowed = ", ".join(sorted(d.name for d in MOVES[source])) or "nothing"
        raise InvalidTransition(
            f"a {source.name} run cannot become {destination.name}; from {source.name} it "
            f"can become: {allowed}"
        )


def lifecycle_mermaid() -> str:
    """The lifecycle as a Mermaid state diagram, generated from `LIFECYCLE`."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.PENDING.name}"]
    for event in LIFECYCLE.events.values():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                destination = S(str(transition.dest))
                lines.append(f"    {S(source).name} --> {destination.name}: {event.name}")
    for status in S:
        if status.finished and status is not S.PARKED:
            lines.append(f"    {status.name} --> [*]")
    return "\n".join(lines)
