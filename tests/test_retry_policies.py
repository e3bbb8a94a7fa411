"""Retry policies under every entry point: until the deadline, and errors given up on.

`Retry(attempts=None)` keeps trying until the step's deadline (on the runner's clock, so
a virtual clock runs it without waiting); `give_up_on=` names errors never retried, so a
bank's own exception needs no wrapping in `NonRetryable`. The four entry points agree.
"""

from __future__ import annotations

from abc import abstractmethod

from hypothesis import given, settings

from coordination import Context, EntryKind, Event, Participant, Retry, WorkflowStatus, action
from coordination.orchestration import Orchestrator, step
from coordination.testing import FaultPlan, assert_equivalent, fault_plans, predict, run_both


class Transfer(Event):
    cents: int


class Withdrawn(Event):
    cents: int


class Deposited(Event):
    cents: int


class BankDown(Exception):
    """A transient outage: worth trying again."""


class InsufficientFunds(Exception):
    """The bank's own refusal: trying again cannot change it."""


class Bank(Participant):
    @action(retry=Retry(attempts=None, backoff=1.0, max_backoff=4.0, deadline=30.0))
    @abstractmethod
    def withdraw(self, transfer: Transfer, ctx: Context) -> Withdrawn: ...

    @action(retry=Retry(attempts=5, give_up_on=(InsufficientFunds,)))
    @abstractmethod
    def deposit(self, withdrawn: Withdrawn, ctx: Context) -> Deposited: ...


class MoneyTransfer(Orchestrator[Transfer, Deposited], name="tests.money-transfer"):
    steps = (step(Bank.withdraw), step(Bank.deposit))


class ScriptedBank(Bank):
    """Fails `withdraw` its first `outages` attempts (-1: always) and `deposit` with
    `deposit_error` (None: never)."""

    def __init__(self, outages: int = 0, deposit_error: type[Exception] | None = None) -> None:
        self.outages = outages
        self.deposit_error = deposit_error
        self.calls: list[str] = []

    def withdraw(self, transfer: Transfer, ctx: Context) -> Withdrawn:
        self.calls.append(f"withdraw#{ctx.attempt}")
        if self.outages < 0 or ctx.attempt <= self.outages:
            raise BankDown("try later")
        return Withdrawn(cents=transfer.cents)

    def deposit(self, withdrawn: Withdrawn, ctx: Context) -> Deposited:
        self.calls.append(f"deposit#{ctx.attempt}")
        if self.deposit_error is not None:
            raise self.deposit_error("no")
        return Deposited(cents=withdrawn.cents)

    def snapshot(self) -> list[str]:
        return self.calls


def test_attempts_none_retries_past_any_count_until_it_succeeds() -> None:
    both = run_both(MoneyTransfer, lambda: (ScriptedBank(outages=6),), Transfer(cents=5))

    assert_equivalent(both)
    assert {o.status for o in both.outcomes} == {WorkflowStatus.COMPLETED}
    bank = both["run"].participants[0]
    assert bank.snapshot()[:7] == [f"withdraw#{n}" for n in range(1, 8)]  # type: ignore[attr-defined]


def test_attempts_none_gives_up_at_the_deadline() -> None:
    both = run_both(MoneyTransfer, lambda: (ScriptedBank(outages=-1),), Transfer(cents=5))

    assert_equivalent(both)
    run = both["run"]
    assert run.status is WorkflowStatus.COMPENSATED
    # Waits of 1, 2, 4, 4, 4, ... seconds on the virtual clock: the 30 s deadline comes
    # after the 9th attempt (1+2+4*6 = 27 s waited; the next wait would end past it).
    tries = run.journal.of_kind(EntryKind.FAILED)
    assert len(tries) == 9
    assert tries[-1].detail == "step deadline of 30.0s reached: no more attempts"


def test_an_error_given_up_on_is_not_retried() -> None:
    both = run_both(
        MoneyTransfer,
        lambda: (ScriptedBank(deposit_error=InsufficientFunds),),
        Transfer(cents=5),
    )

    assert_equivalent(both)
    run = both["run"]
    assert run.status is WorkflowStatus.COMPENSATED
    assert run.journal.names(EntryKind.RETRIED) == []
    assert both["run"].participants[0].snapshot() == ["withdraw#1", "deposit#1"]  # type: ignore[attr-defined]


def test_other_errors_are_still_retried() -> None:
    both = run_both(
        MoneyTransfer, lambda: (ScriptedBank(deposit_error=BankDown),), Transfer(cents=5)
    )

    assert_equivalent(both)
    calls = both["run"].participants[0].snapshot()  # type: ignore[attr-defined]
    assert calls == ["withdraw#1", *(f"deposit#{n}" for n in range(1, 6))]


def test_output_of_reads_any_steps_output() -> None:
    run = MoneyTransfer(ScriptedBank()).run(Transfer(cents=5))

    assert run.output_of(Withdrawn) == Withdrawn(cents=5)
    assert run.output_of(Deposited) == run.output
    assert run.output_of(Transfer) is None  # the start message is no step's output


@settings(max_examples=100, deadline=None)
@given(plan=fault_plans(MoneyTransfer))
def test_every_fault_plan_agrees_and_is_predicted_with_unbounded_attempts(plan: FaultPlan) -> None:
    both = run_both(MoneyTransfer, lambda: (ScriptedBank(),), Transfer(cents=5), plan)

    assert_equivalent(both)
    assert both["run"].status is predict(MoneyTransfer, plan).status


def test_the_flow_graph_says_a_step_tries_until_its_deadline() -> None:
    from coordination import observe

    drawn = observe.graph(MoneyTransfer).mermaid()
    assert "attempts until its deadline" in drawn
    assert "5 attempts" in drawn  # Bank.deposit
