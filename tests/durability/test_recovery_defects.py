"""Recovery after a crash or a bad row (issue 9, defects 4, 5, 6, 8, 9 and 10).

Kills are real: a child process runs a flow against a SQLite file and is SIGKILLed at a
chosen point (tests.durability.recovery_rigs); this test process, which never ran the flow,
then recovers it as a fresh process would, and checks what the participants' own ledger
(another SQLite file, written in their own transactions) says was applied and undone.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import (
    Context,
    EntryKind,
    Event,
    Journal,
    Participant,
    WorkflowStatus,
    action,
)
from coordination.choreography import Choreography, EventBus
from coordination.errors import FlowChanged, StoreError
from coordination.orchestration import Orchestrator, step
from coordination.stores import SQLiteStore, StepOutcome
from coordination.testing import VirtualClock
from examples.ecommerce import ConfirmationSent, CourierAssigned, OrderPlaced, StockReserved
from tests.crash.shop import (
    DurableLogistics,
    DurableNotifications,
    DurablePayments,
    DurableSellers,
    Effects,
    order_for,
)
from tests.durability.recovery_rigs import (
    WORKFLOW,
    ForkRelease,
    LateCharge,
    Ledger,
    LedgerCards,
    child,
    fork,
    shop_choreography,
)
from tests.orchestration.flows import (
    Alpha,
    B,
    Beta,
    FakeAlpha,
    FakeClock,
    Harness,
    Hook,
    Linear,
    Refused,
    Start,
    TimedSingle,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))}

Problems = list[tuple[str, BaseException]]


def killed(scenario: str, store: Path, ledger: Path, variant: str, *, ready: bool) -> str:
    """Run a child process of `scenario` until it is SIGKILLed; what it printed.

    `ready`: kill it once it says `ready` (else it kills itself).
    """
    process = subprocess.Popen(
        child(scenario, store, ledger, variant),
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    said = ""
    if ready:
        assert process.stdout is not None
        said = process.stdout.readline()
        if said == "ready\n":
            process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, (said, out, err)
    return said + out


def step_keys(store: SQLiteStore, workflow_id: str) -> dict[str, StepOutcome]:
    record = store.get_run(workflow_id)
    assert record is not None
    return {s.key: s.outcome for s in record.steps if s.outcome is not StepOutcome.NOTED}


def collect(problems: Problems) -> Callable[[str, BaseException], None]:
    return lambda workflow_id, error: problems.append((workflow_id, error))


# -- defect 4: a branch still running when its sibling failed -----------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_branch_still_running_when_its_sibling_failed_is_undone_after_kill_9(
    tmp_path: Path, mode: str
) -> None:
    # Defect: recovery knew only recorded steps, so the input-typed `release` of a hold
    # that started (its effect applied) but never settled before the kill never ran.
    store_path, ledger_path = tmp_path / "runs.db", tmp_path / "ledger.db"
    assert killed("fork", store_path, ledger_path, mode, ready=True) == "ready\n"
    ledger = Ledger(ledger_path)
    assert ledger.effects() == {"o-1:Cards.charge": 0, "o-1:Couriers.hold": 0}
    with SQLiteStore(store_path) as store:
        before = store.get_run(WORKFLOW)
        assert before is not None
        assert before.status is WorkflowStatus.COMPENSATING
        assert step_keys(store, WORKFLOW) == {
            "Cards.charge": StepOutcome.COMPLETED,
            "Stock.reserve": StepOutcome.FAILED,
        }  # the hold has no record: it was still running

        recovered = fork(store, ledger).recover()

        assert [(r.workflow_id, r.status) for r in recovered] == [
            (WORKFLOW, WorkflowStatus.COMPENSATED)
        ]
        # The hold ran again to its end under its key (one effect), then was released;
        # the charge was refunded. Each effect undone once.
        assert ledger.effects() == {"o-1:Cards.charge": 1, "o-1:Couriers.hold": 1}
        assert ledger.undos() == {
            "o-1:Cards.charge:undo": "o-1:Cards.charge",
            "o-1:Couriers.hold:undo": "o-1:Couriers.hold",
        }
        assert ledger.executions("o-1:Couriers.hold") == 2
        assert [s.key for s in recovered[0].steps if s.key.endswith(":undo")] == [
            "Couriers.hold:undo",
            "Cards.charge:undo",
        ]
        assert fork(store, ledger).recover() == []
        assert store.owed_runs(ForkRelease.plan.name) == []
    ledger.close()


# -- defect 5: an owed undo of a late result --------------------------------------------------


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_late_results_refund_killed_half_way_is_run_by_recovery(
    tmp_path: Path, point: str
) -> None:
    # Defect: killed inside the late result's refund, the run stayed COMPENSATED with the
    # charge applied: late records were ignored on replay and recover() skipped finished runs.
    store_path, ledger_path = tmp_path / "runs.db", tmp_path / "ledger.db"
    assert killed("late", store_path, ledger_path, point, ready=False) == "COMPENSATED\n"
    undo_key = "o-1:Cards.charge:late1:undo"
    ledger = Ledger(ledger_path)
    assert ledger.effects() == {"o-1:Cards.charge": 1 if point == "after" else 0}
    with SQLiteStore(store_path) as store:
        assert step_keys(store, WORKFLOW) == {
            "Cards.charge": StepOutcome.FAILED,
            "Cards.charge:late1": StepOutcome.LATE,
        }
        assert [o.workflow_id for o in store.owed_runs(LateCharge.plan.name)] == [WORKFLOW]

        recovered = LateCharge(LedgerCards(ledger), store=store).recover()

        assert [(r.workflow_id, r.status) for r in recovered] == [
            (WORKFLOW, WorkflowStatus.COMPENSATED)
        ]
        assert ledger.effects() == {"o-1:Cards.charge": 1}  # refunded, once
        assert ledger.undos() == {undo_key: "o-1:Cards.charge"}
        assert ledger.executions(undo_key) == (2 if point == "after" else 1)
        assert step_keys(store, WORKFLOW)["Cards.charge:late1:undo"] is StepOutcome.COMPENSATED
        assert store.owed_runs(LateCharge.plan.name) == []
        assert LateCharge(LedgerCards(ledger), store=store).recover() == []
        assert ledger.executions(undo_key) == (2 if point == "after" else 1)
    ledger.close()


# -- defect 6: a choreography killed at its last action ---------------------------------------


@pytest.mark.parametrize("point", ["inside", "returned", "committed"])
def test_a_choreography_killed_at_its_last_action_ends_completed_on_recovery(
    tmp_path: Path, point: str
) -> None:
    # Defect: killed between its last action's commit and the finishing commit, an instance
    # stayed RUNNING forever; every recover() claimed it and did nothing.
    store_path, effects_path = tmp_path / "orders.db", tmp_path / "effects.db"
    killed("choreography", store_path, effects_path, point, ready=False)
    effects = Effects(effects_path)
    with SQLiteStore(store_path) as store:
        flow = shop_choreography(store, effects)
        views = flow.recover()
        # Killed after the commit, it had ended already: the last action's record carries
        # the end, so there is no point between the two.
        expected = [] if point == "committed" else [("order-0", WorkflowStatus.COMPLETED)]
        assert [(v.correlation_id, v.status) for v in views] == expected
        record = store.get_run("order-0")
        assert record is not None
        assert record.status is WorkflowStatus.COMPLETED, [s.key for s in record.steps]
        assert store.owed_runs(flow.name) == []
        token = record.token

        assert shop_choreography(store, effects).recover() == []

        again = store.get_run("order-0")
        assert again is not None
        assert again.token == token  # nobody claimed it again
    rows = effects.connection.execute("SELECT action, undone FROM effects ORDER BY action")
    assert dict(rows.fetchall()) == {
        "assign_courier": 0,
        "charge": 0,
        "reserve_stock": 0,
        "send_confirmation": 0,
    }
    (confirmations,) = effects.connection.execute(
        "SELECT COUNT(*) FROM executions WHERE action = 'send_confirmation'"
    ).fetchone()
    assert confirmations == (2 if point == "returned" else 1)  # re-run only if unrecorded
    effects.connection.close()


# -- defect 8: late results are type-checked --------------------------------------------------


class Slow:
    """An attempt that blocks until released, then returns `result` (late)."""

    def __init__(self, result: Any) -> None:
        self.release = threading.Event()
        self.result = result
        self.thread: threading.Thread | None = None

    def hook(self, message: Any, ctx: Context | None) -> Any:
        self.thread = threading.current_thread()
        assert self.release.wait(10), "never released"
        return self.result

    def finish(self) -> None:
        """Let the slow attempt return, and wait until its late result was handled."""
        self.release.set()
        if self.thread is not None:
            self.thread.join(10)
            assert not self.thread.is_alive()

    def landing_then(self, error: BaseException) -> Hook:
        """The next attempt: let the slow one land first (its step unsettled), then fail."""

        def next_attempt(message: Any, ctx: Context | None) -> None:
            self.finish()
            raise error

        return Hook(next_attempt)


@pytest.fixture
def wrong() -> Iterator[Slow]:
    slow = Slow({"n": 100})  # a dict, not the step's output A
    yield slow
    slow.finish()


@pytest.mark.parametrize("runner", ["orchestrator", "choreography"])
@pytest.mark.parametrize("arrives", ["before the step failed", "after the run ended"])
def test_a_late_result_of_the_wrong_type_is_a_late_failure_never_undone(
    tmp_path: Path, wrong: Slow, arrives: str, runner: str
) -> None:
    # Defect: a late dict was handed to the compensation as the step's output.
    alpha = FakeAlpha()
    second = wrong.landing_then(Refused("no")) if arrives.startswith("before") else Refused("no")
    alpha.script("first", Hook(wrong.hook), second)
    with SQLiteStore(tmp_path / "runs.db") as store:
        if runner == "orchestrator":
            TimedSingle(alpha, store=store, clock=FakeClock()).run(Start(n=1), workflow_id="wf")
            name = TimedSingle.plan.name
        else:
            clock = VirtualClock()
            flow = Choreography(
                EventBus(clock=clock), alpha, flow=TimedSingle, store=store, clock=clock,
                random=lambda: 0.5,
            )  # fmt: skip
            flow.publish(Start(n=1), correlation_id="wf")
            name = flow.name
        wrong.finish()

        assert alpha.count("undo_first") == 0  # never handed to the compensation
        record = store.get_run("wf")
        assert record is not None
        assert record.status is WorkflowStatus.COMPENSATED
        late = [s for s in record.steps if s.key == "Alpha.first:late1"]
        assert [(s.outcome, s.output) for s in late] == [(StepOutcome.LATE, None)]
        entries = list(Journal.from_rows(record.journal).of_kind(EntryKind.LATE_RESULT))
        assert [(e.error, e.detail) for e in entries] == [
            (
                "OutputTypeError: returned dict, not its output",
                "timed-out attempt 1 failed late: nothing to undo",
            )
        ]
        assert store.owed_runs(name) == []


# -- defect 9: one bad run never blocks the others --------------------------------------------


class LinearTwoSteps(Orchestrator[Start, B], name=f"{Linear.__module__}:{Linear.__qualname__}"):
    """Another definition of Linear's flow (its stored name, one step fewer): Linear cannot
    resume its runs."""

    steps = (step(Alpha.first), step(Beta.second))


def interrupted(orchestrator: Orchestrator[Any, Any], beta: Any, workflow_id: str) -> None:
    """Run `workflow_id` until Ctrl-C in its second step: released, RUNNING, one step done."""
    beta.script("second", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        orchestrator.run(Start(n=1), workflow_id=workflow_id)


def corrupt(path: Path, sql: str, *parameters: str) -> None:
    """Change the store file behind the store's back, as a bad disk or a bad hand would."""
    connection = sqlite3.connect(path)
    with connection:
        assert connection.execute(sql, parameters).rowcount == 1
    connection.close()


