"""`fake(Interface)`: a working participant built from an interface, before any real one.

A fake behaves as the docs ask a real participant to: idempotent by `ctx.idempotency_key`
(the same key answers the same result and applies nothing twice), a compensation that
undoes what its action applied and does nothing when nothing was. It keeps a call log and a
ledger of effects (applied, undone) that invariants and `assert_equivalent` read, and takes
a fault plan. Results are canned (`results=`) or derived from the declared output type:
same-named input fields copied, the rest valid values built from the key
(see `_values`), so runs are deterministic.
"""

from __future__ import annotations

import re
import threading
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from coordination._context import Context
from coordination._messages import Message
from coordination._participants import Action, Compensation, Participant, _Declared
from coordination._signatures import CONTEXT_ARGUMENT
from coordination.engine._attempts import output_check, undo_check
from coordination.errors import UsageError
from coordination.testing._faults import FaultPlan
from coordination.testing._values import derive_output

__all__ = ["Effect", "Fake", "FakeCall", "fake"]

P = TypeVar("P", bound=Participant)

#: `<key>:late<n>:undo` and `<key>:undo` both undo the effect applied under `<key>`.
_UNDO_KEY = re.compile(r"^(?P<key>.*?)(?::late\d+)?:undo$")


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call of a fake's action or compensation, as it was made."""

    target: str  #: `Interface.method`
    inputs: tuple[Message, ...]
    key: str | None  #: `ctx.idempotency_key`, when the method takes a Context
    attempt: int | None
    result: Any
    replayed: bool  #: the key was seen before: its first result, nothing applied again
    compensation: bool


@dataclass(slots=True)
class Effect:
    """What one action applied, under one key, and whether (and by what) it was undone."""

    action: str  #: `Interface.action`
    key: str
    inputs: tuple[Message, ...]
    output: Any
    undone_by: str | None = None  #: the compensation's key (or call number) that undid it

    @property
    def applied(self) -> bool:
        return self.undone_by is None


class Fake(Participant):
    """What every fake has beside its interface's methods: its calls and its effects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[FakeCall] = []
        #: Every effect applied, in the order applied, by key.
        self.effects: dict[str, Effect] = {}
        self._counts: dict[str, int] = {}

    @staticmethod
    def of(participant: Participant) -> Fake:
        """`participant` as a `Fake` (for typed access to a `fake()`'s ledger)."""
        if not isinstance(participant, Fake):
            raise UsageError(f"{participant!r} is not a fake; build one with fake(Interface)")
        return participant

    def applied(self, action: str | None = None) -> list[Effect]:
        """Effects still applied (of `action`, `Interface.action` or its method name)."""
        return [e for e in self._of(action) if e.applied]

    def undone(self, action: str | None = None) -> list[Effect]:
        """Effects that were applied and then undone."""
        return [e for e in self._of(action) if not e.applied]

    def named(self, target: str) -> list[FakeCall]:
        """The calls of one method (`Interface.method` or the method's name)."""
        return [c for c in self.calls if _matches(c.target, target)]

    def snapshot(self) -> list[tuple[str, str, str]]:
        """The effects still applied, comparable across runs: (action, key, output JSON)."""
        with self._lock:
            return sorted(
                (e.action, e.key, _as_json(e.output)) for e in self.effects.values() if e.applied
            )

    def _of(self, action: str | None) -> list[Effect]:
        with self._lock:
            effects = list(self.effects.values())
        return [e for e in effects if action is None or _matches(e.action, action)]

    # -- what the generated methods call ------------------------------------------------------

    def _forward(
        self,
        declared: Action[Any, Any],
        inputs: tuple[Message, ...],
        ctx: Context | None,
        answer: Callable[[tuple[Message, ...], str], Any],
    ) -> Any:
        target = declared.qualname
        with self._lock:
            key = ctx.idempotency_key if ctx is not None else self._next(target)
            known = self.effects.get(key)
            if known is not None:  # the same key again: answer as before, apply nothing
                self.calls.append(FakeCall(target, inputs, key, _attempt(ctx), known.output,
                                           True, False))  # fmt: skip
                return known.output
        output = answer(inputs, key)
        with self._lock:
            known = self.effects.get(key)
            if known is not None:  # raced by a concurrent call under the same key
                output = known.output
            else:
                self.effects[key] = Effect(target, key, inputs, output)
            self.calls.append(
                FakeCall(target, inputs, key, _attempt(ctx), output, known is not None, False)
            )
        return output

    def _backward(
        self,
        declared: Compensation[Any, Any],
        message: Message,
        ctx: Context | None,
        answer: Callable[[tuple[Message, ...], str], Any],
    ) -> Any:
        action = declared.action.qualname
        with self._lock:
            undo_key = ctx.idempotency_key if ctx is not None else self._next(declared.qualname)
            effect = self._undoable(action, message, ctx)
            seen = any(c.key == undo_key and c.compensation for c in self.calls) and ctx
            if effect is not None and effect.applied and not seen:
                effect.undone_by = undo_key
        result = answer((message,), undo_key)
        with self._lock:
            self.calls.append(
                FakeCall(declared.qualname, (message,), undo_key, _attempt(ctx), result,
                         bool(seen), True)
            )  # fmt: skip
        return result

    def _undoable(self, action: str, message: Message, ctx: Context | None) -> Effect | None:
        """The effect a compensation call undoes: by its key, else by what it was given."""
        if ctx is not None:
            matched = _UNDO_KEY.match(ctx.idempotency_key)
            if matched is not None:
                effect = self.effects.get(matched.group("key"))
                if effect is not None and effect.action == action:
                    return effect
                return None  # nothing was applied under that key: nothing to undo
        for effect in reversed(list(self.effects.values())):
            if (
                effect.action == action
                and effect.applied
                and (effect.output == message or message in effect.inputs)
            ):
                return effect
        return None

    def _next(self, target: str) -> str:
        count = self._counts.get(target, 0) + 1
        self._counts[target] = count
        return f"{target}#{count}"


def fake(
    interface: Callable[..., P],
    *,
    results: Mapping[str, Any] | None = None,
    faults: FaultPlan | None = None,
) -> P:
    """A working implementation of the participant `interface` (an instance).

    `results` cans what a method returns, by method name (or `Interface.method`): a value
    of its declared output, or a callable taking the input messages and returning one.
    Others are derived from the output type. `faults` is installed on the instance.
    Use `Fake.of(instance)` for its call log, effects and `snapshot()`.
    """
    # Typed as a callable returning the interface (not `type[P]`) so that abstract
    # interfaces, which is what fake() is for, type-check as arguments.
    if not (isinstance(interface, type) and issubclass(interface, Participant)):
        raise UsageError(f"fake() takes a participant interface, got {interface!r}")
    if issubclass(interface, Fake):
        raise UsageError(f"{interface.__name__} is a fake already; pass its interface")
    declared = interface.__coordination_declared__
    if not declared:
        raise UsageError(f"{interface.__name__} declares no @action: nothing to fake")
    canned = _canned(interface, declared, results or {})
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": f"fake({interface.__name__})",
    }
    for name, item in declared.items():
        namespace[name] = _method(item, canned.get(name))
    cls = cast(type[P], type(f"Fake{interface.__name__}", (interface, Fake), namespace))
    instance = cls()
    if faults is not None:
        faults.install(instance)
    return instance


