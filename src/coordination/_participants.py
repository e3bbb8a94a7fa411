"""Participants and their actions: the contract both runners plug implementations into.

An interface is a `Participant` subclass whose methods are marked `@action` (and usually
`@abstractmethod`); an implementation subclasses it and overrides the methods. The runners
read everything they need — inputs, output, retry, timeout, the undo — from the interface's
declarations, so the same implementation runs under the orchestrator or the choreography.
"""

from __future__ import annotations

import inspect
import sys
from abc import ABC
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from coordination._retry import COMPENSATION_DEFAULT, ONCE, Retry
from coordination._signatures import Signature, read_signature
from coordination.errors import DefinitionError

__all__ = ["Action", "Compensation", "Participant", "action"]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)
P2 = ParamSpec("P2")
R2 = TypeVar("R2")


def _defining_frame() -> FrameType | None:
    """The frame of the function a class is being defined in, if any.

    Called from a decorator invoked by a class body: the first frame outside this module is
    the class body, the one above it is where the class statement runs. That frame is kept
    so annotations naming classes local to a function (under postponed annotations) can be
    resolved later, as pydantic does.
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
    outer = frame.f_back if frame is not None else None
    if outer is not None and outer.f_code.co_flags & inspect.CO_OPTIMIZED:  # a function body
        return outer
    return None


def _class_body_name() -> str | None:
    """The name of the class whose body runs the calling decorator, if any (for errors)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None or frame.f_code.co_flags & inspect.CO_OPTIMIZED:
        return None
    name = frame.f_code.co_name
    return None if name.startswith("<") else name


def _check_timeout(timeout: float | None, where: str) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise DefinitionError(f"{where}: timeout must be a positive number of seconds or None")


class _Declared(Generic[P, R]):
    """What `@action` and `@x.compensation` share: a method plus what the runners need."""

    __slots__ = ("_frame", "_signature", "function", "name", "owner", "retry", "timeout")

    def __init__(
        self,
        function: Callable[Concatenate[Any, P], R],
        retry: Retry,
        timeout: float | None,
        frame: FrameType | None,
    ) -> None:
        if not callable(function) or isinstance(function, staticmethod | classmethod):
            raise DefinitionError(
                f"@action decorates a method (def name(self, message: SomeEvent) -> ...), "
                f"got {function!r}"
            )
        if not isinstance(retry, Retry):
            raise DefinitionError(f"retry= takes a Retry(...), got {retry!r}")
        self.function = function
        self.retry = retry
        self.timeout = timeout
        self.name: str = getattr(function, "__name__", "<action>")
        self.owner: type[Participant] | None = None
        self._signature: Signature | None = None
        self._frame = frame
        body = _class_body_name()
        _check_timeout(timeout, f"{body}.{self.name}" if body else self.name)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.owner = owner
        self.name = name

    @property
    def __isabstractmethod__(self) -> bool:
        # Lets ABCMeta see `@action @abstractmethod def ...` as abstract.
        return bool(getattr(self.function, "__isabstractmethod__", False))

    @__isabstractmethod__.setter
    def __isabstractmethod__(self, value: bool) -> None:
        # `abstractmethod` sets this on what it decorates: here, an action already made.
        raise DefinitionError(
            f"{self.qualname if self.owner else self.name}: @abstractmethod is above "
            f"@{'action' if isinstance(self, Action) else 'compensation'}; put it below, "
            f"next to the def:\n    @action\n    @abstractmethod\n    def {self.name}(...)"
        )

    @property
    def qualname(self) -> str:
        """`Interface.method`: how the journal and errors name it."""
        owner = self.owner.__name__ if self.owner is not None else "<no class>"
        return f"{owner}.{self.name}"

    @property
    def participant(self) -> str:
        """The name of the interface that declares it."""
        return self.owner.__name__ if self.owner is not None else "<no class>"

    @property
    def signature(self) -> Signature:
        """Its message contract, read from annotations (once)."""
        if self._signature is None:
            self._resolve(final=True)
        assert self._signature is not None
        return self._signature

    def _resolve(self, *, final: bool) -> None:
        localns = dict(self._frame.f_locals) if self._frame is not None else None
        if self.owner is not None:
            localns = {**(localns or {}), self.owner.__name__: self.owner}
        try:
            signature = read_signature(self.function, self.qualname, localns)
        except NameError as error:
            if final:
                raise DefinitionError(
                    f"{self.qualname}: annotation names something that is not defined: {error}"
                ) from error
            return
        self._check(signature)  # before caching, so a wrong declaration fails on every use
        self._signature = signature
        self._frame = None  # resolved: stop keeping the defining function's locals alive

    def _check(self, signature: Signature) -> None:
        """Rules beyond the signature itself (compensations check their action)."""

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _Declared[P, R]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        return self.function.__get__(instance, owner)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.qualname}>"


