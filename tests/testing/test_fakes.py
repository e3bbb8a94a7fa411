"""`fake(Interface)`: working participants built from interfaces, under both runners."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from pydantic import Field

from coordination import Context, Event, Participant, WorkflowStatus, action
from coordination.errors import UsageError
from coordination.orchestration import Orchestrator, step
from coordination.testing import (
    Fake,
    Fault,
    FaultKind,
    FaultPlan,
    assert_equivalent,
    fake,
    fault_plans,
    messages,
    run_both,
)
from examples.ecommerce import (
    Logistics,
    Notifications,
    OrderPlaced,
    PaymentCaptured,
    Payments,
    PlaceOrder,
    Sellers,
)
from tests.equivalence_shapes import (
    AsyncGather,
    AsyncOne,
    AsyncRoot,
    AsyncThree,
    AsyncThreeFlow,
    AsyncTwo,
    Go,
)

ORDER = OrderPlaced(
    order_id="o-1",
    customer_id="c-1",
    email="ada@example.com",
    sku="book",
    quantity=2,
    amount_cents=1500,
    address="1 Main St",
)


def shop(plan: FaultPlan | None = None) -> list[Participant]:
    return [
        fake(Payments, faults=plan),
        fake(Sellers, faults=plan),
        fake(Logistics, faults=plan),
        fake(Notifications, faults=plan),
    ]


def test_a_flow_runs_on_fakes_alone_and_outputs_carry_the_inputs_ids() -> None:
    participants = shop()
    run = PlaceOrder(*participants).run(ORDER, workflow_id="w")
    assert run.status is WorkflowStatus.COMPLETED
    payments = Fake.of(participants[0])
    [charge] = payments.applied("charge")
    assert charge.key == "w:Payments.charge"
    assert isinstance(charge.output, PaymentCaptured)
    assert charge.output.order_id == "o-1"  # copied from the input by name
    assert charge.output.amount_cents == 1500
    assert run.output is not None
    assert run.output.email == "ada@example.com"


def test_derived_results_are_deterministic_per_key_and_differ_between_keys() -> None:
    first, again, other = shop(), shop(), shop()
    PlaceOrder(*first).run(ORDER, workflow_id="w")
    PlaceOrder(*again).run(ORDER, workflow_id="w")
    PlaceOrder(*other).run(ORDER, workflow_id="x")
    assert [Fake.of(p).snapshot() for p in first] == [Fake.of(p).snapshot() for p in again]
    ids = {Fake.of(p).applied()[0].output.payment_id for p in (first[0], other[0])}
    assert len(ids) == 2


def test_a_fake_is_idempotent_by_key_and_its_compensation_undoes_what_was_applied() -> None:
    plan = FaultPlan.of(Fault("Sellers.reserve_stock", 1, FaultKind.REFUSAL))
    participants = shop(plan)
    run = PlaceOrder(*participants).run(ORDER, workflow_id="w")
    assert run.status is WorkflowStatus.COMPENSATED
    payments = Fake.of(participants[0])
    assert payments.applied() == []
    [charge] = payments.undone("charge")
    assert charge.undone_by == "w:Payments.charge:undo"
    assert [c.target for c in payments.calls] == ["Payments.charge", "Payments.refund"]


def test_the_same_key_again_answers_the_first_result_and_applies_nothing() -> None:
    payments = fake(Payments)
    ctx = Context("w", "w:Payments.charge", 1, None)
    first = payments.charge(ORDER, ctx)
    again = payments.charge(ORDER, Context("w", "w:Payments.charge", 2, None))
    assert again == first
    ledger = Fake.of(payments)
    assert len(ledger.effects) == 1
    assert [c.replayed for c in ledger.calls] == [False, True]


def test_an_input_typed_undo_of_nothing_applied_does_nothing() -> None:
    sellers = fake(Sellers)
    ledger = Fake.of(sellers)
    sellers.release_stock(ORDER, Context("w", "w:Sellers.reserve_stock:undo", 1, None))
    assert ledger.effects == {}
    assert [c.compensation for c in ledger.calls] == [True]


def test_canned_results_are_checked_and_used() -> None:
    captured = PaymentCaptured(
        order_id="o-1", payment_id="pay-9", customer_id="c-1", amount_cents=1500
    )
    payments = fake(Payments, results={"charge": captured})
    assert payments.charge(ORDER, Context("w", "k", 1, None)) is captured
    computed = fake(Payments, results={"Payments.charge": lambda order: captured})
    assert computed.charge(ORDER, Context("w", "k", 1, None)) is captured
    with pytest.raises(UsageError, match="must return a PaymentCaptured, got str"):
        fake(Payments, results={"charge": "paid"})
    with pytest.raises(UsageError, match="'pay' is none of its actions"):
        fake(Payments, results={"pay": captured})


def test_fake_refuses_what_is_not_an_interface() -> None:
    with pytest.raises(UsageError, match="takes a participant interface"):
        fake(ORDER)  # type: ignore[type-var]
    with pytest.raises(UsageError, match="declares no @action"):
        fake(Participant)
    with pytest.raises(UsageError, match="is not a fake"):
        Fake.of(object())  # type: ignore[arg-type]


class Coded(Event):
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]
    count: Annotated[int, Field(ge=10, le=12)]
    ratio: Annotated[float, Field(gt=0, lt=1)]
    tags: Annotated[list[str], Field(min_length=2)]
    note: str | None = None


class Coder(Participant):
    @action
    @abstractmethod
    def code(self, go: Go) -> Coded: ...


def test_derived_values_respect_field_constraints() -> None:
    coder = fake(Coder)
    coded = coder.code(Go(n=1))
    assert Coded.model_validate(coded.model_dump()) == coded
    assert coded.code == "AAA-0000"
    assert 10 <= coded.count <= 12
    assert len(coded.tags) == 2


class Opaque(Event):
    blob: Any


class Opaquer(Participant):
    @action
    @abstractmethod
    def make(self, go: Go) -> Opaque: ...


def test_an_output_that_cannot_be_derived_says_to_can_it() -> None:
    with pytest.raises(UsageError, match=r"can the result: fake\(\.\.\., results="):
        fake(Opaquer).make(Go(n=1))


def test_async_interfaces_get_async_fakes_under_both_runners() -> None:
    def participants() -> tuple[Participant, ...]:
        return (fake(AsyncRoot), fake(AsyncOne), fake(AsyncTwo), fake(AsyncThree),
                fake(AsyncGather))  # fmt: skip

    flow = AsyncThreeFlow(*participants())
    run = asyncio.run(flow.run_async(Go(n=1)))
    assert run.status is WorkflowStatus.COMPLETED
    assert_equivalent(run_both(AsyncThreeFlow, participants, Go(n=2)))


class Single(Orchestrator[OrderPlaced, PaymentCaptured]):
    steps = (step(Payments.charge),)


@settings(max_examples=50)
@given(message=messages(OrderPlaced), plan=fault_plans(PlaceOrder))
def test_fakes_reach_the_same_outcome_under_every_entry_point(
    message: OrderPlaced, plan: FaultPlan
) -> None:
    assert_equivalent(run_both(PlaceOrder, shop, message, plan))
