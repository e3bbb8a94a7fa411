"""The run lifecycle: one transitions Machine defines it; runs check moves against its table."""

from __future__ import annotations

import pytest

from coordination import WorkflowStatus
from coordination._lifecycle import MOVES, check_move
from coordination.errors import InvalidTransition
from coordination.orchestration import LIFECYCLE, lifecycle_mermaid

S = WorkflowStatus

EXPECTED = {
    S.PENDING: {S.RUNNING, S.COMPENSATING},
    S.RUNNING: {S.COMPLETED, S.COMPENSATING, S.WAITING, S.PARKED},
    S.WAITING: {S.RUNNING, S.COMPENSATING},
    S.COMPENSATING: {S.COMPENSATED, S.COMPENSATION_FAILED, S.PARKED, S.CANCELLED},
    S.COMPENSATED: {S.COMPENSATION_FAILED},
    S.COMPENSATION_FAILED: {S.COMPENSATING},
    S.PARKED: {S.RUNNING, S.COMPENSATING},
    S.COMPLETED: set(),
    S.CANCELLED: {S.COMPENSATION_FAILED},
}


def test_the_table_has_every_status() -> None:
    assert set(MOVES) == set(S)
    assert {source: set(targets) for source, targets in MOVES.items()} == EXPECTED


def test_the_table_is_read_off_the_machine() -> None:
    from_machine: dict[S, set[S]] = {status: set() for status in S}
    for status in S:
        for transition in LIFECYCLE.get_transitions(source=status.value):
            from_machine[status].add(S(transition.dest))
    assert {source: set(targets) for source, targets in MOVES.items()} == from_machine
    assert set(LIFECYCLE.states) == {status.value for status in S}


@pytest.mark.parametrize(
    ("source", "destination"),
    # In declared order (a set's order changes with the process: test ids must not).
    [(source, destination) for source in S for destination in S if destination in EXPECTED[source]],
)
def test_allowed_moves(source: S, destination: S) -> None:
    check_move(source, destination)


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        (source, destination)
        for source in S
        for destination in S
        if destination not in EXPECTED[source]
    ],
)
def test_forbidden_moves(source: S, destination: S) -> None:
    with pytest.raises(InvalidTransition):
        check_move(source, destination)


def test_the_error_lists_the_allowed_moves() -> None:
    with pytest.raises(
        InvalidTransition,
        match=r"a RUNNING run cannot become COMPENSATED; from RUNNING it can become: "
        r"COMPENSATING, COMPLETED, PARKED",
    ):
        check_move(S.RUNNING, S.COMPENSATED)
    with pytest.raises(InvalidTransition, match="it can become: nothing"):
        check_move(S.COMPLETED, S.RUNNING)


def test_the_mermaid_diagram_shows_every_status() -> None:
    diagram = lifecycle_mermaid()
    assert diagram.startswith("stateDiagram-v2")
    for status in S:
        assert status.name in diagram
    assert "RUNNING --> COMPLETED: complete" in diagram
    assert "COMPLETED --> [*]" in diagram
    assert "PARKED --> [*]" not in diagram  # a parked run waits for a human
