"""Orchestrator: the base class a flow subclasses to run its steps centrally, as a saga."""

from __future__ import annotations

import asyncio
import random as _random
import threading
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic

from typing_extensions import TypeVar

from coordination._clock import Clock, SystemClock
from coordination._messages import Message
from coordination._participants import Action, Participant
from coordination._status import WorkflowStatus
from coordination.engine import (
    LIVE,
    DueStart,
    FlowPlan,
    Observer,
    Parallel,
    Problem,
    Saga,
    Step,
    WaitStep,
    bind,
    cancel_refusal,
    checked_observers,
    claim_or_busy,
    claim_or_request,
    compile_plan,
    due_instances,
    make_start,
    normalise,
    outside_wait,
    process_owner,
    recover,
    resume_next,
    retry_target,
    same_start,
    serve,
    wait_for_result,
    wake,
)
from coordination.errors import (
    DefinitionError,
    UsageError,
    WorkflowBusy,
)
from coordination.orchestration._drivers import Driver
from coordination.orchestration._many import Batch, Runner
from coordination.orchestration._run import WorkflowRun
from coordination.orchestration._sagas import Sagas
from coordination.stores._memory import MemoryStore
from coordination.stores._records import RunRecord
from coordination.stores._store import Store, WorkQueue

__all__ = ["Orchestrator"]

StartT = TypeVar("StartT", bound=Message, default=Message)
OutputT = TypeVar("OutputT", default=Any)


def _type_arguments(cls: type) -> tuple[type[Message] | None, Any]:
    """The `Orchestrator[Start, Output]` arguments a class declared, if any."""
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Orchestrator):
            arguments = typing.get_args(base)
            start = arguments[0] if arguments else None
            output = arguments[1] if len(arguments) > 1 else None
            if isinstance(start, typing.TypeVar):
                start = None
            if start is not None and not (isinstance(start, type) and issubclass(start, Message)):
                raise DefinitionError(
                    f"{cls.__qualname__}: Orchestrator[{start!r}, ...] must name a message type "
                    f"(an Event or Command subclass) as the start message"
                )
            return start, output
    return None, None


