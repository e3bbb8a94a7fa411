"""Valid values for a message's fields, derived deterministically from a seed.

`fake()` answers each call with an instance of the action's declared output: fields that an
input carries under the same name are copied (an `order_id` flows through), the rest are
built from the field's type and constraints, from a seed (the call's idempotency key), so
the same call always gets the same answer and different calls different ids.

hypothesis draws such values in tests, but it cannot be asked for one from inside a
`@given` test (where fakes are built), so this small builder covers the field types
messages use; anything else asks the user to can the result.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import re
import types
import typing
import uuid
from decimal import Decimal
from typing import Any

import annotated_types as at
from pydantic import BaseModel, TypeAdapter, ValidationError

from coordination._messages import Message
from coordination.errors import UsageError

__all__ = ["derive_message", "derive_output"]

_NAMESPACE = uuid.UUID("6f1d3c52-8a43-4f6e-9d55-3c8a0f0b9a11")
#: A fixed moment: derived timestamps never depend on when a test runs.
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _digest(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def derive_output(output: Any, inputs: tuple[Message, ...], seed: str, where: str) -> Any:
    """An instance of `output` (a message class, a tuple of them, or None)."""
    if output is None:
        return None
    if typing.get_origin(output) in (types.UnionType, typing.Union):
        # A business outcome: the first one named (can another: results={...}).
        return derive_message(typing.get_args(output)[0], inputs, seed, where)
    if isinstance(output, tuple):
        return tuple(
            derive_message(kind, inputs, f"{seed}#{index}", where)
            for index, kind in enumerate(output)
        )
    return derive_message(output, inputs, seed, where)


def derive_message(
    kind: type[BaseModel], inputs: tuple[BaseModel, ...], seed: str, where: str
) -> Any:
    """An instance of `kind`: same-named input fields copied, the rest built from `seed`."""
    values: dict[str, Any] = {}
    for name, info in kind.model_fields.items():
        copied = _copied(kind, name, inputs)
        if copied is not _MISSING:
            values[name] = copied
        elif not info.is_required():
            continue  # its default is valid by definition
        else:
            values[name] = _build(info.annotation, info.metadata, f"{seed}:{name}", name, where)
    try:
        return kind.model_validate(values)
    except ValidationError as error:
        raise UsageError(
            f"{where}: cannot derive a valid {kind.__name__} ({error.error_count()} field(s) "
            f"refused: {error.errors()[0]['loc']}); can the result: "
            f"fake(..., results={{...: a {kind.__name__}}})"
        ) from error


_MISSING = object()


def _copied(kind: type[BaseModel], name: str, inputs: tuple[BaseModel, ...]) -> Any:
    """The value of field `name` in the first input that has one `kind` accepts."""
    for message in inputs:
        if name not in type(message).model_fields:
            continue
        value = getattr(message, name)
        try:
            _adapter(kind, name).validate_python(value, strict=True)
        except ValidationError:
            continue
        return value
    return _MISSING


@functools.cache
def _adapter(kind: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = kind.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = typing.Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for meta in metadata:
        for attribute in ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length"):
            value = getattr(meta, attribute, None)
            if value is not None and isinstance(meta, at.BaseMetadata | at.GroupedMetadata):
                bounds[attribute] = value
        pattern = getattr(meta, "pattern", None)
        if pattern is not None:
            bounds["pattern"] = pattern
    return bounds


def _build(annotation: Any, metadata: list[Any], seed: str, name: str, where: str) -> Any:
    bounds = _bounds(metadata)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _build(inner, [*metadata, *extra], seed, name, where)
    if origin in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        if not arms:
            return None
        return _build(arms[0], metadata, seed, name, where)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset, tuple):
        return _collection(annotation, origin, bounds, seed, name, where)
    if origin is dict or annotation is dict:
        return {}
    digest = _digest(seed)
    if annotation is bool:
        return int(digest[:2], 16) % 2 == 1
    if annotation is int:
        return _number(int(digest[:8], 16), bounds, int)
    if annotation is float:
        return _real(int(digest[:8], 16), bounds)
    if annotation is Decimal:
        return Decimal(_number(int(digest[:8], 16) % 1000, bounds, int))
    if annotation is str:
        return _text(name, digest, bounds, where)
    if annotation is bytes:
        size = max(bounds.get("min_length", 8), 0)
        size = min(size, bounds.get("max_length", size))
        return bytes.fromhex(digest)[:size].ljust(size, b"\0")
    if annotation is uuid.UUID:
        return uuid.uuid5(_NAMESPACE, seed)
    if annotation is dt.datetime:
        return _EPOCH
    if annotation is dt.date:
        return _EPOCH.date()
    if annotation is dt.time:
        return _EPOCH.time()
    if annotation is dt.timedelta:
        return dt.timedelta(seconds=int(digest[:4], 16) % 3600)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return derive_message(annotation, (), seed, where)
    raise UsageError(
        f"{where}: cannot derive a value of {annotation!r} for field {name!r}; can the "
        f"result: fake(..., results={{...: an instance}})"
    )


def _number(raw: int, bounds: dict[str, Any], kind: type) -> Any:
    """A number within the field's bounds, spread by `raw`."""
    low: Any = bounds.get("ge", bounds["gt"] + 1 if "gt" in bounds else None)
    high: Any = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else None)
    if low is None and high is None:
        value = raw % 10_000 + 1
    elif high is None:
        value = low + raw % 10_000
    elif low is None:
        value = high - raw % 10_000
    else:
        span = int(high - low)
        value = low + (raw % (span + 1) if span >= 0 else 0)
    step = bounds.get("multiple_of")
    if step:
        value = (value // step) * step
        if low is not None and value < low:
            value += step
    return kind(value)


def _real(raw: int, bounds: dict[str, Any]) -> float:
    """A float strictly inside the field's bounds, spread by `raw`."""
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    fraction = (raw % 998 + 1) / 1000  # in (0, 1): never on an exclusive bound
    if low is not None and high is not None:
        return float(low + (high - low) * fraction)
    if low is not None:
        return float(low + 1 + raw % 1000)
    if high is not None:
        return float(high - 1 - raw % 1000)
    return raw % 1000 + fraction


def _text(name: str, digest: str, bounds: dict[str, Any], where: str) -> str:
    pattern = bounds.get("pattern")
    if pattern is not None:
        return _matching(pattern, name, where)
    value = f"{name}-{digest[:8]}"
    low, high = bounds.get("min_length", 0), bounds.get("max_length")
    if len(value) < low:
        value = (value + digest * ((low // len(digest)) + 1))[:low]
    if high is not None:
        value = value[:high]
    return value


def _collection(
    annotation: Any, origin: Any, bounds: dict[str, Any], seed: str, name: str, where: str
) -> Any:
    arguments = typing.get_args(annotation)
    kind = origin or annotation
    if kind is tuple and arguments and arguments[-1] is not Ellipsis:
        return tuple(_build(arm, [], f"{seed}#{i}", name, where) for i, arm in enumerate(arguments))
    size = bounds.get("min_length", 0)
    item = arguments[0] if arguments else str
    items = [_build(item, [], f"{seed}#{i}", name, where) for i in range(size)]
    return kind(items)


def _matching(pattern: str, name: str, where: str) -> str:
    """The shortest string the pattern's first alternatives match (anchors ignored)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        text = _render(_parser.parse(pattern), _parser)
    except (re.error, ValueError, KeyError, TypeError) as error:
        raise UsageError(
            f"{where}: cannot derive a string matching {pattern!r} for field {name!r} "
            f"({error}); can the result: fake(..., results={{...: an instance}})"
        ) from error
    if re.fullmatch(pattern, text) is None and re.search(pattern, text) is None:
        raise UsageError(
            f"{where}: cannot derive a string matching {pattern!r} for field {name!r}; can "
            f"the result: fake(..., results={{...: an instance}})"
        )
    return text


def _render(parsed: Any, parser: Any) -> str:
    constants = parser
    out: list[str] = []
    for op, value in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(value))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_first_in(value))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, item = value
            out.append(_render(item, constants) * low)
        elif name == "SUBPATTERN":
            out.append(_render(value[-1], constants))
        elif name == "BRANCH":
            out.append(_render(value[1][0], constants))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        elif name == "CATEGORY":
            out.append(_category(str(value)))
        else:
            raise ValueError(f"unsupported regex construct {name}")
    return "".join(out)


def _first_in(items: list[tuple[Any, Any]]) -> str:
    negate = False
    for op, value in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
            continue
        if negate:
            break
        if name == "LITERAL":
            return chr(value)
        if name == "RANGE":
            return chr(value[0])
        if name == "CATEGORY":
            return _category(str(value))
    if negate:
        excluded = set()
        for op, value in items:
            if str(op) == "LITERAL":
                excluded.add(chr(value))
            elif str(op) == "RANGE":
                excluded.update(chr(c) for c in range(value[0], value[1] + 1))
        for candidate in "a0A_-":
            if candidate not in excluded:
                return candidate
    raise ValueError("empty character class")


def _category(name: str) -> str:
    if "DIGIT" in name and "NOT" not in name:
        return "0"
    if "SPACE" in name and "NOT" not in name:
        return " "
    return "a"