class Compensation(_Declared[P, R]):
    """The undo of one action, declared with `@the_action.compensation`.

    Typed as the action's output, it undoes a completed step and receives that output.
    Typed as (one of) the action's inputs, it runs for every step that started — failed and
    timed-out attempts included — and must do nothing when nothing was applied.
    """

    __slots__ = ("action",)

    def __init__(
        self,
        function: Callable[Concatenate[Any, P], R],
        action: Action[Any, Any],
        retry: Retry,
        timeout: float | None,
        frame: FrameType | None,
    ) -> None:
        super().__init__(function, retry, timeout, frame)
        self.action = action

    def _resolve(self, *, final: bool) -> None:
        if not final and self.action._signature is None:
            return  # its action names something not defined yet: check both on first use
        super()._resolve(final=final)

    @property
    def undoes_output(self) -> bool:
        """True if it receives the action's output (undo a completed step)."""
        return self.signature.inputs[0] in self.action.signature.outputs

    def _check(self, signature: Signature) -> None:
        if len(signature.inputs) != 1:
            raise DefinitionError(
                f"{self.qualname}: a compensation takes exactly one message (the output of "
                f"{self.action.qualname} to undo, or its input), plus an optional Context"
            )
        taken = signature.inputs[0]
        forward = self.action.signature
        if taken not in forward.outputs and taken not in forward.inputs:
            expected = [c.__name__ for c in (*forward.outputs, *forward.inputs)]
            raise DefinitionError(
                f"{self.qualname}: compensation of {self.action.qualname} takes "
                f"{taken.__name__}, which is neither its output nor its input; take one of "
                f"{', '.join(expected)}"
            )
        many = (
            forward.returns_many
            if taken in forward.outputs
            else forward.inputs.index(taken) in forward.gathers
        )
        if many != bool(signature.gathers):
            shape = f"tuple[{taken.__name__}, ...]" if many else taken.__name__
            raise DefinitionError(
                f"{self.qualname}: compensation of {self.action.qualname} must take {shape}, "
                f"as {self.action.qualname} has it (a fan-out's items are undone together by "
                f"an undo of the tuple; each item of a mapped step by its own undo)"
            )
        if signature.is_async != forward.is_async:
            raise DefinitionError(
                f"{self.qualname}: a compensation must be {'async' if forward.is_async else 'sync'}"
                f" like {self.action.qualname}"
            )


class _CompensationDecorator(Protocol):
    def __call__(self, function: Callable[Concatenate[Any, P2], R2], /) -> Compensation[P2, R2]: ...


class Action(_Declared[P, R]):
    """A participant method the runners can call: its inputs, output, retry and timeout.

    `retry` and `timeout` are the defaults under both runners (a `step()` may override
    them), so the same faults give the same outcome either way. `pivot`: the point of no
    return (see `action`).
    """

    __slots__ = ("pivot", "undo")

    def __init__(
        self,
        function: Callable[Concatenate[Any, P], R],
        retry: Retry,
        timeout: float | None,
        frame: FrameType | None,
        pivot: bool = False,
    ) -> None:
        super().__init__(function, retry, timeout, frame)
        self.undo: Compensation[Any, Any] | None = None
        self.pivot = pivot

    @overload
    def compensation(
        self, function: Callable[Concatenate[Any, P2], R2], /
    ) -> Compensation[P2, R2]: ...
    @overload
    def compensation(
        self, /, *, retry: Retry = ..., timeout: float | None = ...
    ) -> _CompensationDecorator: ...
    def compensation(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        retry: Retry = COMPENSATION_DEFAULT,
        timeout: float | None = None,
    ) -> Any:
        """Declare the undo of this action (like a property setter); see `Compensation`."""

        def declare(function: Callable[..., Any]) -> Compensation[Any, Any]:
            if self.undo is not None:
                owner = self.participant if self.owner is not None else _class_body_name()
                raise DefinitionError(
                    f"{owner or '<no class>'}.{self.name} already has a compensation "
                    f"({self.undo.name}); an action has at most one undo"
                )
            self.undo = Compensation(function, self, retry, timeout, _defining_frame())
            return self.undo

        if function is not None:
            return declare(function)
        return declare


