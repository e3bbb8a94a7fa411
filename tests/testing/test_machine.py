"""The kit's state machine on the shop, under both runners, and a seeded bug it catches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from coordination import WorkflowStatus
from coordination.engine import _undo
from coordination.testing import FaultPlan, FlowMachine, fake, messages
from examples.checkout.flow import (
    WEBHOOK_TIMEOUT,
    CheckoutStarted,
    Orders,
    PaymentFailed,
    Payments,
    PaymentSettled,
    WebhookCheckout,
)
from examples.ecommerce.properties import ChoreographedShopMachine, ShopMachine

QUICK = settings(
    max_examples=30, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


def test_the_shop_machine_orchestrated() -> None:
    run_state_machine_as_test(ShopMachine, settings=QUICK)


def test_the_shop_machine_choreographed() -> None:
    run_state_machine_as_test(ChoreographedShopMachine, settings=QUICK)


@pytest.mark.long
@pytest.mark.parametrize("machine", [ShopMachine, ChoreographedShopMachine])
def test_the_shop_machine_at_length(machine: Any) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(QUICK, max_examples=1_000, stateful_step_count=12),
    )


def test_the_machine_catches_a_compensation_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _undo.plan_undos
    monkeypatch.setattr(
        _undo, "plan_undos", lambda *a: [u for u in real(*a) if u.action.key != "Payments.charge"]
    )
    seeded = settings(
        QUICK, max_examples=100, phases=(Phase.generate,), report_multiple_bugs=False,
        database=None,
    )  # fmt: skip
    with pytest.raises(AssertionError, match="still applied"):
        run_state_machine_as_test(ShopMachine, settings=seeded)


# -- a flow that waits for an outside message --------------------------------------------------


class CheckoutMachine(FlowMachine):
    """The checkout example: a business outcome, then a webhook wait with a timeout."""

    flow = WebhookCheckout
    starts = messages(CheckoutStarted)
    outside = st.one_of(messages(PaymentSettled), messages(PaymentFailed))

    def participants(self) -> list[Any]:
        return [fake(Payments), fake(Orders)]


class ChoreographedCheckoutMachine(CheckoutMachine):
    runner = "choreography"


@pytest.mark.parametrize("machine", [CheckoutMachine, ChoreographedCheckoutMachine])
def test_a_machine_delivers_outside_messages_and_fires_timers(machine: Any) -> None:
    run_state_machine_as_test(machine, settings=QUICK)


def test_the_machine_sees_waits_resumed_and_timed_out() -> None:
    # A deterministic walk: one instance is settled by its webhook, one times out.
    machine = CheckoutMachine()
    machine._begin_with(FaultPlan())
    first, second = (CheckoutStarted(order_id=f"o-{n}", amount_cents=100) for n in (1, 2))
    machine._run(first, machine._new_id(), machine.store)
    machine._run(second, machine._new_id(), machine.store)
    assert [status_of(machine, w) for w in machine.started] == [WorkflowStatus.WAITING] * 2
    machine._runner(machine.store).send("machine-1", PaymentSettled(order_id="o-1"))
    machine.wait(WEBHOOK_TIMEOUT + 1)  # the second's webhook never came: its timer fires
    machine.finished_instances_keep_the_invariants()
    assert [status_of(machine, w) for w in machine.started] == [
        WorkflowStatus.COMPLETED,
        WorkflowStatus.COMPENSATED,
    ]
    machine.teardown()


def status_of(machine: FlowMachine, workflow_id: str) -> WorkflowStatus:
    record = machine.store.get_run(workflow_id)
    assert record is not None
    return record.status
