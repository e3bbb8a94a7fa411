"""Test helpers: a virtual clock, fault plans, saga invariants and hypothesis strategies.

Shipped in the package (as httpx ships MockTransport) so users property-test their own
flows the same way the library tests itself.
"""

from coordination.testing._clock import VirtualClock
from coordination.testing._faults import (
    Fault,
    FaultKind,
    FaultPlan,
    InjectedFault,
    InjectedRefusal,
)
from coordination.testing._saga import Prediction, assert_saga_atomic, predict, saga_problems
from coordination.testing._strategies import fault_plans, messages

__all__ = [
    "Fault",
    "FaultKind",
    "FaultPlan",
    "InjectedFault",
    "InjectedRefusal",
    "Prediction",
    "VirtualClock",
    "assert_saga_atomic",
    "fault_plans",
    "messages",
    "predict",
    "saga_problems",
]
