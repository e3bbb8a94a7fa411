"""Hypothesis strategies: fault plans for a flow, and messages from their pydantic models.

hypothesis is a test dependency, not a runtime one: it is imported when a strategy is
built, so `import coordination.testing` works without it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from coordination._messages import Message
from coordination._retry import Retry
from coordination.engine import FlowPlan
from coordination.orchestration._orchestrator import Orchestrator
from coordination.testing._faults import Crash, Fault, FaultKind, FaultPlan

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["fault_plans", "invalid_payloads", "messages"]

_FORWARD_KINDS = (FaultKind.ERROR, FaultKind.TIMEOUT, FaultKind.REFUSAL, FaultKind.LATE)
_UNDO_KINDS = (FaultKind.ERROR, FaultKind.TIMEOUT)


#: How many attempts of a step retried until it succeeds (`Retry(attempts=None)`) a plan
#: may fail: enough to retry several times, and the step still ends.
UNBOUNDED_FAULTS = 4


def _faultable(retry: Retry) -> int:
    return UNBOUNDED_FAULTS if retry.attempts is None else retry.attempts


def fault_plans(
    flow: type[Orchestrator[Any, Any]] | FlowPlan,
    *,
    kinds: Sequence[FaultKind] = _FORWARD_KINDS,
    compensation_kinds: Sequence[FaultKind] = _UNDO_KINDS,
    compensations: bool = True,
    crashes: bool = False,
) -> SearchStrategy[FaultPlan]:
    """Plans that fail any attempts of any steps (and compensations) of `flow`.

    Each action may fail at any subset of its attempts, with any of `kinds` (a `LATE`
    fault is a late result); with `compensations`, each compensation may too. With
    `crashes`, every plan also says where the process dies (`plan.crash`, a `Crash` at
    one store write, for `assert_crash_safe(..., crash=plan.crash)`). Shrinks towards no
    faults and the first write.
    """
    from hypothesis import strategies as st

    definition = flow if isinstance(flow, FlowPlan) else flow.plan
    targets: list[tuple[str, int, Sequence[FaultKind]]] = []
    for compiled in definition.steps:
        targets.append((compiled.key, _faultable(compiled.step.retry), kinds))
        if compensations and compiled.compensation is not None:
            compensation = compiled.compensation
            targets.append(
                (compensation.qualname, _faultable(compensation.retry), compensation_kinds)
            )

    def for_target(target: str, attempts: int, allowed: Sequence[FaultKind]) -> Any:
        return st.dictionaries(
            st.integers(min_value=1, max_value=attempts),
            st.sampled_from(list(allowed)),
            max_size=attempts,
        ).map(lambda chosen: [Fault(target, a, k) for a, k in sorted(chosen.items())])

    plans: SearchStrategy[FaultPlan]
    if not targets:
        plans = st.just(FaultPlan())
    else:
        plans = st.tuples(*(for_target(*target) for target in targets)).map(
            lambda groups: FaultPlan(tuple(fault for group in groups for fault in group))
        )
    if not crashes:
        return plans
    # A run writes about twice per action and undo (more under a choreography); a drawn
    # write past the last is taken modulo the writes the run makes.
    bound = 2 * (len(definition.steps) + len(targets)) + 4
    crash = st.builds(Crash, write=st.integers(1, bound), after=st.booleans())
    return st.builds(FaultPlan, plans.map(lambda plan: plan.faults), crash)


def messages(message_type: type[Message], **fields: Any) -> SearchStrategy[Message]:
    """Valid instances of `message_type`, built from its pydantic fields and constraints.

    Understands the common field types (str, int, float, bool, nested messages, and
    `Field(gt=, ge=, lt=, le=, min_length=, max_length=, pattern=)`); anything else comes
    from `st.from_type`. Fields given as keyword arguments are fixed values or strategies.
    """
    from hypothesis import strategies as st

    built: dict[str, Any] = {}
    for name, info in message_type.model_fields.items():
        if name in fields:
            value = fields[name]
            built[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
        else:
            built[name] = _field_strategy(info)
    unknown = set(fields) - set(message_type.model_fields)
    if unknown:
        raise TypeError(f"{message_type.__name__} has no fields {sorted(unknown)}")

    def valid(values: dict[str, Any]) -> bool:
        try:
            message_type.model_validate(values)
        except ValueError:
            return False
        return True

    return (
        st.fixed_dictionaries(built)
        .filter(valid)
        .map(lambda values: message_type.model_validate(values))
    )


def _field_strategy(info: Any) -> Any:
    import annotated_types as at
    from hypothesis import strategies as st

    annotation = info.annotation
    bounds: dict[str, Any] = {}
    pattern: str | None = None
    for meta in info.metadata:
        if isinstance(meta, at.Gt):
            bounds["gt"] = meta.gt
        elif isinstance(meta, at.Ge):
            bounds["ge"] = meta.ge
        elif isinstance(meta, at.Lt):
            bounds["lt"] = meta.lt
        elif isinstance(meta, at.Le):
            bounds["le"] = meta.le
        elif isinstance(meta, at.MinLen):
            bounds["min_len"] = meta.min_length
        elif isinstance(meta, at.MaxLen):
            bounds["max_len"] = meta.max_length
        elif getattr(meta, "pattern", None) is not None:
            pattern = meta.pattern
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds.get("ge", bounds["gt"] + 1 if "gt" in bounds else None)
        high = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else None)
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        return st.floats(
            min_value=bounds.get("ge", bounds.get("gt")),
            max_value=bounds.get("le", bounds.get("lt")),
            exclude_min="gt" in bounds,
            exclude_max="lt" in bounds,
            allow_nan=False,
            allow_infinity=False,
        )
    if annotation is str:
        if pattern is not None:
            return st.from_regex(pattern, fullmatch=True)
        return st.text(min_size=bounds.get("min_len", 0), max_size=bounds.get("max_len", 20))
    if isinstance(annotation, type) and issubclass(annotation, Message):
        return messages(annotation)
    return st.from_type(annotation)


#: Values of the wrong type for any field (each refused by a field of another type).
_WRONG_VALUES: tuple[Any, ...] = (
    None, [], {}, [1, 2], {"nested": {"deeper": [None]}}, 1e308, -(2**70), float("nan"),
    "", "not a number", True, b"bytes",
)  # fmt: skip


def invalid_payloads(message_type: type[Message], *, as_json: bool = False) -> SearchStrategy[Any]:
    """Payloads `message_type` must refuse: for bad-input tests.

    Each starts from a valid instance's fields and breaks it one way: a required field
    missing, an extra field, a field of the wrong type, a constraint violated (too short,
    too long, out of range, not matching its pattern), or not an object at all. With
    `as_json`, each is JSON text for `from_json` naming the type (plus hostile documents:
    deep nesting, a type name that names a module, huge numbers, invalid JSON), which must
    raise a `MessageError` and import nothing. Every payload is checked to be refused
    before it is drawn (`Type.model_validate` raises `ValidationError`).
    """
    from hypothesis import strategies as st
    from pydantic import ValidationError

    fields = message_type.model_fields
    base = messages(message_type).map(lambda m: m.model_dump(mode="json"))

    def missing(data: dict[str, Any], draw: Any) -> dict[str, Any]:
        required = [n for n, info in fields.items() if info.is_required()]
        if not required:
            return {**data, "unexpected": 1}
        name = draw(st.sampled_from(required))
        return {k: v for k, v in data.items() if k != name}

    def extra(data: dict[str, Any], draw: Any) -> dict[str, Any]:
        name = draw(st.text(min_size=1, max_size=8).filter(lambda n: n not in fields))
        return {**data, name: draw(st.sampled_from(_WRONG_VALUES))}

    def wrong_type(data: dict[str, Any], draw: Any) -> dict[str, Any]:
        if not fields:
            return {"unexpected": None}
        name = draw(st.sampled_from(sorted(fields)))
        return {**data, name: draw(st.sampled_from(_WRONG_VALUES))}

    def violated(data: dict[str, Any], draw: Any) -> dict[str, Any]:
        broken = _violations(message_type)
        if not broken:
            return wrong_type(data, draw)
        name, value = draw(st.sampled_from(broken))
        return {**data, name: value}

    @st.composite
    def payload(draw: Any) -> Any:
        data = draw(base)
        how = draw(st.sampled_from((missing, extra, wrong_type, violated, None)))
        if how is None:
            return draw(st.sampled_from(([], "text", 3, None, [data])))
        return how(data, draw)

    def refused(value: Any) -> bool:
        try:
            message_type.model_validate(value)
        except ValidationError:
            return True
        return False

    payloads = payload().filter(refused)
    if not as_json:
        return payloads
    from coordination._messages import type_name_of

    name = type_name_of(message_type)

    def documents(value: Any) -> str:
        return json.dumps({"type": name, "data": value}, allow_nan=True, default=repr)

    def hostile(index: int) -> str:
        quoted = json.dumps(name)
        return (
            "[" * 100_000 + "]" * 100_000,
            '{"type": "venv.__main__:X", "data": {}}',
            '{"type": "os:system", "data": {"command": "true"}}',
            f'{{"type": {quoted}, "data": {{}}, "version": 1e999}}',
            f'{{"type": {quoted}, "data": ' + "[" * 5000 + "]" * 5000 + "}",
            '{"type": ".x:Y", "data": {}}',
            "not json at all",
            '{"data": {}}',
            "",
        )[index]

    return st.one_of(payloads.map(documents), st.integers(0, 8).map(hostile))


def _violations(message_type: type[Message]) -> list[tuple[str, Any]]:
    """(field, value) pairs breaking one declared constraint each."""
    import annotated_types as at

    broken: list[tuple[str, Any]] = []
    for name, info in message_type.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, at.Gt):
                broken.append((name, meta.gt))
            elif isinstance(meta, at.Ge):
                broken.append((name, cast(Any, meta.ge) - 1))
            elif isinstance(meta, at.Lt):
                broken.append((name, meta.lt))
            elif isinstance(meta, at.Le):
                broken.append((name, cast(Any, meta.le) + 1))
            elif isinstance(meta, at.MinLen) and meta.min_length > 0:
                broken.append((name, "" if info.annotation is str else []))
            elif isinstance(meta, at.MaxLen):
                broken.append((name, "x" * (meta.max_length + 1)))
            elif getattr(meta, "pattern", None) is not None:
                broken.append((name, "\x00 does not match"))
    return broken
