"""Outside messages: a flow waits for a webhook, WAITING, holding no thread and no lease.

`wait(PaymentSettled | PaymentFailed)` suspends the instance once the step before it is
done; `Orchestrator.send()` (or a choreography's `publish(message, correlation_id=...)`)
resumes it, and the branch the message names runs. A message that comes early is kept for
its wait; a duplicate changes nothing; a message for an unknown or finished instance is a
clear error. Under all four entry points, in memory and on SQLite.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import Context, EntryKind, Event, Message, Participant, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.errors import DefinitionError, UsageError, WorkflowNotFound
from coordination.orchestration import Orchestrator, step, wait
from coordination.stores import SQLiteStore
from coordination.testing import (
    ENTRY_POINTS,
    FaultPlan,
    VirtualClock,
    assert_crash_safe,
    fault_plans,
    journal_problems,
    journal_shape,
    settle_late_results,
)
from tests.waiting_flow import (
    Authorized,
    OrderConfirmed,
    OrderPlaced,
    Orders,
    OrderVoided,
    PaymentFailed,
    Payments,
    PaymentSettled,
    WebhookCheckout,
    webhook_services,
)

S = WorkflowStatus
ORDER = OrderPlaced(order_id="o-1", cents=500)
SETTLED = PaymentSettled(order_id="o-1")
FAILED = PaymentFailed(order_id="o-1", reason="3-D Secure refused")


class Rig:
    """One entry point's runner: start the flow, hand it a message, read the instance."""

    def __init__(
        self, entry_point: str, store: Any = None, during: Any = None, faults: Any = None
    ) -> None:
        self.entry_point = entry_point
        self.clock = VirtualClock()
        self.services = webhook_services(during or (lambda: None))
        if faults is not None:
            faults.fresh().install(*self.services)
        if entry_point.startswith("run"):
            self.runner: Any = WebhookCheckout(
                *self.services, clock=self.clock, store=store, random=lambda: 0.5
            )
        else:
            self.runner = Choreography(
                EventBus(clock=self.clock), *self.services, flow=WebhookCheckout,
                clock=self.clock, store=store, random=lambda: 0.5,
            )  # fmt: skip

    def start(self) -> None:
        runner, point = self.runner, self.entry_point
        if point == "run":
            runner.run(ORDER, workflow_id="wf")
        elif point == "run_async":
            asyncio.run(runner.run_async(ORDER, workflow_id="wf"))
        elif point == "publish":
            runner.publish(ORDER, correlation_id="wf")
        else:
            asyncio.run(runner.publish_async(ORDER, correlation_id="wf"))

    def send(self, message: Message) -> None:
        runner, point = self.runner, self.entry_point
        if point == "run":
            runner.send("wf", message)
        elif point == "run_async":
            asyncio.run(runner.send_async("wf", message))
        elif point == "publish":
            runner.publish(message, correlation_id="wf")
        else:
            asyncio.run(runner.publish_async(message, correlation_id="wf"))

    def get(self) -> Any:
        if self.entry_point.startswith("run"):
            return self.runner.get("wf")
        return self.runner.monitor.get("wf")

    def state(self) -> list[Any]:
        return [p.snapshot() for p in self.services]  # type: ignore[attr-defined]


# -- waiting and resuming ------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_run_waits_holding_no_lease_and_a_message_resumes_it(entry_point: str) -> None:
    rig = Rig(entry_point)
    rig.start()

    waiting = rig.get()
    assert waiting.status is S.WAITING
    record = rig.runner.store.get_run("wf")
    assert (record.owner, record.lease_expires) == (None, None)  # no lease held
    assert waiting.journal.names(EntryKind.WAITING) == ["wait.PaymentSettled|PaymentFailed"]
    if entry_point.startswith("publish"):
        assert waiting.awaiting == ("PaymentSettled", "PaymentFailed")
        assert "  awaiting:    PaymentSettled or PaymentFailed" in waiting.render()

    rig.send(SETTLED)
    done = rig.get()
    assert done.status is S.COMPLETED
    assert done.journal.names(EntryKind.SKIPPED) == ["Orders.void"]
    assert rig.state() == [[("wf:Payments.authorize", 500)], [("wf:Orders.confirm", 500)]]
    assert journal_problems(done.journal) == []


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_the_other_message_takes_the_other_branch(entry_point: str) -> None:
    rig = Rig(entry_point)
    rig.start()
    rig.send(FAILED)

    done = rig.get()
    assert done.status is S.COMPLETED
    assert done.journal.names(EntryKind.SKIPPED) == ["Orders.confirm"]
    assert rig.state() == [[("wf:Payments.authorize", 500)], [("wf:Orders.void", 0)]]


def test_the_orchestrator_returns_the_business_output_and_every_message() -> None:
    rig = Rig("run")
    rig.start()
    rig.send(FAILED)
    run = rig.get()
    assert run.output == OrderVoided(order_id="o-1", reason="3-D Secure refused")
    assert run.output_of(PaymentFailed) == FAILED


