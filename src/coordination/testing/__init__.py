"""Test helpers: fakes, a virtual clock, fault plans, saga invariants, hypothesis strategies.

Shipped in the package (as httpx ships MockTransport) so users property-test their own
flows the same way the library tests itself.
"""

from typing import TYPE_CHECKING, Any

from coordination.testing._clock import VirtualClock
from coordination.testing._crash import CrashPoint, SimulatedCrash, assert_crash_safe, crash_points
from coordination.testing._equivalence import (
    ENTRY_POINTS,
    BothRuns,
    Outcome,
    assert_equivalent,
    journal_shape,
    net_effects,
    run_both,
    settle_late_results,
)
from coordination.testing._fakes import Effect, Fake, FakeCall, fake
from coordination.testing._faults import (
    Crash,
    Fault,
    FaultKind,
    FaultPlan,
    InjectedFault,
    InjectedRefusal,
)
from coordination.testing._invariants import (
    assert_invariants,
    effect_problems,
    journal_problems,
    status_problems,
)
from coordination.testing._queue_contract import WorkQueueContract
from coordination.testing._saga import Prediction, assert_saga_atomic, predict, saga_problems
from coordination.testing._store_contract import (
    ContractMessage,
    ContractOther,
    EventLogContract,
    StoreContract,
)
from coordination.testing._strategies import fault_plans, invalid_payloads, messages

if TYPE_CHECKING:
    from coordination.testing._machine import FlowMachine


def __getattr__(name: str) -> Any:
    """`FlowMachine` is a hypothesis state machine: imported (with hypothesis) on first use,
    so the rest of the kit imports without hypothesis installed."""
    if name == "FlowMachine":
        from coordination.testing._machine import FlowMachine

        return FlowMachine
    raise AttributeError(f"module 'coordination.testing' has no attribute {name!r}")


__all__ = [
    "ENTRY_POINTS",
    "BothRuns",
    "ContractMessage",
    "ContractOther",
    "Crash",
    "CrashPoint",
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
]
