"""Reading an action's contract from its annotations: what it consumes, what it produces.

Both runners wire participants from these signatures alone (the orchestrator to check a
flow's data order, the choreography to subscribe each action to its inputs), so the rules
are enforced once, here, when the class is defined.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordination._context import Context
from coordination._messages import Message
from coordination.errors import DefinitionError

__all__ = ["Signature", "read_signature"]

CONTEXT_ARGUMENT = -1


@dataclass(frozen=True, slots=True)
class Signature:
    """The message contract of one action or compensation.

    `arguments` says how to call it: for each parameter after `self`, the index of the input
    message it takes, or `CONTEXT_ARGUMENT` for the `Context`. `returns_one_of`: the output
    is a union (`-> PaymentCaptured | PaymentDeclined`), a business outcome: each call
    returns exactly one of `outputs`. `returns_many`: the output is a variadic tuple
    (`-> tuple[PageFound, ...]`, a fan-out: `outputs` holds its one member type, and the
    next action taking that type runs once per item). `gathers`: the indexes of the inputs
    annotated as variadic tuples (`pages: tuple[PageIndexed, ...]`): each receives every
    item of a fan-out at once, in item order (`inputs` holds the member type).
    """

    inputs: tuple[type[Message], ...]
    outputs: tuple[type[Message], ...]
    returns_tuple: bool
    arguments: tuple[int, ...]
    is_async: bool
    returns_one_of: bool = False
    returns_many: bool = False
    gathers: tuple[int, ...] = ()

    @property
    def wants_context(self) -> bool:
        return CONTEXT_ARGUMENT in self.arguments

    @property
    def output(self) -> Any:
        """The declared output: one message class, a tuple of them, a union, or None."""
        if self.returns_many:
            return tuple.__class_getitem__((self.outputs[0], ...))
        if self.returns_tuple:
            return self.outputs
        if self.returns_one_of:
            return functools.reduce(operator.or_, self.outputs)
        return self.outputs[0] if self.outputs else None


def _is_message_class(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Message)


def _variadic(annotation: object) -> type[Message] | None:
    """The member type of `tuple[X, ...]` (a fan-out's items), else None."""
    if typing.get_origin(annotation) is not tuple:
        return None
    members = typing.get_args(annotation)
    if len(members) == 2 and members[1] is Ellipsis and _is_message_class(members[0]):
        member: type[Message] = members[0]
        return member
    return None


def read_signature(
    function: Callable[..., Any], where: str, localns: dict[str, Any] | None
) -> Signature:
    """Read the contract of `function`; `where` names it (`Class.method`) in errors.

    Raises `NameError` when an annotation names something not defined yet (the caller
    retries on first use) and `DefinitionError` for every other mistake.
    """
    try:
        hints = typing.get_type_hints(function, localns=localns)
    except NameError:
        raise
    except Exception as error:
        raise DefinitionError(f"{where}: cannot read its annotations: {error}") from error

    parameters = list(inspect.signature(function).parameters.values())
    if not parameters or parameters[0].name != "self":
        raise DefinitionError(
            f"{where}: an action is a method whose first parameter is self "
            f"(not a staticmethod, classmethod or free function)"
        )
    inputs: list[type[Message]] = []
    arguments: list[int] = []
    gathers: list[int] = []
    for parameter in parameters[1:]:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            raise DefinitionError(
                f"{where}: parameter {parameter.name!r} must be a plain positional parameter "
                f"(no *args, **kwargs or keyword-only parameters)"
            )
        if parameter.name not in hints:
            raise DefinitionError(
                f"{where}: parameter {parameter.name!r} has no annotation; annotate it with the "
                f"message type it consumes (an Event or Command subclass) or with Context"
            )
        annotation = hints[parameter.name]
        gathered = _variadic(annotation)
        if gathered is not None:  # a gather: every item of a fan-out, in item order
            gathers.append(len(inputs))
            annotation = gathered
        if annotation is Context:
            if CONTEXT_ARGUMENT in arguments:
                raise DefinitionError(f"{where}: only one parameter may be the Context")
            arguments.append(CONTEXT_ARGUMENT)
        elif _is_message_class(annotation):
            if annotation in inputs:
                raise DefinitionError(
                    f"{where}: two parameters take {annotation.__name__}; each input of an "
                    f"action must be a different message type"
                )
            arguments.append(len(inputs))
            inputs.append(annotation)
        else:
            raise DefinitionError(
                f"{where}: parameter {parameter.name!r} is annotated {annotation!r}, which is "
                f"not a message type; inputs must be Event or Command subclasses (or Context)"
            )
    if not inputs:
        raise DefinitionError(
            f"{where}: an action needs at least one message parameter (what triggers it)"
        )

    if "return" not in hints:
        raise DefinitionError(
            f"{where}: no return annotation; annotate it with the message it produces, a "
            f"tuple[...] of messages, or None for a terminal action"
        )
    returned = hints["return"]
    returns_tuple = False
    returns_one_of = False
    returns_many = False
    outputs: tuple[type[Message], ...]
    if returned is None or returned is type(None):
        outputs = ()
    elif _is_message_class(returned):
        outputs = (returned,)
    elif (many := _variadic(returned)) is not None:
        outputs = (many,)
        returns_many = True
    elif typing.get_origin(returned) is tuple:
        members = typing.get_args(returned)
        if not members or Ellipsis in members or not all(_is_message_class(m) for m in members):
            raise DefinitionError(
                f"{where}: returns {returned!r}; a tuple output must list message types, like "
                f"tuple[StockReserved, ShipmentReady], or be a variadic tuple of one message "
                f"type (a fan-out), like tuple[PageFound, ...]"
            )
        if len(set(members)) != len(members):
            raise DefinitionError(f"{where}: returns the same message type twice in {returned!r}")
        outputs = tuple(members)
        returns_tuple = True
    elif typing.get_origin(returned) in (types.UnionType, typing.Union):
        outputs = _alternatives(where, returned)
        returns_one_of = True
    else:
        raise DefinitionError(
            f"{where}: returns {returned!r}; an action returns one message type, a "
            f"tuple[...] of message types, a union of message types (a business outcome, "
            f"like PaymentCaptured | PaymentDeclined), or None"
        )
    return Signature(
        inputs=tuple(inputs),
        outputs=outputs,
        returns_tuple=returns_tuple,
        arguments=tuple(arguments),
        is_async=inspect.iscoroutinefunction(function),
        returns_one_of=returns_one_of,
        returns_many=returns_many,
        gathers=tuple(gathers),
    )


def _alternatives(where: str, returned: Any) -> tuple[type[Message], ...]:
    """The members of a union output: distinct, unrelated message classes."""
    members = typing.get_args(returned)
    if type(None) in members:
        raise DefinitionError(
            f"{where}: returns {returned!r}; a union output names each business outcome "
            f"as a message (PaymentCaptured | PaymentDeclined), never None"
        )
    if not all(_is_message_class(m) for m in members):
        raise DefinitionError(
            f"{where}: returns {returned!r}; each member of a union output must be a "
            f"message type (an Event or Command subclass), like PaymentCaptured | "
            f"PaymentDeclined"
        )
    for first in members:
        for second in members:
            if first is not second and issubclass(first, second):
                raise DefinitionError(
                    f"{where}: returns {returned!r}; {first.__name__} is a {second.__name__}, "
                    f"so the outcomes cannot be told apart; name unrelated message types"
                )
    return tuple(members)