@pytest.mark.parametrize("message", [SETTLED, FAILED], ids=["settled", "failed"])
def test_every_entry_point_waits_and_resumes_alike(message: Message) -> None:
    ends = []
    for entry_point in ENTRY_POINTS:
        rig = Rig(entry_point)
        rig.start()
        rig.send(message)
        ended = rig.get()
        ends.append((ended.status, journal_shape(ended.journal), repr(rig.state())))
    assert len(set(ends)) == 1, ends


# -- early, twice, wrong --------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_message_that_comes_early_is_kept_for_its_wait(entry_point: str) -> None:
    rigs: list[Rig] = []

    def webhook_now() -> None:  # the provider answers while the authorization runs
        rigs[0].send(SETTLED)

    rig = Rig(entry_point, during=webhook_now)
    rigs.append(rig)
    rig.start()

    done = rig.get()
    assert done.status is S.COMPLETED  # it never had to wait
    assert not done.journal.of_kind(EntryKind.WAITING)
    assert rig.state()[1] == [("wf:Orders.confirm", 500)]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_duplicate_changes_nothing_and_a_different_one_is_refused(entry_point: str) -> None:
    rig = Rig(entry_point)
    rig.start()
    rig.send(SETTLED)
    journal = rig.get().journal

    rig.send(SETTLED)  # the webhook, delivered twice
    assert rig.get().journal == journal
    with pytest.raises(UsageError, match="already received"):
        rig.send(FAILED)


def test_a_message_for_an_unknown_instance_or_of_a_type_not_waited_for_is_refused() -> None:
    rig = Rig("run")
    with pytest.raises(WorkflowNotFound):
        rig.runner.send("nope", SETTLED)
    rig.start()
    with pytest.raises(UsageError, match="does not wait for OrderPlaced"):
        rig.runner.send("wf", ORDER)
    flow = Rig("publish")
    with pytest.raises(WorkflowNotFound):
        flow.runner.publish(SETTLED, correlation_id="nope")
    with pytest.raises(UsageError, match="correlation_id"):
        flow.runner.publish(SETTLED)


@pytest.mark.parametrize("entry_point", ["run", "publish"])
def test_a_cancelled_wait_is_undone_and_a_late_message_is_refused(entry_point: str) -> None:
    rig = Rig(entry_point)
    rig.start()
    cancelled = rig.runner.cancel("wf")

    assert cancelled.status is S.CANCELLED
    assert rig.state() == [[], []]  # the authorization was released
    with pytest.raises(UsageError, match="finished CANCELLED before PaymentSettled came"):
        rig.send(SETTLED)


def test_recovery_leaves_a_waiting_run_alone() -> None:
    rig = Rig("run")
    rig.start()
    assert rig.runner.recover() == []
    record = rig.runner.store.get_run("wf")
    assert record.status is S.WAITING
    assert record.recoveries == 0
    rig.send(SETTLED)
    assert rig.get().status is S.COMPLETED


# -- durable ------------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "orders.db"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_on_sqlite_another_process_resumes_the_wait(entry_point: str, path: Path) -> None:
    with SQLiteStore(path) as store:
        first = Rig(entry_point, store)
        first.start()
        assert store.get_run("wf").status is S.WAITING  # type: ignore[union-attr]
    with SQLiteStore(path) as store:
        second = Rig(entry_point, store)  # a new process: the message arrives here
        second.send(SETTLED)
        ended = second.get()
        assert ended.status is S.COMPLETED
        assert ended.journal.names(EntryKind.COMPLETED) == [
            "Payments.authorize",
            "wait.PaymentSettled|PaymentFailed",
            "Orders.confirm",
        ]
        assert second.state()[1] == [("wf:Orders.confirm", 500)]


@pytest.mark.parametrize("runner", ["run", "publish"])
def test_a_crash_at_any_write_before_the_wait_recovers_to_the_wait(runner: str) -> None:
    assert assert_crash_safe(WebhookCheckout, webhook_services, ORDER, entry_points=(runner,))


# -- declarations ---------------------------------------------------------------------------


class Other(Event):
    n: int


class Late(Participant):
    @action
    @abstractmethod
    def late(self, authorized: Authorized, other: Other, ctx: Context) -> OrderConfirmed: ...


def test_where_a_wait_may_stand() -> None:
    with pytest.raises(DefinitionError, match="comes first"):

        class First(Orchestrator[OrderPlaced, Authorized]):
            steps = (wait(PaymentSettled), step(Payments.authorize))

    with pytest.raises(DefinitionError, match="ends with wait"):

        class Last(Orchestrator[OrderPlaced, Authorized]):
            steps = (step(Payments.authorize), wait(PaymentSettled))

    with pytest.raises(DefinitionError, match="follow each other"):

        class Twice(Orchestrator[OrderPlaced, Any]):
            steps = (
                step(Payments.authorize),
                wait(PaymentSettled),
                wait(PaymentFailed),
                step(Orders.confirm),
            )

    with pytest.raises(DefinitionError, match="an outside message is a type of its own"):

        class Produced(Orchestrator[OrderPlaced, Any]):
            steps = (step(Payments.authorize), wait(Authorized), step(Orders.void))

    with pytest.raises(DefinitionError, match="an outside message is a type of its own"):

        class Start(Orchestrator[OrderPlaced, Any]):
            steps = (step(Payments.authorize), wait(OrderPlaced), step(Orders.void))


