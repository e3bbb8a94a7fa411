"""Hypothesis strategies: fault plans for a flow, and messages from their pydantic models.

hypothesis is a test dependency, not a runtime one: it is imported when a strategy is
built, so `import coordination.testing` works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coordination._messages import Message
from coordination.engine import FlowPlan
from coordination.orchestration._orchestrator import Orchestrator
from coordination.testing._faults import Fault, FaultKind, FaultPlan

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["fault_plans", "messages"]

_FORWARD_KINDS = (FaultKind.ERROR, FaultKind.TIMEOUT, FaultKind.REFUSAL, FaultKind.LATE)
_UNDO_KINDS = (FaultKind.ERROR, FaultKind.TIMEOUT)


def fault_plans(
    flow: type[Orchestrator[Any, Any]] | FlowPlan,
    *,
    kinds: Sequence[FaultKind] = _FORWARD_KINDS,
    compensation_kinds: Sequence[FaultKind] = _UNDO_KINDS,
    compensations: bool = True,
) -> SearchStrategy[FaultPlan]:
    """Plans that fail any attempts of any steps (and compensations) of `flow`.

    Each action may fail at any subset of its attempts, with any of `kinds`; with
    `compensations`, each compensation may too. Shrinks towards no faults.
    """
    from hypothesis import strategies as st

    definition = flow if isinstance(flow, FlowPlan) else flow.plan
    targets: list[tuple[str, int, Sequence[FaultKind]]] = []
    for compiled in definition.steps:
        targets.append((compiled.key, compiled.step.retry.attempts, kinds))
        if compensations and compiled.compensation is not None:
            compensation = compiled.compensation
            targets.append((compensation.qualname, compensation.retry.attempts, compensation_kinds))

    def for_target(target: str, attempts: int, allowed: Sequence[FaultKind]) -> Any:
        return st.dictionaries(
            st.integers(min_value=1, max_value=attempts),
            st.sampled_from(list(allowed)),
            max_size=attempts,
        ).map(lambda chosen: [Fault(target, a, k) for a, k in sorted(chosen.items())])

    if not targets:
        return st.just(FaultPlan())
    return st.tuples(*(for_target(*target) for target in targets)).map(
        lambda groups: FaultPlan(tuple(fault for group in groups for fault in group))
    )


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
