"""The bundled order, run under both runners on fakes, with a fault plan and a virtual clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coordination.choreography import Choreography, EventBus, ProcessView
from coordination.engine import Observer
from coordination.orchestration import WorkflowRun
from coordination.testing import Fault, FaultKind, FaultPlan, VirtualClock
from examples.ecommerce import PlaceOrder
from tests.testing.test_fakes import ORDER, shop

__all__ = ["ORDER", "PLANS", "choreographed", "orchestrated"]

#: Fault plans worth drawing, by name: each makes a different timeline.
PLANS: dict[str, Callable[[], FaultPlan]] = {
    "completed": FaultPlan.of,
    "retried": lambda: FaultPlan.of(Fault("Logistics.assign_courier", 1, FaultKind.ERROR)),
    "refused": lambda: FaultPlan.of(
        Fault("Logistics.assign_courier", 1, FaultKind.ERROR),
        Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL),
    ),
    "undo-failed": lambda: FaultPlan.of(
        Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL),
        *(Fault("Payments.refund", attempt, FaultKind.ERROR) for attempt in range(1, 6)),
    ),
    "late": lambda: FaultPlan.of(Fault("Logistics.assign_courier", 1, FaultKind.LATE)),
}


def orchestrated(
    plan: str = "completed", observers: Sequence[Observer] = (), workflow_id: str = "order-1"
) -> WorkflowRun[object]:
    orders = PlaceOrder(*shop(PLANS[plan]()), clock=VirtualClock(), observers=observers)
    return orders.run(ORDER, workflow_id=workflow_id)


def choreographed(
    plan: str = "completed", observers: Sequence[Observer] = (), workflow_id: str = "order-1"
) -> ProcessView:
    flow = Choreography(
        EventBus(),
        *shop(PLANS[plan]()),
        flow=PlaceOrder,
        clock=VirtualClock(),
        observers=observers,
    )
    flow.publish(ORDER, correlation_id=workflow_id)
    return flow.monitor.get(workflow_id)
