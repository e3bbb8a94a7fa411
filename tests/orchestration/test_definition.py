"""A flow is checked when its class is defined: mistakes fail at import, naming the step."""

from __future__ import annotations

from typing import Any

import pytest

from coordination.errors import DefinitionError
from coordination.orchestration import Orchestrator, parallel, step
from tests.orchestration.flows import (
    A,
    Alpha,
    B,
    Beta,
    C,
    Echo,
    FakeAlpha,
    Fork,
    Gamma,
    J,
    Join,
    L,
    Left,
    Linear,
    Named,
    NamedChild,
    Plain,
    R,
    Right,
    Start,
    Twin,
    Untyped,
)


def test_empty_steps_are_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"Empty: an Orchestrator subclass declares"):

        class Empty(Orchestrator[Start, A]):
            steps = ()


def test_missing_steps_are_rejected() -> None:
    with pytest.raises(DefinitionError, match="NoSteps"):

        class NoSteps(Orchestrator[Start, A]):
            pass


def test_a_non_step_item_is_rejected_naming_its_position() -> None:
    with pytest.raises(DefinitionError, match=r"Odd.*steps item 2 is 'second'"):

        class Odd(Orchestrator[Start, Any]):
            steps = (step(Alpha.first), "second")


def test_a_bare_action_is_accepted_as_a_step() -> None:
    class Bare(Orchestrator[Start, B]):
        steps = (Alpha.first, Beta.second)  # type: ignore[assignment]

    assert [s.key for s in Bare.plan.steps] == ["Alpha.first", "Beta.second"]


def test_a_step_naming_an_implementation_method_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"step\(FakeAlpha\.first\).*name the interface"):
        step(FakeAlpha.first)


def test_a_step_naming_a_compensation_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"step\(Alpha\.undo_first\): that is a compensation"):
        step(Alpha.undo_first)


def test_a_step_naming_a_plain_function_is_rejected() -> None:
    def helper(start: Start) -> A:
        return A(n=start.n)

    with pytest.raises(DefinitionError, match="helper"):
        step(helper)


def test_step_inputs_must_be_available() -> None:
    with pytest.raises(
        DefinitionError,
        match=r"Skips: step Gamma\.third needs B, but neither the start message nor an earlier",
    ):

        class Skips(Orchestrator[Start, C]):
            steps = (step(Alpha.first), step(Gamma.third))


def test_first_step_input_must_be_the_start_message() -> None:
    with pytest.raises(DefinitionError, match=r"WrongStart: step Alpha\.first needs Start.*start"):

        class WrongStart(Orchestrator[A, A]):
            steps = (step(Alpha.first),)


def test_each_step_consumes_an_output_of_the_group_just_before() -> None:
    with pytest.raises(
        DefinitionError,
        match=r"Stale: step Plain\.plain consumes nothing produced by the group just before "
        r"it \(B\)",
    ):

        class Stale(Orchestrator[Start, Any]):
            steps = (step(Alpha.first), step(Beta.second), step(Plain.plain))


def test_two_steps_producing_the_same_type_are_rejected() -> None:
    with pytest.raises(
        DefinitionError, match=r"Again: step Echo\.echo produces A, which .* already provides"
    ):

        class Again(Orchestrator[Start, A]):
            steps = (step(Alpha.first), step(Beta.second), step(Echo.echo))


def test_two_steps_of_one_parallel_group_producing_the_same_type_are_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"Twins: two steps of one parallel group produce"):

        class Twins(Orchestrator[Start, Any]):
            steps = (step(Alpha.first), parallel(step(Left.left), step(Twin.twin)))


def test_an_action_used_twice_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"Twice: Alpha\.first appears twice"):

        class Twice(Orchestrator[Start, Any]):
            steps = (step(Alpha.first), step(Alpha.first))


def test_nested_parallel_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"parallel\(\) cannot contain parallel\(\)"):
        parallel(step(Left.left), parallel(step(Right.right)))


