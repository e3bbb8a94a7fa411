"""`FlowMachine`: a hypothesis state machine that starts, crashes and recovers instances.

Subclass it with your flow and a factory of participants; hypothesis then explores
sequences of rules — start an instance (under a fault plan drawn once per run), start one
whose process crashes at a store write, deliver an outside message to an instance (with
`outside`, for flows that `wait(...)`), recover, advance the virtual clock (firing due
timers) — and checks the invariants after every rule: every finished instance has a
well-formed journal and its effects agree with how it ended. At the end of each sequence
everything still owed is recovered, every timer fired, and every instance must have ended
(or wait, with no timeout, for an outside message).

    class ShopMachine(FlowMachine):
        flow = PlaceOrder
        starts = messages(OrderPlaced)

        def participants(self):
            return [fake(Payments), fake(Sellers), fake(Logistics), fake(Notifications)]

    TestShop = ShopMachine.TestCase

The participants are the outside world: built once per sequence, shared by every instance
and kept across crashes (what they applied stays applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from coordination._messages import Message
from coordination._participants import Participant
from coordination._status import WorkflowStatus
from coordination.choreography._bus import EventBus
from coordination.choreography._choreography import Choreography
from coordination.errors import UsageError, WorkflowNotFound
from coordination.orchestration._orchestrator import Orchestrator
from coordination.stores._memory import MemoryStore
from coordination.testing._clock import VirtualClock
from coordination.testing._crash import SimulatedCrash, _CrashingStore
from coordination.testing._equivalence import settle_late_results
from coordination.testing._faults import FaultPlan
from coordination.testing._invariants import effect_problems, journal_problems
from coordination.testing._strategies import fault_plans

__all__ = ["FlowMachine"]

#: How far the clock jumps at the end of a sequence, so that every timer has fired (ten years).
_EVERY_TIMER = 10 * 365 * 24 * 3600.0


class FlowMachine(RuleBasedStateMachine):
    """Start, crash, recover and wait, with the invariants checked after every step.

    Set `flow` (an Orchestrator subclass) and `starts` (a strategy of start messages), and
    override `participants()`. `runner` is `"orchestration"` or `"choreography"` (a
    `Choreography` adopting `flow`'s declarations); `faults` the strategy of the fault plan
    drawn once per sequence (default: `fault_plans(flow)`; `st.just(FaultPlan())` for none);
    `outside` a strategy of the outside messages the flow's waits take (delivered to a
    drawn instance, early, on time, late or twice: a refusal must be a typed error).
    """

    flow: ClassVar[type[Orchestrator[Any, Any]]]
    starts: ClassVar[st.SearchStrategy[Message]]
    runner: ClassVar[str] = "orchestration"
    faults: ClassVar[st.SearchStrategy[FaultPlan] | None] = None
    outside: ClassVar[st.SearchStrategy[Message] | None] = None
    #: The highest store write a crash may hit (a write beyond the run's last never crashes).
    max_crash_write: ClassVar[int] = 12

    def __init__(self) -> None:
        super().__init__()
        if self.runner not in ("orchestration", "choreography"):
            raise ValueError(f"runner = {self.runner!r}: use 'orchestration' or 'choreography'")
        self.clock = VirtualClock()
        self.store = MemoryStore()
        self.world: list[Participant] = []
        self.started: list[str] = []

    def participants(self) -> Sequence[Participant]:
        """Fresh participants (fakes, or your own with a `snapshot()`): override this."""
        raise NotImplementedError(f"{type(self).__name__} must define participants()")

    # -- rules ------------------------------------------------------------------------------

    @initialize(data=st.data())
    def _begin(self, data: st.DataObject) -> None:
        plans = self.faults if self.faults is not None else fault_plans(self.flow)
        self._begin_with(data.draw(plans, label="faults"))

    def _begin_with(self, plan: FaultPlan) -> None:
        self.world = list(self.participants())
        plan.fresh().install(*self.world)

    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Start an instance and let it run to its end."""
        message = data.draw(self.starts, label="start")
        self._run(message, self._new_id(), self.store)

    @rule(
        data=st.data(),
        write=st.integers(min_value=1, max_value=100),
        after=st.booleans(),
    )
    def start_and_crash(self, data: st.DataObject, write: int, after: bool) -> None:
        """Start an instance whose process dies at one of its store writes."""
        message = data.draw(self.starts, label="start")
        crash_at = 1 + (write - 1) % self.max_crash_write
        crashing = _CrashingStore(self.store, crash_at, after)
        try:
            self._run(message, self._new_id(), crashing)
        except SimulatedCrash:
            pass

    @precondition(lambda self: self.outside is not None and bool(self.started))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """An outside message arrives for one of the instances (whatever it is doing)."""
        assert self.outside is not None
        workflow_id = data.draw(st.sampled_from(self.started), label="instance")
        message = data.draw(self.outside, label="outside")
        runner = self._runner(self.store)
        try:
            if isinstance(runner, Choreography):
                runner.publish(message, correlation_id=workflow_id)
            else:
                runner.send(workflow_id, message)
        except (WorkflowNotFound, UsageError):
            pass  # never started (it crashed first), or finished without it: told so
        settle_late_results()

    @precondition(lambda self: bool(self.started))
    @rule()
    def recover(self) -> None:
        """A new process recovers what is owed."""
        self._runner(self.store).recover()
        settle_late_results()

    @rule(seconds=st.floats(min_value=0, max_value=600, allow_nan=False))
    def wait(self, seconds: float) -> None:
        """Time passes (leases run out, deadlines come, due timers fire)."""
        self.clock.advance(seconds)
        runner = self._runner(self.store)
        if isinstance(runner, Choreography):
            runner.check_deadlines()
        runner.resume_due()
        settle_late_results()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def finished_instances_keep_the_invariants(self) -> None:
        problems: list[str] = []
        for workflow_id in self.started:
            record = self.store.get_run(workflow_id)
            if record is None or not record.status.finished:
                continue
            problems += self._problems(workflow_id, record.status)
        assert not problems, "\n".join(problems)

    def teardown(self) -> None:
        """Recover everything: every instance started must then have ended."""
        if not self.started:
            return
        runner = self._runner(self.store)
        runner.recover()
        self.clock.advance(_EVERY_TIMER)
        runner.resume_due()
        settle_late_results()
        problems: list[str] = []
        for workflow_id in self.started:
            record = self.store.get_run(workflow_id)
            if record is None:
                continue  # crashed before its start was written: nothing ran
            if record.status is WorkflowStatus.WAITING:
                continue  # for an outside message, with no timeout: the world's turn
            if not record.status.finished or record.status is WorkflowStatus.PARKED:
                problems.append(f"{workflow_id} is still {record.status.name} after recover()")
            else:
                problems += self._problems(workflow_id, record.status)
        assert not problems, "\n".join(problems)

    # -- helpers ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        workflow_id = f"machine-{len(self.started) + 1}"
        self.started.append(workflow_id)
        return workflow_id

    def _runner(self, store: Any) -> Orchestrator[Any, Any] | Choreography:
        if self.runner == "orchestration":
            return self.flow(*self.world, store=store, clock=self.clock, random=lambda: 0.5)
        return Choreography(
            EventBus(clock=self.clock), *self.world, flow=self.flow, store=store,
            clock=self.clock, random=lambda: 0.5,
        )  # fmt: skip

    def _run(self, message: Message, workflow_id: str, store: Any) -> None:
        runner = self._runner(store)
        if isinstance(runner, Choreography):
            runner.publish(message, correlation_id=workflow_id)
        else:
            runner.run(message, workflow_id=workflow_id)
        settle_late_results()

    def _problems(self, workflow_id: str, status: WorkflowStatus) -> list[str]:
        record = self.store.get_run(workflow_id)
        assert record is not None
        from coordination._journal import Journal

        journal = Journal.from_rows(record.journal)
        found = journal_problems(journal, finished=True)
        found += effect_problems(status, self.world, workflow_id=workflow_id)
        return [f"{workflow_id} ({status.name}): {problem}" for problem in found]