class Orchestrator(Generic[StartT, OutputT]):
    """A flow run by one central brain: it calls each step in order and undoes on failure.

    Subclass it with `steps = (step(...), parallel(...), ...)`; the steps are checked when
    the class is defined. Construct it with one implementation per interface (any order),
    then `run()` or `await run_async()`. `name=` gives the flow a stable stored name
    (default `module:QualName`, not inherited by subclasses).
    """

    steps: ClassVar[tuple[Step | Parallel | WaitStep | Action[Any, Any], ...]] = ()
    #: The compiled plan, set on every concrete subclass (a choreography can adopt it).
    plan: ClassVar[FlowPlan]

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise DefinitionError(f"{cls.__qualname__}: name= must be a non-empty string")
        flow_name = name or f"{cls.__module__}:{cls.__qualname__}"
        start, output = _type_arguments(cls)
        if not cls.steps:
            raise DefinitionError(
                f"{cls.__qualname__}: an Orchestrator subclass declares its steps, like "
                f"steps = (step(Payments.charge), ...)"
            )
        cls.plan = compile_plan(flow_name, normalise(flow_name, cls.steps), start, output)

    def __init__(
        self,
        *participants: Participant,
        store: Store | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        """Bind one implementation per interface the flow uses, in any order.

        `store` defaults to a `MemoryStore` keeping the last 10,000 finished runs. `clock`
        and `random` (the jitter source) are injectable so tests never wait. `observers`
        are called with each journal entry of every run as it is recorded.
        """
        plan = getattr(type(self), "plan", None)
        if plan is None:
            raise DefinitionError(
                "Orchestrator is a base class: subclass it with steps = (...) and construct that"
            )
        if store is not None and not isinstance(store, Store):
            raise UsageError(f"store= takes a Store such as MemoryStore(), got {store!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise UsageError(
                f"clock= takes a Clock (now, monotonic, sleep, sleep_async), got {clock!r}"
            )
        self._observers = checked_observers(type(self).__name__, observers)
        bound = bind(plan, participants)
        self.store: Store = store if store is not None else MemoryStore()
        self.store.register_types(plan.message_types)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._driver = Driver(plan, bound, self.clock, random or _random.random)
        self._owner = process_owner()
        self._sagas = Sagas(
            plan, self.store, self.clock, self._driver, self._owner, self._observers
        )

    @property
    def name(self) -> str:
        """The flow's stored name."""
        return self.plan.name

    # -- running --------------------------------------------------------------------------

    def run(self, message: StartT, *, workflow_id: str | None = None) -> WorkflowRun[OutputT]:
        """Run the flow for `message` to its end on this thread; idempotent by `workflow_id`.

        A known `workflow_id` with an equal message returns the recorded run without
        re-executing anything; with a different message it raises `WorkflowConflict`. A run
        interrupted half-way (KeyboardInterrupt, cancellation) is resumed from its records:
        recorded steps never run again.
        """
        self._check_sync_allowed("run")
        begun = self._sagas.begin(message, workflow_id)
        if isinstance(begun, RunRecord):
            return WorkflowRun(begun)
        self._sagas.drive(begun)
        return WorkflowRun(begun.record)

    async def run_async(
        self, message: StartT, *, workflow_id: str | None = None
    ) -> WorkflowRun[OutputT]:
        """Like `run()`, without blocking the loop: a generation's steps run concurrently."""
        begun = self._sagas.begin(message, workflow_id)
        if isinstance(begun, RunRecord):
            return WorkflowRun(begun)
        await self._sagas.drive_async(begun)
        return WorkflowRun(begun.record)

    def run_many(
        self, messages: Iterable[StartT], *, workflow_ids: Sequence[str] | None = None
    ) -> list[WorkflowRun[OutputT]]:
        """Run the flow for each message, all in lockstep on this thread: one commit per
        round for the whole batch instead of one per step of every run.

        Each run keeps every guarantee of `run()`: idempotent by its id (`workflow_ids`, one
        per message), fenced, its own outcome (one run's failure compensates that run only),
        resumable from its records after a crash. The runs come back in the messages' order.
        A run another process is driving (`WorkflowBusy`) is raised after the others ran.
        """
        self._check_sync_allowed("run_many")
        batch = Batch(self._runner())
        batch.begin(messages, workflow_ids)
        batch.drive(self._driver.run_batch)
        return [WorkflowRun(record) for record in batch.records()]

    async def run_many_async(
        self, messages: Iterable[StartT], *, workflow_ids: Sequence[str] | None = None
    ) -> list[WorkflowRun[OutputT]]:
        """Like `run_many()`, without blocking the loop: a round's steps of every run run
        concurrently, then one commit records them."""
        batch = Batch(self._runner())
        batch.begin(messages, workflow_ids)
        await batch.drive_async(self._driver.run_batch_async)
        return [WorkflowRun(record) for record in batch.records()]

    def _runner(self) -> Runner:
        """What a batch of runs needs of this orchestrator."""

        sagas = self._sagas

        def resumed(workflow_id: str, token: int, was: str | None) -> Saga:
            return sagas.resumed(workflow_id, token, was=was)

        return Runner(
            store=self.store, plan=self.plan, clock=self.clock, owner=self._owner,
            saga=sagas.saga, resumed=resumed, release=sagas.release,
            run_owed=self._driver.run_owed,
        )  # fmt: skip

    # -- outside messages -------------------------------------------------------------------

    def send(self, workflow_id: str, message: Message) -> WorkflowRun[OutputT]:
        """Hand a run the outside message one of its `wait(...)` steps waits for.

        A WAITING run resumes on this thread, to its next suspension or its end. A run still
        on its way to the wait keeps the message for it (durably): one this process drives
        takes it at once; one another live process drives gets it as a durable request,
        taken at its next step boundary (the run is returned as it stands); an interrupted
        one is resumed here. A duplicate of a message it
        received already changes nothing. `WorkflowNotFound` for an unknown run;
        `UsageError` for a type it does not wait for, or a run that finished without it.
        """
        saga = self._sent(workflow_id, message)
        if isinstance(saga, WorkflowRun):
            return saga
        self._check_sync_allowed("send")
        self._sagas.drive(saga)
        return WorkflowRun(saga.record)

    async def send_async(self, workflow_id: str, message: Message) -> WorkflowRun[OutputT]:
        """Like `send()`, resuming the run without blocking the loop."""
        saga = self._sent(workflow_id, message)
        if isinstance(saga, WorkflowRun):
            return saga
        await self._sagas.drive_async(saga)
        return WorkflowRun(saga.record)

    def _sent(self, workflow_id: str, message: Message) -> Saga | WorkflowRun[OutputT]:
        """Record `message`'s arrival: the saga to drive on, or the run as it stands."""
        if not isinstance(message, Message):
            raise UsageError(f"send() takes a message, got {type(message).__name__}")
        record = self._sagas.record(workflow_id)
        planned = outside_wait(record, self.plan, message)
        if planned is None:
            return WorkflowRun(record)
        live = LIVE.get(workflow_id)
        if live is not None and live.plan is self.plan and live.store is self.store:
            with live.lock:
                if live.status is WorkflowStatus.RUNNING and not live.lost:
                    live.arrive(planned, message)  # kept for its wait; its driver goes on
                    return WorkflowRun(live.record)
        token = claim_or_request(self.store, record, self._owner, self.clock.now(), message)
        if token is None:  # another live process drives it: kept for it, taken there
            return WorkflowRun(self._sagas.record(workflow_id))
        saga = self._sagas.resumed(workflow_id, token, was=record.owner)
        saga.arrive(planned, message)
        return saga

    def resume_due(self) -> list[WorkflowRun[OutputT]]:
        """Fire the timers that are due on this orchestrator's clock; return the runs moved.

        A `sleep(...)` that ended carries its run on (here, to its next suspension or end);
        a `wait(..., timeout=...)` past its timeout fails like a step, and what was done is
        undone. Each timer fires once: firing claims the run, and a run another process
        fires (or holds) is left to it. A waiting run nobody holds that has requests left
        for it (a cancel or a message its owner let go without seeing) carries them out.
        """
        self._check_sync_allowed("resume_due")
        moved: list[WorkflowRun[OutputT]] = []
        for record, due in due_instances(self.store, self.plan, self.clock.now()):
            try:
                token = claim_or_busy(self.store, record, self._owner, self.clock.now(), "")
            except WorkflowBusy:
                continue  # someone else fires it (or its message came meanwhile)
            if isinstance(due, DueStart):  # the next instance of a repeating process
                started = make_start(self.store, record, token, due, self.clock, self._start_due)
                if started is not None:
                    moved.append(started)
                continue
            saga = self._sagas.resumed(record.workflow_id, token, was=record.owner)
            wake(saga, due)
            self._sagas.drive(saga)
            moved.append(WorkflowRun(saga.record))
        return moved

    def _start_due(self, message: Message, workflow_id: str) -> WorkflowRun[OutputT]:
        """Start a scheduled next instance (a start message, checked when scheduled)."""
        return self.run(message, workflow_id=workflow_id)  # type: ignore[arg-type]

    # -- recovery -------------------------------------------------------------------------

    def recover(
        self, *, max_recoveries: int = 5, on_problem: Problem | None = None
    ) -> list[WorkflowRun[OutputT]]:
        """Resume this flow's runs that owe work and whose owner is gone; return them.

        A run is taken over when its owner let go of it, its owner process on this host is
        dead, or its lease expired. Recorded steps never run again; a step that started but
        was not recorded runs again under the same idempotency key. A run recovered
        `max_recoveries` times in a row at the same point (a step that kills its process) is
        parked (`PARKED`) for a human instead of looping. A run that cannot be resumed
        (another definition of the flow, an unreadable row) is left alone and reported to
        `on_problem(workflow_id, error)` (default: a warning in the log).
        """
        self._check_sync_allowed("recover")

        def resume(record: RunRecord, token: int) -> WorkflowRun[OutputT]:
            saga = self._sagas.saga(record, token)
            self._sagas.drive(saga)
            return WorkflowRun(saga.record)

        return recover(
            self.store,
            self.plan.name,
            self._owner,
            self.clock,
            max_recoveries=max_recoveries,
            resume=resume,
            parked=WorkflowRun,
            check=self._sagas.check_shape,
            on_problem=on_problem,
            observers=self._observers,
        )

    # -- workers --------------------------------------------------------------------------

    def submit(self, message: StartT, *, workflow_id: str | None = None) -> str:
        """Enqueue a run for whichever worker claims it first (`serve()`, in any process
        sharing the store); its workflow_id. Idempotent by `workflow_id`, like `run()`."""
        record, token = self._sagas.start(message, workflow_id)
        if token is None:
            same_start(record, self.plan.name, message)
            return record.workflow_id
        # Nobody's from now on, like a run whose owner let go: the first worker takes it.
        self.store.release_run(record.workflow_id, token, now=self.clock.now())
        if isinstance(self.store, WorkQueue):
            self.store.announce(self.plan.name)
        return record.workflow_id

    def serve(
        self,
        *,
        workers: int = 1,
        poll: float = 1.0,
        stop: threading.Event | None = None,
        max_recoveries: int = 5,
        on_problem: Problem | None = None,
    ) -> None:
        """Run this flow's submitted runs, and take over those of dead processes, until
        `stop` is set: `workers` loops, this thread and `workers - 1` more (the
        participants are then called from several threads).

        On a store that can (PostgreSQL, SQLite), a loop claims the oldest free run
        (PostgreSQL: `FOR UPDATE SKIP LOCKED`) and, with nothing to do, fires due timers,
        takes over dead owners' runs and sleeps until an announcement (PostgreSQL: from any
        process) or `poll` seconds; on others it polls `recover()` every `poll` seconds.
        """
        self._check_sync_allowed("serve")
        serve(
            self, workers=workers, poll=poll, stop=stop, max_recoveries=max_recoveries,
            on_problem=on_problem,
        )  # fmt: skip

    def result(self, workflow_id: str, *, timeout: float | None = None) -> WorkflowRun[OutputT]:
        """Wait (in real time) until run `workflow_id` finished or parked, wherever it runs.

        `WorkflowNotFound` for an unknown id; `WorkflowBusy` if it is still going after
        `timeout` seconds (None: wait as long as it takes).
        """
        return WorkflowRun(wait_for_result(self, workflow_id, timeout))

    def _serve_next(
        self, queue: WorkQueue, max_recoveries: int, on_problem: Problem | None
    ) -> bool:
        """Claim the next free run of this flow and drive it; False if there was none."""

        def resume(record: RunRecord, token: int) -> None:
            self._sagas.drive(self._sagas.saga(record, token))

        return resume_next(
            queue, self.store, self.plan.name, self._owner, self.clock,
            max_recoveries=max_recoveries, resume=resume, parked=lambda record: None,
            check=self._sagas.check_shape, on_problem=on_problem, observers=self._observers,
        )  # fmt: skip

    # -- operators ------------------------------------------------------------------------

    def retry(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """Go on with a run a human had to look at, to its end.

        A `PARKED` run resumes where it stopped (a step that failed after the pivot runs
        again under its key); a `COMPENSATION_FAILED` run tries the failed undo again (as a
        new record) and goes on undoing, newest first.
        """
        self._check_sync_allowed("retry")
        record = self._sagas.record(workflow_id)
        saga = self._sagas.reopened(record, retry_target(record))
        saga.retry_forward()
        self._sagas.drive(saga)
        return WorkflowRun(saga.record)

    def cancel(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """Stop a run that has not finished (or is parked): undo what it did, end CANCELLED.

        A run this process is driving right now stops at its next step boundary: `cancel()`
        returns it COMPENSATING, and its driver undoes it. A run another live process drives
        is left a durable cancel request, and `cancel()` returns it as it stands: that
        process stops it at its next step boundary (it looks at least every 0.1 s while it
        runs) and undoes it; if it dies first, whoever recovers the run does. Past the pivot
        (the point of no return) nothing can be undone: `UsageError`.
        """
        record = self._sagas.record(workflow_id)
        refusal = cancel_refusal(record, self.plan)
        if refusal is not None:
            raise refusal
        live = LIVE.get(workflow_id)
        if live is not None and live.plan is self.plan and live.store is self.store:
            if live.request_cancel():
                return WorkflowRun(live.record)
            refusal = cancel_refusal(live.record, self.plan)
            raise refusal or UsageError(f"workflow {workflow_id!r} cannot be cancelled now")
        self._check_sync_allowed("cancel")
        if record.status is WorkflowStatus.PARKED:
            saga = self._sagas.reopened(record, WorkflowStatus.COMPENSATING)
        else:
            token = claim_or_request(self.store, record, self._owner, self.clock.now(), None)
            if token is None:  # another live process drives it: it stops there and undoes
                return WorkflowRun(self._sagas.record(workflow_id))
            saga = self._sagas.resumed(workflow_id, token, was=record.owner)
        saga.cancel()
        self._sagas.drive(saga)
        return WorkflowRun(saga.record)

    def _record(self, workflow_id: str) -> RunRecord:
        return self._sagas.record(workflow_id)

    def _check_sync_allowed(self, method: str) -> None:
        """Refuse to drive a flow with async actions on a private loop inside a running one."""
        if not self.plan.has_async:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise UsageError(
            f"{self.plan.name} has async actions and {method}() was called inside a running "
            f"event loop; use `await orchestrator.run_async(...)`"
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """A past or current run of this flow, as the store holds it now."""
        return WorkflowRun(self._sagas.record(workflow_id))

    def runs(self, status: WorkflowStatus | None = None) -> list[WorkflowRun[OutputT]]:
        """This flow's runs in the store, oldest first, optionally only those in `status`."""
        return [
            WorkflowRun(record)
            for record in self.store.list_runs(flow=self.plan.name, status=status)
        ]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} flow={self.plan.name!r} store={self.store!r}>"