def test_empty_parallel_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="at least one step"):
        parallel()


def test_first_step_with_several_inputs_needs_a_declared_start() -> None:
    with pytest.raises(DefinitionError, match=r"JoinFirst: the first step Join\.join takes L, R"):

        class JoinFirst(Orchestrator):  # type: ignore[type-arg]
            steps = (step(Join.join),)


def test_declared_output_must_match_a_single_last_step() -> None:
    with pytest.raises(
        DefinitionError, match=r"BadOut: declared output C but the last group returns B"
    ):

        class BadOut(Orchestrator[Start, C]):
            steps = (step(Alpha.first), step(Beta.second))


def test_declared_output_of_a_parallel_last_group_is_a_tuple_in_declared_order() -> None:
    class Good(Orchestrator[Start, tuple[L, R]]):
        steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)))

    assert Good.plan.generations[-1][0].key == "Left.left"

    with pytest.raises(
        DefinitionError, match=r"Swapped: declared output tuple\[R, L\] .* returns tuple\[L, R\]"
    ):

        class Swapped(Orchestrator[Start, tuple[R, L]]):
            steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)))

    with pytest.raises(DefinitionError, match=r"NotTuple: declared output L"):

        class NotTuple(Orchestrator[Start, L]):
            steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)))


def test_declared_output_none_matches_only_a_terminal_step() -> None:
    with pytest.raises(DefinitionError, match=r"NoneOut: declared output None"):

        class NoneOut(Orchestrator[Start, None]):
            steps = (step(Alpha.first),)


def test_a_start_type_that_is_not_a_message_is_rejected() -> None:
    with pytest.raises(
        DefinitionError, match=r"IntStart: Orchestrator\[.*int.*must name a message"
    ):

        class IntStart(Orchestrator[int, A]):  # type: ignore[type-var]
            steps = (step(Alpha.first),)


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_is_rejected(name: str) -> None:
    with pytest.raises(DefinitionError, match=r"Blank: name= must be a non-empty string"):

        class Blank(Orchestrator[Start, A], name=name):
            steps = (step(Alpha.first),)


def test_name_is_used_and_not_inherited() -> None:
    assert Named.plan.name == "named-flow"
    assert NamedChild.plan.name == "tests.orchestration.flows:NamedChild"
    assert Linear.plan.name == "tests.orchestration.flows:Linear"


def test_a_flow_without_type_parameters_infers_its_start_type() -> None:
    assert Untyped.plan.start_type is Start
    assert Linear.plan.start_type is Start


def test_the_base_class_cannot_be_constructed() -> None:
    with pytest.raises(DefinitionError, match="base class"):
        Orchestrator()


def test_compiled_flow_shape() -> None:
    flow = Fork.plan
    assert [[s.key for s in group] for group in flow.generations] == [
        ["Alpha.first"],
        ["Left.left", "Right.right"],
    ]
    assert flow.interfaces == (Alpha, Left, Right)
    assert not flow.has_async
    assert flow.slot_types == (Start, A, L, R)
    assert {Start, A, L, R} <= set(flow.message_types)


def test_a_step_timeout_must_be_positive() -> None:
    with pytest.raises(DefinitionError, match="timeout must be a positive number"):
        step(Alpha.first, timeout=0)


def test_a_step_retry_must_be_a_retry() -> None:
    with pytest.raises(DefinitionError, match="takes a Retry"):
        step(Alpha.first, retry=3)


def test_join_after_parallel_takes_both_branches() -> None:
    class Joined(Orchestrator[Start, J]):
        steps = (step(Alpha.first), parallel(step(Left.left), step(Right.right)), step(Join.join))

    join = Joined.plan.steps[-1]
    assert [Joined.plan.slot_types[s] for s in join.input_slots] == [L, R]


def test_unused_interfaces_are_not_part_of_a_flow() -> None:
    assert Beta not in Fork.plan.interfaces
    assert Gamma in Linear.plan.interfaces
