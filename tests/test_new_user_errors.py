"""Errors a new user hit (issue: one engine), each a typed error saying what to fix.

Each was found by trying the library as a new user would: a half-done flow, a raw
`AttributeError`, an internal exception, a hang. Every one now fails before any effect.
"""

from __future__ import annotations

import asyncio
import re
from abc import abstractmethod

import pytest

from coordination import Context, Event, Participant, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError, UsageError, WorkflowConflict
from coordination.orchestration import Orchestrator, parallel, step


class LoanApplied(Event):
    loan_id: str


class CreditHeld(Event):
    loan_id: str


class Appraised(Event):
    loan_id: str


class Disbursed(Event):
    loan_id: str


class Credit(Participant):
    @action
    @abstractmethod
    def hold(self, application: LoanApplied, ctx: Context) -> CreditHeld: ...

    @hold.compensation
    @abstractmethod
    def release(self, application: LoanApplied, ctx: Context) -> None: ...


class Appraisal(Participant):
    @action
    @abstractmethod
    def appraise(self, application: LoanApplied, ctx: Context) -> Appraised: ...


class Bank(Participant):
    @action
    @abstractmethod
    def disburse(self, held: CreditHeld, value: Appraised, ctx: Context) -> Disbursed: ...


class Loan(Orchestrator[LoanApplied, Disbursed]):
    steps = (parallel(Credit.hold, Appraisal.appraise), step(Bank.disburse))


class Ledger:
    def __init__(self) -> None:
        self.effects: list[str] = []


class CreditDesk(Credit):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def hold(self, application: LoanApplied, ctx: Context) -> CreditHeld:
        self.ledger.effects.append("hold")
        return CreditHeld(loan_id=application.loan_id)

    def release(self, application: LoanApplied, ctx: Context) -> None:
        self.ledger.effects.append("release")


class Appraiser(Appraisal):
    def appraise(self, application: LoanApplied, ctx: Context) -> Appraised:
        return Appraised(loan_id=application.loan_id)


class Teller(Bank):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def disburse(self, held: CreditHeld, value: Appraised, ctx: Context) -> Disbursed:
        self.ledger.effects.append("disburse")
        return Disbursed(loan_id=held.loan_id)


def test_a_choreography_built_without_a_participant_names_what_nobody_produces() -> None:
    ledger = Ledger()
    with pytest.raises(DefinitionError, match=r"Bank\.disburse needs Appraised, which no "):
        Choreography(EventBus(), CreditDesk(ledger), Teller(ledger))
    assert ledger.effects == []  # refused before anything ran


def test_the_same_choreography_with_every_participant_runs_the_whole_flow() -> None:
    ledger = Ledger()
    flow = Choreography(EventBus(), CreditDesk(ledger), Appraiser(), Teller(ledger))
    flow.publish(LoanApplied(loan_id="l-1"), correlation_id="l-1")
    assert ledger.effects == ["hold", "disburse"]
    assert flow.monitor.get("l-1").status is WorkflowStatus.COMPLETED


def test_an_implementation_that_drops_ctx_fails_at_class_definition() -> None:
    with pytest.raises(DefinitionError, match=re.escape("ctx included")):

        class Forgetful(Credit):
            def hold(self, application: LoanApplied) -> CreditHeld:  # type: ignore[override]
                return CreditHeld(loan_id=application.loan_id)

            def release(self, application: LoanApplied, ctx: Context) -> None:
                return None


def test_abstractmethod_above_action_says_to_swap_them() -> None:
    with pytest.raises(DefinitionError, match="@abstractmethod is above @action; put it below"):

        class Upside(Participant):
            @abstractmethod  # type: ignore[misc]
            @action
            def hold(self, application: LoanApplied) -> CreditHeld: ...


def test_cancel_of_a_finished_run_is_a_usage_error_saying_why() -> None:
    ledger = Ledger()
    loan = Loan(CreditDesk(ledger), Appraiser(), Teller(ledger))
    loan.run(LoanApplied(loan_id="l-2"), workflow_id="l-2")
    with pytest.raises(UsageError, match="already finished COMPLETED; there is nothing to"):
        loan.cancel("l-2")


def test_a_later_step_without_its_input_names_the_start_message() -> None:
    with pytest.raises(
        DefinitionError, match="neither the start message nor an earlier step produces one"
    ):

        class Hasty(Orchestrator[LoanApplied, Disbursed]):
            steps = (step(Credit.hold), step(Bank.disburse))


class Stopper(Appraisal):
    def appraise(self, application: LoanApplied, ctx: Context) -> Appraised:
        raise StopIteration  # a bare next() on an exhausted iterator, say


@pytest.mark.parametrize("entry", ["run", "run_async"])
def test_a_sync_action_raising_stopiteration_fails_its_attempt_and_never_hangs(
    entry: str,
) -> None:
    ledger = Ledger()
    loan = Loan(CreditDesk(ledger), Stopper(), Teller(ledger))
    start = LoanApplied(loan_id="l-3")
    if entry == "run":
        run = loan.run(start)
    else:
        run = asyncio.run(asyncio.wait_for(loan.run_async(start), 10))
    assert run.status is WorkflowStatus.COMPENSATED
    assert "raised StopIteration" in str(run.error)
    assert ledger.effects == ["hold", "release"]


def test_publishing_a_start_again_is_idempotent_and_a_different_one_conflicts() -> None:
    ledger = Ledger()
    flow = Choreography(EventBus(), CreditDesk(ledger), Appraiser(), Teller(ledger), flow=Loan)
    first = flow.publish(LoanApplied(loan_id="l-4"), correlation_id="l-4")
    again = flow.publish(LoanApplied(loan_id="l-4"), correlation_id="l-4")
    assert again.message_id == first.message_id
    assert ledger.effects == ["hold", "disburse"]  # ran once
    with pytest.raises(WorkflowConflict, match="already started with a different message"):
        flow.publish(LoanApplied(loan_id="other"), correlation_id="l-4")
    assert ledger.effects == ["hold", "disburse"]
