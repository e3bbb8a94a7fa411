"""What the bus knows of each subscription: how to call it, read once when subscribing."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import blinker

from coordination._context import Context
from coordination.errors import DefinitionError

__all__ = ["Handler", "Plan", "handler_name", "inspect_handler", "subscribed_as"]


class Handler(NamedTuple):
    """One subscription as the dispatcher needs it, computed when subscribing."""

    target: Any  # the callable, or a weak reference to it
    weak: bool
    wants_context: bool
    is_async: bool
    name: str
    #: A sync handler that may block: under publish_async it runs on a worker thread.
    blocking: bool = False


class Plan(NamedTuple):
    """How one message type is delivered: its handlers in order, computed once per type."""

    handlers: tuple[Handler, ...]
    has_async: bool
    #: The bare callables, when every handler is strong, sync and takes the message alone
    #: (the common case, delivered without looking at each handler's flags); else None.
    plain: tuple[Callable[..., Any], ...] | None = None
    #: For a Command type with only strong handlers: whether it has exactly one.
    one_handler: bool | None = None

    @staticmethod
    def of(handlers: tuple[Handler, ...], command: bool) -> Plan:
        strong = not any(h.weak for h in handlers)
        plain = strong and not any(h.wants_context or h.is_async for h in handlers)
        return Plan(
            handlers,
            any(h.is_async for h in handlers),
            tuple(h.target for h in handlers) if plain else None,
            len(handlers) == 1 if command and strong else None,
        )

    def named(self, target: Any) -> Handler:
        """The handler whose callable is `target` (for reporting a plain one's failure)."""
        return next(h for h in self.handlers if h.target is target)


def handler_name(handler: Callable[..., Any]) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def subscribed_as(signal: blinker.Signal, handler: Callable[..., Any]) -> Callable[..., Any]:
    """The object `signal` holds for `handler`, if it holds an equal one, else `handler`.

    A builtin's bound method (`received.append`) is a new object on every access, so
    blinker, which keys receivers by `id()`, would take each access for another handler.
    """
    if isinstance(handler, types.BuiltinMethodType):
        for receiver in signal.receivers.values():
            if type(receiver) is type(handler) and receiver == handler:
                return receiver
    return handler


def inspect_handler(handler: Callable[..., Any]) -> tuple[bool, bool]:
    """(wants a Context?, is async?) for a handler taking the message first."""
    if not callable(handler):
        raise DefinitionError(f"a handler must be callable, got {handler!r}")
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError) as error:
        raise DefinitionError(f"cannot read the signature of handler {handler!r}") from error
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        raise DefinitionError(
            f"handler {handler_name(handler)} takes no argument; a handler takes the message "
            f"as its first argument (and optionally ctx: Context)"
        )
    wants_context = False
    for parameter in positional[1:]:
        annotation = parameter.annotation
        if parameter.name == "ctx" or annotation is Context or annotation == "Context":
            wants_context = True
        elif parameter.default is parameter.empty:
            raise DefinitionError(
                f"handler {handler_name(handler)} needs {parameter.name!r} too; a handler "
                f"takes the message and optionally ctx: Context"
            )
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects
    is_async = inspect.iscoroutinefunction(handler) or (
        call is not None and inspect.iscoroutinefunction(call)
    )
    return wants_context, is_async