class _ActionDecorator(Protocol):
    def __call__(self, function: Callable[Concatenate[Any, P2], R2], /) -> Action[P2, R2]: ...


@overload
def action(function: Callable[Concatenate[Any, P], R], /) -> Action[P, R]: ...
@overload
def action(
    *, retry: Retry | None = None, timeout: float | None = None, pivot: bool = False
) -> _ActionDecorator: ...
def action(
    function: Callable[..., Any] | None = None,
    /,
    *,
    retry: Retry | None = None,
    timeout: float | None = None,
    pivot: bool = False,
) -> Any:
    """Mark a participant method as an action the runners can call.

    A bare `@action` makes one attempt with no timeout. Its inputs are its message-typed
    parameters (several = a join), its output its return annotation; an optional
    `ctx: Context` parameter receives the attempt's context. `pivot=True` marks the point
    of no return (an email sent cannot be unsent): once it completed, nothing is undone,
    and a later step that fails for good parks the run for an operator.
    """
    policy = ONCE if retry is None else retry
    if not isinstance(pivot, bool):
        raise DefinitionError(f"@action(pivot=...) takes True or False, got {pivot!r}")

    def declare(function: Callable[..., Any]) -> Action[Any, Any]:
        return Action(function, policy, timeout, _defining_frame(), pivot)

    if function is not None:
        return declare(function)
    return declare


class Participant(ABC):
    """Base of participant interfaces and their implementations.

    Subclass it to declare an interface (`@action` + `@abstractmethod` methods), then
    subclass the interface to implement it. An implementation keeps its interface's kind:
    sync stays sync, `async def` stays async. Forgetting to implement an abstract action
    makes construction fail.
    """

    #: Every action and compensation this class has, by method name (most derived first).
    __coordination_declared__: ClassVar[dict[str, _Declared[Any, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, _Declared[Any, Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, _Declared):
                    declared[name] = value
        for value in vars(cls).values():
            if isinstance(value, _Declared):
                value._resolve(final=False)
        for name, value in declared.items():
            if name not in vars(cls):
                continue
            override = vars(cls)[name]
            if isinstance(override, _Declared):
                continue
            _check_override(cls, name, value, override)
        cls.__coordination_declared__ = declared


def _positional(function: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """The positional parameters after `self`, or None if the signature cannot be read."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    return [p for p in parameters[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _check_override(
    cls: type[Participant], name: str, declared: _Declared[Any, Any], override: object
) -> None:
    where = f"{cls.__qualname__}.{name}"
    if not callable(override) or isinstance(override, staticmethod | classmethod | property):
        raise DefinitionError(
            f"{where} overrides {declared.qualname} with {type(override).__name__}; "
            f"implement it as a method with the same parameters"
        )
    declared_async = inspect.iscoroutinefunction(declared.function)
    if inspect.iscoroutinefunction(override) != declared_async:
        kind = "async def" if declared_async else "def (not async)"
        raise DefinitionError(
            f"{where} must be {kind} like {declared.qualname}: an implementation keeps its "
            f"interface's kind"
        )
    expected = _positional(declared.function)
    given = _positional(override)
    if expected is None or given is None:
        return
    try:
        accepts_more = any(
            p.kind is p.VAR_POSITIONAL for p in inspect.signature(override).parameters.values()
        )
    except (TypeError, ValueError):
        accepts_more = False
    required = [p for p in given if p.default is p.empty]
    if len(required) > len(expected) or (len(given) < len(expected) and not accepts_more):
        wanted = ", ".join(["self", *(p.name for p in expected)])
        got = ", ".join(["self", *(p.name for p in given)])
        raise DefinitionError(
            f"{where}({got}) does not take what {declared.qualname}({wanted}) is called with; "
            f"give it the interface's parameters (both runners call it with them, ctx "
            f"included)"
        )
