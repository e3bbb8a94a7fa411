"""The public surface, pinned: changing what a module exports must be a deliberate edit here."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import coordination

EXPORTS: dict[str, list[str]] = {
    "coordination": [
        "Action",
        "Clock",
        "Command",
        "Compensation",
        "Context",
        "EntryKind",
        "Envelope",
        "Event",
        "Journal",
        "JournalEntry",
        "Message",
        "NonRetryable",
        "Participant",
        "Retry",
        "SystemClock",
        "WorkflowStatus",
        "action",
        "from_json",
        "to_json",
    ],
    "coordination.errors": [
        "AttemptTimeout",
        "BindingError",
        "CompensationFailed",
        "CoordinationError",
        "DefinitionError",
        "FlowChanged",
        "InvalidTransition",
        "JoinTimeout",
        "LeaseLost",
        "MalformedMessage",
        "MessageError",
        "NonRetryable",
        "OutputTypeError",
        "StepFailed",
        "StoreError",
        "UnknownMessageType",
        "UsageError",
        "WorkflowBusy",
        "WorkflowConflict",
        "WorkflowError",
        "WorkflowNotFound",
    ],
    "coordination.orchestration": [
        "LIFECYCLE",
        "FlowPlan",
        "Orchestrator",
        "Parallel",
        "Step",
        "WorkflowRun",
        "lifecycle_mermaid",
        "parallel",
        "sleep",
        "step",
        "wait",
    ],
    "coordination.stores": [
        "DeadLetter",
        "EventLog",
        "Finish",
        "MemoryStore",
        "OwedRun",
        "PostgresStore",
        "Request",
        "RunRecord",
        "SQLiteStore",
        "StepOutcome",
        "StepRecord",
        "Store",
        "Write",
    ],
    "coordination.choreography": [
        "ActionFailed",
        "Choreography",
        "EventBus",
        "HandlerFailed",
        "ProcessMonitor",
        "ProcessView",
        "wait",
    ],
    "coordination.testing": [
        "ENTRY_POINTS",
        "BothRuns",
        "ContractMessage",
        "Crash",
        "CrashPoint",
        "ContractOther",
        "Effect",
        "EventLogContract",
        "Fake",
        "FakeCall",
        "Fault",
        "FaultKind",
        "FaultPlan",
        "FlowMachine",
        "InjectedFault",
        "InjectedRefusal",
        "Outcome",
        "Prediction",
        "SimulatedCrash",
        "StoreContract",
        "VirtualClock",
        "WorkQueueContract",
        "assert_crash_safe",
        "assert_equivalent",
        "assert_invariants",
        "assert_saga_atomic",
        "crash_points",
        "effect_problems",
        "fake",
        "fault_plans",
        "invalid_payloads",
        "journal_problems",
        "journal_shape",
        "messages",
        "net_effects",
        "predict",
        "run_both",
        "saga_problems",
        "settle_late_results",
        "status_problems",
    ],
    "coordination.observe": [
        "CODES",
        "DEFAULT_LEVELS",
        "STATES",
        "Attempt",
        "Finding",
        "FlowDiagram",
        "LogObserver",
        "RunView",
        "Severity",
        "Timeline",
        "TimelineRow",
        "graph",
        "lint",
        "timeline",
    ],
    "coordination.observe.otel": [
        "SpanObserver",
        "conversation_span_id",
        "trace_id_for",
    ],
}

#: The public import paths DESIGN.md names (all written: each is pinned in EXPORTS).
DESIGNED_PUBLIC_MODULES = {
    "coordination",
    "coordination.errors",
    "coordination.orchestration",
    "coordination.choreography",
    "coordination.stores",
    "coordination.testing",
    "coordination.observe",
    "coordination.observe.otel",
}
#: Public by name but not a library import path: the `coordination` command (extra `cli`).
COMMAND_MODULES = {"coordination.cli"}
#: The layer both runners drive (DESIGN.md "Package layout"): internal, its names reach
#: users through the runners' and the testing kit's `__all__`.
INTERNAL_LAYERS = {"coordination.engine"}
#: Imports a command module may lack without its extra installed.
OPTIONAL_DEPENDENCIES = {"typer", "rich", "click"}

#: What DESIGN.md lists under `coordination` must stay there.
DESIGNED_TOP_LEVEL = {
    "Event",
    "Command",
    "Envelope",
    "Participant",
    "action",
    "Context",
    "Retry",
    "WorkflowStatus",
    "to_json",
    "from_json",
    "NonRetryable",
}


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_all_is_pinned(module_name: str) -> None:
    module = _import(module_name)
    assert sorted(module.__all__) == sorted(EXPORTS[module_name])


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_all_has_no_duplicates(module_name: str) -> None:
    names = _import(module_name).__all__
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_every_exported_name_is_importable(module_name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)  # what users get from a star import
    for name in EXPORTS[module_name]:
        assert name in namespace, f"{module_name}.{name}"
        assert namespace[name] is getattr(_import(module_name), name)


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_exported_names_are_not_private(module_name: str) -> None:
    assert not [name for name in _import(module_name).__all__ if name.startswith("_")]


def test_design_names_are_exported_from_the_top_level() -> None:
    assert set(coordination.__all__) >= DESIGNED_TOP_LEVEL


def test_errors_share_one_class_with_the_top_level() -> None:
    from coordination.errors import NonRetryable

    assert coordination.NonRetryable is NonRetryable


def _public_modules() -> list[str]:
    found = ["coordination"]
    for info in pkgutil.walk_packages(coordination.__path__, "coordination."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def test_the_walk_finds_the_known_public_modules() -> None:
    assert set(_public_modules()) >= set(EXPORTS)


def test_every_designed_module_is_pinned() -> None:
    assert set(EXPORTS) == DESIGNED_PUBLIC_MODULES


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_public_module_is_a_designed_path_and_defines_all(module_name: str) -> None:
    if module_name in INTERNAL_LAYERS:
        assert "Internal" in (_import(module_name).__doc__ or ""), module_name
        return
    assert module_name in DESIGNED_PUBLIC_MODULES | COMMAND_MODULES, (
        f"{module_name} is a new public module: add it to DESIGN.md's list and pin it here"
    )
    try:
        module = _import(module_name)
    except ModuleNotFoundError as error:
        if module_name in COMMAND_MODULES and error.name in OPTIONAL_DEPENDENCIES:
            pytest.skip(f"{module_name} needs its extra: {error}")
        raise
    assert isinstance(module.__all__, list | tuple)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_version() -> None:
    assert isinstance(coordination.__version__, str)
    assert coordination.__version__.count(".") >= 1