def test_a_wait_declares_message_types() -> None:
    with pytest.raises(DefinitionError, match="wait for a message type"):
        wait(int)

    class SubSettled(PaymentSettled):
        pass

    with pytest.raises(DefinitionError, match="cannot be told apart"):
        wait(PaymentSettled | SubSettled)


def test_the_declared_output_covers_what_either_message_leads_to() -> None:
    with pytest.raises(DefinitionError, match="can end with OrderVoided"):

        class OnlyConfirmed(Orchestrator[OrderPlaced, OrderConfirmed]):
            steps = WebhookCheckout.steps


def test_the_step_after_a_wait_consumes_its_message_or_what_came_before_it() -> None:
    class BeforeIt(Orchestrator[OrderPlaced, OrderConfirmed]):
        steps = (step(Payments.authorize), wait(Other), step(Late.late))

    assert [w.key for w in BeforeIt.plan.waits] == ["wait.Other"]
    assert BeforeIt.plan.shape != WebhookCheckout.plan.shape
    assert "wait(" in BeforeIt.plan.shape  # a moved or removed wait is a FlowChanged


# -- the property ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(plan=fault_plans(WebhookCheckout), message=st.sampled_from([SETTLED, FAILED]))
def test_every_fault_plan_waits_and_resumes_alike_under_all_four_entry_points(
    plan: FaultPlan, message: Message
) -> None:
    ends = []
    for entry_point in ENTRY_POINTS:
        rig = Rig(entry_point, faults=plan)
        rig.start()
        if rig.get().status is S.WAITING:
            rig.send(message)
        settle_late_results()
        ended = rig.get()
        assert journal_problems(ended.journal, finished=ended.status.finished) == []
        ends.append((ended.status, journal_shape(ended.journal), repr(rig.state())))
    assert len(set(ends)) == 1, ends


# -- a choreography derived from its participants -----------------------------------------------


def derived(store: Any = None) -> tuple[Choreography, tuple[Participant, ...]]:
    from coordination.choreography import wait as choreography_wait

    services = webhook_services()
    clock = VirtualClock()
    flow = Choreography(
        EventBus(clock=clock), *services, clock=clock, store=store,
        waits=(choreography_wait(PaymentSettled | PaymentFailed),),
    )  # fmt: skip
    return flow, services


def test_a_derived_choreography_takes_the_same_wait_as_the_declared_flow() -> None:
    flow, services = derived()
    (plan,) = [b.plan for b in flow.instances.bindings.values()]
    assert plan.shape == WebhookCheckout.plan.shape  # the same generations, the same wait

    flow.publish(ORDER, correlation_id="wf")
    assert flow.monitor.get("wf").status is S.WAITING
    flow.publish(SETTLED, correlation_id="wf")
    view = flow.monitor.get("wf")
    assert view.status is S.COMPLETED
    assert view.skipped == ("Orders.void",)

    orchestrated = Rig("run")
    orchestrated.start()
    orchestrated.send(SETTLED)
    assert journal_shape(view.journal) == journal_shape(orchestrated.get().journal)
    assert [p.snapshot() for p in services] == orchestrated.state()  # type: ignore[attr-defined]


def test_without_its_wait_a_derived_choreography_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"waits=\(wait\(PaymentSettled\),\)"):
        Choreography(EventBus(), *webhook_services())


def test_waits_takes_wait_declarations_and_not_with_a_flow() -> None:
    from coordination.orchestration import sleep

    with pytest.raises(UsageError, match="waits= takes wait"):
        Choreography(EventBus(), *webhook_services(), waits=(sleep(5),))
    with pytest.raises(UsageError, match="with flow=, the flow's own wait"):
        Choreography(
            EventBus(), *webhook_services(), flow=WebhookCheckout, waits=(wait(PaymentSettled),)
        )


class Hint(Event):
    n: int


class Step1(Participant):
    @action
    @abstractmethod
    def first(self, order: OrderPlaced, hint: Hint) -> Authorized: ...


class Step2(Participant):
    @action
    @abstractmethod
    def second(self, authorized: Authorized, hint: Hint) -> OrderConfirmed: ...


class Step1Impl(Step1):
    def first(self, order: OrderPlaced, hint: Hint) -> Authorized:
        return Authorized(order_id=order.order_id, cents=order.cents, ref="r")


class Step2Impl(Step2):
    def second(self, authorized: Authorized, hint: Hint) -> OrderConfirmed:
        return OrderConfirmed(order_id=authorized.order_id, cents=authorized.cents)


def test_a_wait_whose_consumers_feed_each_other_needs_a_declared_flow() -> None:
    with pytest.raises(DefinitionError, match="cannot be placed from the signatures alone"):
        Choreography(EventBus(), Step1Impl(), Step2Impl(), waits=(wait(Hint),))
