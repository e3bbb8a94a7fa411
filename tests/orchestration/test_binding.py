"""An orchestrator binds each interface of its flow to exactly one implementation."""

from __future__ import annotations

import itertools

import pytest

from coordination import WorkflowStatus
from coordination.errors import BindingError, DefinitionError, UsageError
from tests.orchestration.flows import (
    A,
    Alpha,
    AUndone,
    B,
    Beta,
    BUndone,
    FakeAlpha,
    FakeBeta,
    FakeGamma,
    FakeLeft,
    Linear,
    Start,
    Untyped,
)


def test_a_missing_implementation_names_the_interface() -> None:
    with pytest.raises(BindingError, match=r"Linear: no participant implements Gamma"):
        Linear(FakeAlpha(), FakeBeta())


def test_two_implementations_of_one_interface_are_rejected() -> None:
    with pytest.raises(
        BindingError, match=r"several participants implement Alpha \(FakeAlpha, FakeAlpha\)"
    ):
        Linear(FakeAlpha(), FakeAlpha(), FakeBeta(), FakeGamma())


def test_a_participant_no_step_uses_is_rejected() -> None:
    with pytest.raises(
        BindingError,
        match=r"FakeLeft implements no interface this flow uses \(Alpha, Beta, Gamma\)",
    ):
        Linear(FakeAlpha(), FakeBeta(), FakeGamma(), FakeLeft())


def test_a_non_participant_argument_is_rejected() -> None:
    with pytest.raises(BindingError, match=r"'nope' is not a Participant"):
        Linear(FakeAlpha(), FakeBeta(), FakeGamma(), "nope")  # type: ignore[arg-type]


def test_a_participant_class_instead_of_an_instance_is_rejected() -> None:
    with pytest.raises(BindingError):
        Linear(FakeAlpha, FakeBeta(), FakeGamma())  # type: ignore[arg-type]


def test_binding_errors_are_definition_errors() -> None:
    assert issubclass(BindingError, DefinitionError)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_argument_order_works(order: tuple[int, int, int]) -> None:
    fakes = [FakeAlpha(), FakeBeta(), FakeGamma()]
    orchestrator = Linear(*(fakes[i] for i in order))
    run = orchestrator.run(Start(n=1))
    assert run.status is WorkflowStatus.COMPLETED
    assert [f.count(name) for f, name in zip(fakes, ["first", "second", "third"], strict=True)] == [
        1,
        1,
        1,
    ]


def test_one_object_may_implement_two_interfaces() -> None:
    class Both(Alpha, Beta):
        def first(self, start: Start, ctx: object) -> A:
            return A(n=start.n)

        def undo_first(self, a: A, ctx: object) -> AUndone:
            return AUndone(n=a.n)

        def second(self, a: A, ctx: object) -> B:
            return B(n=a.n * 10)

        def undo_second(self, b: B, ctx: object) -> BUndone:
            return BUndone(n=b.n)

    run = Untyped(Both()).run(Start(n=4))
    assert run.output == B(n=40)


def test_an_implementation_that_forgets_an_action_fails_at_construction() -> None:
    class Forgetful(Alpha):
        def first(self, start: Start, ctx: object) -> A:
            return A(n=start.n)

    with pytest.raises(TypeError, match="undo_first"):
        Forgetful()  # type: ignore[abstract]


def test_store_and_clock_are_checked() -> None:
    with pytest.raises(UsageError, match="store="):
        Linear(FakeAlpha(), FakeBeta(), FakeGamma(), store={})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="clock="):
        Linear(FakeAlpha(), FakeBeta(), FakeGamma(), clock=42)  # type: ignore[arg-type]