def _canned(
    interface: type[Participant],
    declared: Mapping[str, _Declared[Any, Any]],
    given: Mapping[str, Any],
) -> dict[str, Any]:
    canned: dict[str, Any] = {}
    for name, value in given.items():
        method = name.rsplit(".", 1)[-1] if name.startswith(f"{interface.__name__}.") else name
        item = declared.get(method)
        if item is None:
            raise UsageError(
                f"fake({interface.__name__}, results=...): {name!r} is none of its actions or "
                f"compensations ({', '.join(sorted(declared))})"
            )
        if not callable(value) and not _checker(item)(value):
            raise UsageError(
                f"fake({interface.__name__}, results=...): {name!r} must return "
                f"{_describe(item.signature.output)}, got {type(value).__name__}"
            )
        canned[method] = value
    return canned


def _method(item: _Declared[Any, Any], canned: Any) -> Callable[..., Any]:
    signature = item.signature
    where = item.qualname
    valid = _checker(item)

    def answer(inputs: tuple[Message, ...], key: str) -> Any:
        if canned is None:
            return derive_output(signature.output, inputs, key, where)
        value = canned(*inputs) if callable(canned) else canned
        if not valid(value):
            raise UsageError(
                f"{where}: the canned result is {type(value).__name__}, not "
                f"{_describe(signature.output)}"
            )
        return value

    def call(self: Fake, args: tuple[Any, ...]) -> Any:
        inputs: list[Any] = [None] * len(signature.inputs)
        ctx: Context | None = None
        for position, index in enumerate(signature.arguments):
            if index == CONTEXT_ARGUMENT:
                ctx = args[position]
            else:
                inputs[index] = args[position]
        if isinstance(item, Compensation):
            return self._backward(item, inputs[0], ctx, answer)
        assert isinstance(item, Action)
        return self._forward(item, tuple(inputs), ctx, answer)

    if signature.is_async:

        async def method_async(self: Fake, *args: Any) -> Any:
            return call(self, args)

        method_async.__name__ = item.name
        return method_async

    def method(self: Fake, *args: Any) -> Any:
        return call(self, args)

    method.__name__ = item.name
    return method


def _checker(item: _Declared[Any, Any]) -> Callable[[Any], bool]:
    if isinstance(item, Compensation):
        return undo_check(item.signature)
    return output_check(item.signature)


def _attempt(ctx: Context | None) -> int | None:
    return ctx.attempt if ctx is not None else None


def _matches(target: str, wanted: str) -> bool:
    return target == wanted or target.rsplit(".", 1)[-1] == wanted


def _describe(output: Any) -> str:
    if output is None:
        return "None"
    if isinstance(output, tuple):
        return f"a tuple ({', '.join(t.__name__ for t in output)})"
    if isinstance(output, types.UnionType):
        return f"one of {', '.join(t.__name__ for t in typing.get_args(output))}"
    return f"a {output.__name__}"


def _as_json(value: Any) -> str:
    if isinstance(value, Message):
        return value.model_dump_json()
    if isinstance(value, tuple):
        return "[" + ", ".join(_as_json(v) for v in value) + "]"
    return repr(value)
