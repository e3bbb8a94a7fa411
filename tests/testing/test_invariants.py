"""The kit's invariants: each says what broke, and each catches a seeded bug.

The seeded bugs break a runner (by patching one engine rule for one test) or a participant,
then run the same property a user would write; the property must fail within the default
example count. A kit whose properties pass on a broken saga proves nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, given, settings

from coordination import Context, EntryKind, JournalEntry, WorkflowStatus
from coordination._journal import Journal
from coordination.engine import _attempts, _undo, _undo_facts
from coordination.testing import (
    Fake,
    FaultPlan,
    VirtualClock,
    assert_equivalent,
    assert_invariants,
    effect_problems,
    fake,
    fault_plans,
    journal_problems,
    run_both,
)
from examples.ecommerce import Logistics, Notifications, Payments, PlaceOrder, Sellers
from tests.testing.test_fakes import ORDER, shop


def entry(kind: EntryKind, name: str = "flow", attempt: int = 0, **fields: Any) -> JournalEntry:
    participant, _, action = name.partition(".")
    return JournalEntry(kind, participant, action, "wf", attempt=attempt, **fields)


def test_a_real_journal_is_well_formed() -> None:
    participants = shop()
    run = PlaceOrder(*participants).run(ORDER)
    assert journal_problems(run.journal) == []
    assert_invariants(run, participants, flow=PlaceOrder)


def test_a_journal_that_does_not_open_with_the_start_says_so() -> None:
    journal = Journal([entry(EntryKind.STARTED, "A.go", 1), entry(EntryKind.COMPLETED, "A.go", 1)])
    assert journal_problems(journal, finished=False) == [
        "the journal opens with started, not workflow_started"
    ]


def test_an_attempt_that_never_ended_is_named() -> None:
    journal = Journal(
        [
            entry(EntryKind.WORKFLOW_STARTED),
            entry(EntryKind.STARTED, "A.go", 1),
            entry(EntryKind.WORKFLOW_FINISHED, detail="completed"),
        ]
    )
    assert journal_problems(journal) == ["A.go attempt 1 started and never ended"]
    assert journal_problems(journal[:2], finished=False) == []  # still in flight


def test_attempt_numbers_that_go_back_are_named_unless_a_recovery_came_between() -> None:
    started = [entry(EntryKind.WORKFLOW_STARTED)]
    twice = [entry(EntryKind.STARTED, "A.go", 1), entry(EntryKind.FAILED, "A.go", 1)] * 2
    assert journal_problems(Journal(started + twice), finished=False) == [
        "A.go attempt 1 started after attempt 1: attempt numbers only grow"
    ]


def test_a_cause_nothing_produced_is_named() -> None:
    journal = Journal(
        [
            entry(EntryKind.WORKFLOW_STARTED),
            entry(EntryKind.STARTED, "A.go", 1),
            entry(EntryKind.COMPLETED, "A.go", 1),
            entry(EntryKind.STARTED, "B.go", 1, causation_id="C.never"),
            entry(EntryKind.COMPLETED, "B.go", 1, causation_id="C.never"),
        ]
    )
    problems = journal_problems(journal, finished=False)
    assert problems[0] == "started B.go is caused by 'C.never', which nothing before it produced"


def test_a_forward_attempt_after_the_end_is_named() -> None:
    journal = Journal(
        [
            entry(EntryKind.WORKFLOW_STARTED),
            entry(EntryKind.WORKFLOW_FINISHED, detail="completed"),
            entry(EntryKind.STARTED, "A.go", 1),
            entry(EntryKind.COMPLETED, "A.go", 1),
        ]
    )
    assert journal_problems(journal)[0].startswith("after workflow_finished, only a late result")


def test_effects_applied_twice_or_left_applied_are_named() -> None:
    payments = Fake.of(fake(Payments))
    for key in ("wf:Payments.charge", "wf:Payments.charge#2"):
        payments.charge(ORDER, Context("wf", key, 1, None))  # type: ignore[attr-defined]
    problems = effect_problems(WorkflowStatus.COMPENSATED, [payments])
    assert problems[0].startswith("Payments.charge was applied 2 times in wf")
    assert "is still applied (key wf:Payments.charge) on a COMPENSATED instance" in problems[1]


# -- seeded bugs: the property a user writes must fail on each --------------------------------

#: The default example count, stopping at the first failure found (no shrinking: that it
#: fails is what these tests check, not how small hypothesis can make the example).
SEEDED = settings(
    max_examples=100,
    database=None,
    phases=(Phase.generate,),
    report_multiple_bugs=False,
)


def equivalent_under_every_plan() -> None:
    """The property: every fault plan, all four entry points, fakes, invariants included."""

    @SEEDED
    @given(plan=fault_plans(PlaceOrder))
    def prop(plan: FaultPlan) -> None:
        assert_equivalent(run_both(PlaceOrder, shop, ORDER, plan))

    prop()


def invariants_hold_under_every_plan() -> None:
    """The property under orchestration alone: the run and its fakes keep the invariants."""

    @SEEDED
    @given(plan=fault_plans(PlaceOrder))
    def prop(plan: FaultPlan) -> None:
        participants = shop()
        FaultPlan(plan.faults).install(*participants)
        run = PlaceOrder(*participants, clock=VirtualClock()).run(ORDER)
        assert_invariants(run, participants, flow=PlaceOrder)

    prop()


def test_the_properties_hold_on_the_real_runners() -> None:
    invariants_hold_under_every_plan()


def test_reversed_compensation_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _undo.plan_undos
    monkeypatch.setattr(_undo, "plan_undos", lambda *a: list(reversed(real(*a))))
    with pytest.raises(AssertionError, match=r"newest.first"):
        invariants_hold_under_every_plan()


def test_a_skipped_compensation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _undo.plan_undos
    monkeypatch.setattr(
        _undo, "plan_undos", lambda *a: [u for u in real(*a) if u.action.key != "Payments.charge"]
    )
    with pytest.raises(AssertionError, match="still applied"):
        invariants_hold_under_every_plan()


class Careless(Payments):
    """A compensation that does nothing (and says it refunded)."""

    def __init__(self) -> None:
        self.inner = Fake.of(fake(Payments))

    def charge(self, order: Any, ctx: Context) -> Any:
        return self.inner.charge(order, ctx)  # type: ignore[attr-defined]

    def refund(self, payment: Any, ctx: Context) -> Any:
        from examples.ecommerce import PaymentRefunded

        return PaymentRefunded(order_id=payment.order_id, payment_id=payment.payment_id,
                               amount_cents=payment.amount_cents)  # fmt: skip

    def snapshot(self) -> Any:
        return self.inner.snapshot()


def test_a_compensation_doing_nothing_is_caught() -> None:
    def careless_shop() -> list[Any]:
        return [Careless(), fake(Sellers), fake(Logistics), fake(Notifications)]

    @SEEDED
    @given(plan=fault_plans(PlaceOrder))
    def prop(plan: FaultPlan) -> None:
        participants = careless_shop()
        FaultPlan(plan.faults).install(*participants)
        run = PlaceOrder(*participants, clock=VirtualClock()).run(ORDER)
        assert_invariants(run, [participants[0].inner, *participants[1:]], flow=PlaceOrder)

    with pytest.raises(AssertionError, match=r"Payments\.charge is still applied"):
        prop()


def test_a_key_per_attempt_is_caught_as_an_effect_applied_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _attempts.Attempts.begin

    def begin(self: Any) -> Any:
        ctx = real(self)
        if ctx is None:
            return None
        return Context(ctx.correlation_id, f"{ctx.idempotency_key}#{ctx.attempt}",
                       ctx.attempt, ctx.deadline, ctx.clock)  # fmt: skip

    monkeypatch.setattr(_attempts.Attempts, "begin", begin)
    with pytest.raises(AssertionError, match=r"applied \d times"):
        invariants_hold_under_every_plan()


def test_a_late_result_left_applied_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_undo_facts.UndoFacts, "late", lambda self, *a, **k: None)
    with pytest.raises(AssertionError, match="still applied"):
        invariants_hold_under_every_plan()


def test_the_equivalence_property_also_catches_a_skipped_compensation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _undo.plan_undos
    monkeypatch.setattr(
        _undo, "plan_undos", lambda *a: [u for u in real(*a) if u.action.key != "Payments.charge"]
    )
    with pytest.raises(AssertionError, match="still applied"):
        equivalent_under_every_plan()
