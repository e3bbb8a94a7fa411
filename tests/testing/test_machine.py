"""The kit's state machine on the shop, under both runners, and a seeded bug it catches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from coordination.engine import _undo
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