def snapshot(path: Path, workflow_id: str) -> tuple[Any, ...]:
    """What a bad run's rows hold that recovery must leave as it is (not its claim)."""
    connection = sqlite3.connect(path)
    try:
        run = connection.execute(
            "SELECT flow, start, status, output, error, shape FROM runs WHERE workflow_id = ?",
            (workflow_id,),
        ).fetchone()
        steps = connection.execute(
            "SELECT key, outcome, output, error, rows FROM steps WHERE workflow_id = ? "
            "ORDER BY seq",
            (workflow_id,),
        ).fetchall()
    finally:
        connection.close()
    return (run, tuple(steps))


BAD_JSON = '{"type": "tests.orchestration.flows:A", "data": {"n": '


def test_one_bad_run_never_blocks_the_orchestrators_recovery_of_the_others(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    with SQLiteStore(path) as store:
        h = Harness(Linear)
        linear = Linear(*h.fakes.values(), store=store, clock=h.clock)
        older = Harness(LinearTwoSteps)
        other = LinearTwoSteps(*older.fakes.values(), store=store, clock=h.clock)
        # The bad ones first: recovery lists owed runs oldest first.
        interrupted(other, older[Beta], "changed")
        h.clock.sleep(1)
        interrupted(linear, h[Beta], "bad-step")
        h.clock.sleep(1)
        interrupted(linear, h[Beta], "bad-start")
        h.clock.sleep(1)
        assert linear.run(Start(n=1), workflow_id="done").status is WorkflowStatus.COMPLETED
        for index in range(3):
            h.clock.sleep(1)
            interrupted(linear, h[Beta], f"healthy-{index}")
    # One unreadable value each, in an unfinished run and in a long-finished one.
    corrupt(path, "UPDATE steps SET output = ? WHERE workflow_id = ? AND key = ?",
            BAD_JSON, "bad-step", "Alpha.first")  # fmt: skip
    corrupt(path, "UPDATE runs SET start = ? WHERE workflow_id = ?", BAD_JSON, "bad-start")
    corrupt(path, "UPDATE runs SET output = ? WHERE workflow_id = ?", BAD_JSON, "done")
    bad = ("changed", "bad-step", "bad-start", "done")
    before = {workflow_id: snapshot(path, workflow_id) for workflow_id in bad}

    with SQLiteStore(path) as store:  # a restart
        fresh = Harness(Linear)
        problems: Problems = []
        recovered = Linear(*fresh.fakes.values(), store=store).recover(on_problem=collect(problems))

        assert sorted((r.workflow_id, r.status) for r in recovered) == [
            (f"healthy-{index}", WorkflowStatus.COMPLETED) for index in range(3)
        ]
        assert fresh[Alpha].count("first") == 0  # recorded steps never ran again
        assert [workflow_id for workflow_id, _ in problems] == ["changed", "bad-step", "bad-start"]
        assert isinstance(problems[0][1], FlowChanged)
        assert all(isinstance(error, StoreError) for _, error in problems[1:])
        assert {wid: snapshot(path, wid) for wid in bad} == before
        for workflow_id in ("changed", "bad-step", "bad-start"):
            owed = {o.workflow_id: o for o in store.owed_runs(Linear.plan.name)}
            assert owed[workflow_id].owner is None  # let go: its own code may resume it

        # Every restart reports them again, and never parks what it cannot read or resume.
        for _ in range(6):
            again: Problems = []
            assert (
                Linear(*fresh.fakes.values(), store=store).recover(on_problem=collect(again)) == []
            )
            assert [workflow_id for workflow_id, _ in again] == ["changed", "bad-step", "bad-start"]
        assert {wid: snapshot(path, wid)[0] for wid in bad} == {
            wid: snapshot_run for wid, (snapshot_run, _) in before.items()
        }

        # The code that started the changed run still resumes it.
        resumed = LinearTwoSteps(*older.fakes.values(), store=store).recover()
        assert [(r.workflow_id, r.status) for r in resumed] == [
            ("changed", WorkflowStatus.COMPLETED)
        ]


class Interrupting:
    """Makes the first call of an action, per correlation, a Ctrl-C."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def once(self, ctx: Context) -> None:
        if ctx.correlation_id not in self.seen:
            self.seen.add(ctx.correlation_id)
            raise KeyboardInterrupt


class InterruptedNotifications(DurableNotifications):
    def __init__(self, effects: Effects, interrupting: Interrupting) -> None:
        super().__init__(effects)
        self.interrupting = interrupting

    def send_confirmation(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent:
        self.interrupting.once(ctx)
        return super().send_confirmation(order, courier, stock, ctx)


class InterruptedSellers(DurableSellers):
    def __init__(self, effects: Effects, interrupting: Interrupting) -> None:
        super().__init__(effects)
        self.interrupting = interrupting

    def reserve_stock(self, order: OrderPlaced, payment: Any, ctx: Context) -> StockReserved:
        self.interrupting.once(ctx)
        return super().reserve_stock(order, payment, ctx)


def publish_interrupted(flow: Choreography, index: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        flow.publish(order_for(index), correlation_id=f"order-{index}")


def test_one_bad_instance_never_blocks_the_choreographys_recovery_of_the_others(
    tmp_path: Path,
) -> None:
    path, effects_path = tmp_path / "orders.db", tmp_path / "effects.db"
    effects = Effects(effects_path)
    with SQLiteStore(path) as store:
        # Started by the same choreography without its notifications: another action set.
        fewer = Choreography(
            EventBus(),
            DurablePayments(effects),
            DurableLogistics(effects),
            InterruptedSellers(effects, Interrupting()),
            store=store,
        )
        publish_interrupted(fewer, 0)
        interrupting = Interrupting()
        flow = Choreography(
            EventBus(),
            DurablePayments(effects),
            DurableLogistics(effects),
            DurableSellers(effects),
            InterruptedNotifications(effects, interrupting),
            store=store,
        )
        assert flow.name == fewer.name
        publish_interrupted(flow, 1)  # bad-step
        publish_interrupted(flow, 2)  # bad-event
        interrupting.seen.add("order-3")
        flow.publish(order_for(3), correlation_id="order-3")  # finished long ago
        for index in (5, 6, 7):
            publish_interrupted(flow, index)
    corrupt(path, "UPDATE steps SET output = ? WHERE workflow_id = ? AND key = ?",
            BAD_JSON, "order-1", "Payments.charge")  # fmt: skip
    corrupt(path, "UPDATE events SET message = ? WHERE workflow_id = ? AND seq = 0",
            BAD_JSON, "order-2")  # fmt: skip
    corrupt(path, "UPDATE runs SET output = ? WHERE workflow_id = ?", BAD_JSON, "order-3")
    bad = ("order-0", "order-1", "order-2", "order-3")
    before = {workflow_id: snapshot(path, workflow_id) for workflow_id in bad}

    with SQLiteStore(path) as store:  # a restart
        problems: Problems = []
        views = shop_choreography(store, effects).recover(on_problem=collect(problems))

        assert sorted((v.correlation_id, v.status) for v in views) == [
            (f"order-{index}", WorkflowStatus.COMPLETED) for index in (5, 6, 7)
        ]
        assert [workflow_id for workflow_id, _ in problems] == ["order-0", "order-1", "order-2"]
        assert isinstance(problems[0][1], FlowChanged)
        assert all(isinstance(error, StoreError) for _, error in problems[1:])
        assert {wid: snapshot(path, wid) for wid in bad} == before
        for _ in range(6):
            again: Problems = []
            assert shop_choreography(store, effects).recover(on_problem=collect(again)) == []
            assert [workflow_id for workflow_id, _ in again] == ["order-0", "order-1", "order-2"]
    effects.connection.close()


# -- defect 10: a choreography resumed under a changed set of actions -------------------------


class Receipts(Participant):
    """Notifications' action under another name."""

    @action
    @abstractmethod
    def send_receipt(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent: ...


class SentReceipts(Receipts):
    def send_receipt(
        self, order: OrderPlaced, courier: CourierAssigned, stock: StockReserved, ctx: Context
    ) -> ConfirmationSent:
        raise AssertionError("a changed flow must not run")


class Archived(Event, type_name="recovery.Archived"):
    order_id: str


class Archive(Participant):
    """One action more, after the confirmation."""

    @action
    @abstractmethod
    def archive(self, confirmation: ConfirmationSent) -> Archived: ...


class Archiving(Archive):
    def archive(self, confirmation: ConfirmationSent) -> Archived:
        raise AssertionError("a changed flow must not run")


@pytest.fixture(scope="module")
def killed_at_the_last_action(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose instance order-0 was SIGKILLed inside its last action."""
    folder = tmp_path_factory.mktemp("killed")
    killed("choreography", folder / "orders.db", folder / "effects.db", "inside", ready=False)
    return folder


def copied(folder: Path, to: Path) -> tuple[Path, Path]:
    for file in folder.iterdir():
        shutil.copy(file, to / file.name)
    return to / "orders.db", to / "effects.db"


CHANGES: dict[str, Callable[[Effects], tuple[Participant, ...]]] = {
    "a participant removed": lambda e: (
        DurablePayments(e), DurableLogistics(e), DurableSellers(e),
    ),
    "an action renamed": lambda e: (
        DurablePayments(e), DurableLogistics(e), DurableSellers(e), SentReceipts(),
    ),
    "an action added": lambda e: (
        DurablePayments(e), DurableLogistics(e), DurableSellers(e), DurableNotifications(e),
        Archiving(),
    ),
}  # fmt: skip


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_choreography_resumed_under_changed_actions_is_flow_changed(
    killed_at_the_last_action: Path, tmp_path: Path, change: str
) -> None:
    # Defect: resumed under another set of actions, the instance waited forever for an
    # action that no longer existed.
    store_path, effects_path = copied(killed_at_the_last_action, tmp_path)
    effects = Effects(effects_path)
    with SQLiteStore(store_path) as store:
        changed = Choreography(EventBus(), *CHANGES[change](effects), store=store)
        assert changed.name == shop_choreography(store, effects).name
        problems: Problems = []

        assert changed.recover(on_problem=collect(problems)) == []

        assert [workflow_id for workflow_id, _ in problems] == ["order-0"]
        assert isinstance(problems[0][1], FlowChanged)
        with pytest.raises(FlowChanged, match="order-0"):
            changed.publish(order_for(0), correlation_id="order-0")
        record = store.get_run("order-0")
        assert record is not None
        assert record.status is WorkflowStatus.RUNNING
        assert record.owner is None  # let go, for the participants that started it
        # Left as it was: not journaled as taken over, no recovery counted towards parking.
        assert [s.key for s in record.steps] == [
            "Payments.charge",
            "Logistics.assign_courier",
            "Sellers.reserve_stock",
        ]
        assert record.recoveries == 0

        # Those still finish it.
        views = shop_choreography(store, effects).recover()
        assert [(v.correlation_id, v.status) for v in views] == [
            ("order-0", WorkflowStatus.COMPLETED)
        ]
    effects.connection.close()
