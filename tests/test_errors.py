"""The exception hierarchy: one tree under CoordinationError, documented, with kept attributes."""

from __future__ import annotations

import inspect

import pytest

from coordination import errors
from coordination.errors import (
    AttemptTimeout,
    BindingError,
    CompensationFailed,
    CoordinationError,
    DefinitionError,
    MalformedMessage,
    MessageError,
    NonRetryable,
    OutputTypeError,
    StepFailed,
    UnknownMessageType,
    WorkflowBusy,
    WorkflowConflict,
    WorkflowError,
    WorkflowNotFound,
)

CLASSES = [getattr(errors, name) for name in errors.__all__]


def test_all_lists_every_exception_class_in_the_module() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_a_coordination_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, CoordinationError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_has_its_own_docstring(cls: type[BaseException]) -> None:
    doc = cls.__dict__.get("__doc__")
    assert doc
    assert doc.strip()


def test_module_docstring_tree_names_every_class() -> None:
    doc = errors.__doc__
    assert doc is not None
    tree = doc[doc.index("```") : doc.rindex("```")]
    for name in errors.__all__:
        assert f" {name} " in tree or tree.lstrip("`\n").startswith(name), name


def test_module_docstring_tree_matches_the_class_hierarchy() -> None:
    """Each tree line's indentation says its parent: check it against the real bases."""
    doc = errors.__doc__
    assert doc is not None
    lines = doc[doc.index("```") + 3 : doc.rindex("```")].strip("\n").splitlines()
    stack: list[tuple[int, str]] = []
    seen: list[str] = []
    for line in lines:
        stripped = line.lstrip("│├└─ ")
        name = stripped.split()[0]
        depth = len(line) - len(stripped)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parent = getattr(errors, stack[-1][1])
            assert parent in getattr(errors, name).__bases__, (name, parent)
        else:
            assert getattr(errors, name) is CoordinationError
        stack.append((depth, name))
        seen.append(name)
    assert sorted(seen) == sorted(errors.__all__)


def test_builtin_kinds_are_kept() -> None:
    assert issubclass(AttemptTimeout, TimeoutError)
    assert issubclass(OutputTypeError, TypeError)
    with pytest.raises(TimeoutError):
        raise AttemptTimeout("slow")
    with pytest.raises(TypeError):
        raise OutputTypeError("wrong")


def test_subtrees() -> None:
    assert issubclass(BindingError, DefinitionError)
    assert issubclass(UnknownMessageType, MessageError)
    assert issubclass(MalformedMessage, MessageError)
    for cls in (WorkflowConflict, WorkflowBusy, WorkflowNotFound):
        assert issubclass(cls, WorkflowError)
    assert not issubclass(NonRetryable, DefinitionError)


def test_step_failed_keeps_its_attributes() -> None:
    cause = ConnectionError("reset")

    def fail() -> None:
        try:
            raise cause
        except ConnectionError as error:
            raise StepFailed("charge failed", step="Payments.charge", attempts=3) from error

    with pytest.raises(StepFailed, match=r"^charge failed$") as caught:
        fail()
    assert caught.value.step == "Payments.charge"
    assert caught.value.attempts == 3
    assert caught.value.__cause__ is cause


def test_step_failed_attributes_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        StepFailed("x", "Payments.charge", 3)  # type: ignore[misc]


def test_compensation_failed_keeps_its_attributes() -> None:
    failed = CompensationFailed(
        "refund failed", step="Payments.charge", compensation="Payments.refund", attempts=5
    )
    assert failed.step == "Payments.charge"
    assert failed.compensation == "Payments.refund"
    assert failed.attempts == 5
    assert str(failed) == "refund failed"


@pytest.mark.parametrize("cls", [WorkflowError, WorkflowConflict, WorkflowBusy, WorkflowNotFound])
def test_workflow_errors_keep_the_workflow_id(cls: type[WorkflowError]) -> None:
    error = cls("about order-42", workflow_id="order-42")
    assert error.workflow_id == "order-42"
    assert str(error) == "about order-42"
    with pytest.raises(CoordinationError):
        raise error


def test_non_retryable_can_be_subclassed_for_business_refusals() -> None:
    class CardDeclined(NonRetryable):
        pass

    with pytest.raises(NonRetryable, match="declined"):
        raise CardDeclined("card declined")
