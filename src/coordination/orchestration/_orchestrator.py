"""Orchestrator: the base class a flow subclasses to run its steps centrally, as a saga."""

from __future__ import annotations

import asyncio
import random as _random
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Generic

from typing_extensions import TypeVar

from coordination._clock import Clock, SystemClock
from coordination._messages import Message, new_id
from coordination._ownership import owner_alive, process_owner
from coordination._participants import Action, Participant
from coordination._status import WorkflowStatus
from coordination.errors import (
    DefinitionError,
    FlowChanged,
    StepFailed,
    UsageError,
    WorkflowBusy,
    WorkflowConflict,
    WorkflowNotFound,
)
from coordination.orchestration._binding import bind
from coordination.orchestration._core import RunState
from coordination.orchestration._drivers import Driver
from coordination.orchestration._flow import FlowDefinition, compile_flow, shape_difference
from coordination.orchestration._lifecycle import check_move
from coordination.orchestration._run import WorkflowRun
from coordination.orchestration._steps import Parallel, Step
from coordination.stores._memory import MemoryStore
from coordination.stores._records import RunRecord
from coordination.stores._store import Store

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

    steps: ClassVar[tuple[Step | Parallel | Action[Any, Any], ...]] = ()
    #: The compiled flow, set on every concrete subclass.
    flow: ClassVar[FlowDefinition]

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
        cls.flow = compile_flow(flow_name, cls.steps, start, output)

    def __init__(
        self,
        *participants: Participant,
        store: Store | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        """Bind one implementation per interface the flow uses, in any order.

        `store` defaults to a `MemoryStore` keeping the last 10,000 finished runs. `clock`
        and `random` (the jitter source) are injectable so tests never wait.
        """
        flow = getattr(type(self), "flow", None)
        if flow is None:
            raise DefinitionError(
                "Orchestrator is a base class: subclass it with steps = (...) and construct that"
            )
        if store is not None and not isinstance(store, Store):
            raise UsageError(f"store= takes a Store such as MemoryStore(), got {store!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise UsageError(
                f"clock= takes a Clock (now, monotonic, sleep, sleep_async), got {clock!r}"
            )
        self.store: Store = store if store is not None else MemoryStore()
        self.store.register_types(flow.message_types)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._driver = Driver(flow, bind(flow, participants), self.clock, random or _random.random)
        self._owner = process_owner()
        self._shape = flow.shape

    @property
    def name(self) -> str:
        """The flow's stored name."""
        return self.flow.name

    # -- running --------------------------------------------------------------------------

    def run(self, message: StartT, *, workflow_id: str | None = None) -> WorkflowRun[OutputT]:
        """Run the flow for `message` to its end on this thread; idempotent by `workflow_id`.

        A known `workflow_id` with an equal message returns the recorded run without
        re-executing anything; with a different message it raises `WorkflowConflict`. A run
        interrupted half-way (KeyboardInterrupt, cancellation) is resumed from its records:
        recorded steps never run again.
        """
        self._check_sync_allowed("run")
        begun = self._begin(message, workflow_id)
        if isinstance(begun, WorkflowRun):
            return begun
        try:
            self._driver.run(begun)
        except BaseException:
            self._release(begun)
            raise
        return WorkflowRun(begun.record)

    async def run_async(
        self, message: StartT, *, workflow_id: str | None = None
    ) -> WorkflowRun[OutputT]:
        """Like `run()`, without blocking the loop: parallel branches run concurrently."""
        begun = self._begin(message, workflow_id)
        if isinstance(begun, WorkflowRun):
            return begun
        try:
            await self._driver.run_async(begun)
        except BaseException:  # cancelled, interrupted: the run can be resumed
            self._release(begun)
            raise
        return WorkflowRun(begun.record)

    def _release(self, state: RunState) -> None:
        """Let go of a run interrupted half-way, so running its workflow_id again resumes it."""
        if not state.status.finished:
            self.store.release_run(state.workflow_id, self._owner, now=self.clock.now())

    def _begin(self, message: Message, workflow_id: str | None) -> RunState | WorkflowRun[OutputT]:
        flow = self.flow
        if not isinstance(message, flow.start_type):
            raise UsageError(
                f"{flow.name} starts with {flow.start_type.__name__}, got {type(message).__name__}"
            )
        if workflow_id is None:
            workflow_id = new_id()
        elif not isinstance(workflow_id, str) or not workflow_id:
            raise UsageError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        now = self.clock.now()
        record, created = self.store.start_run(
            workflow_id, flow.name, message, owner=self._owner, now=now, shape=self._shape
        )
        if created:
            return RunState(flow, self.store, self.clock, record)
        if record.flow != flow.name:
            raise WorkflowConflict(
                f"workflow_id {workflow_id!r} is a run of flow {record.flow!r}, not "
                f"{flow.name!r}; use another workflow_id",
                workflow_id=workflow_id,
            )
        if record.start != message:
            raise WorkflowConflict(
                f"workflow_id {workflow_id!r} was already started with a different message "
                f"({record.start!r}); an id names one run of one message",
                workflow_id=workflow_id,
            )
        if not record.status.finished:
            claimed = self._claim(record, now)
            if claimed is None:
                raise WorkflowBusy(
                    f"workflow {workflow_id!r} is {record.status.name} under owner "
                    f"{record.owner!r}; wait for it to finish",
                    workflow_id=workflow_id,
                )
            # Interrupted earlier (its owner let go): resume from its records.
            return self._resumed(claimed)
        return WorkflowRun(record)

    def _resumed(self, record: RunRecord) -> RunState:
        """The state of a claimed run, if this flow's definition can resume it."""
        if record.shape is not None:
            difference = shape_difference(record.shape, self._shape)
            if difference is not None:
                self.store.release_run(record.workflow_id, self._owner, now=self.clock.now())
                raise FlowChanged(
                    f"run {record.workflow_id!r} was started by another definition of flow "
                    f"{self.flow.name!r}: {difference}. Resume it with the code that started "
                    f"it, or cancel it",
                    workflow_id=record.workflow_id,
                )
        return RunState(self.flow, self.store, self.clock, record)

    def _claim(self, record: RunRecord, now: float) -> RunRecord | None:
        """Take over an unfinished run whose owner let go, died, or let its lease expire."""
        replacing = None
        owner = record.owner
        if owner is not None and owner != self._owner:
            alive = owner_alive(owner)
            if alive is True:
                return None  # a live process on this host holds it, lease or not
            if alive is False:
                replacing = owner
        return self.store.claim_run(record.workflow_id, self._owner, now=now, replacing=replacing)

    # -- recovery -------------------------------------------------------------------------

    def recover(self, *, max_recoveries: int = 5) -> list[WorkflowRun[OutputT]]:
        """Resume this flow's unfinished runs whose owner is gone; return them as they end.

        A run is taken over when its owner let go of it, its owner process on this host is
        dead, or its lease expired. Recorded steps never run again; a step that started but
        was not recorded runs again under the same idempotency key. A run recovered
        `max_recoveries` times in a row at the same step (a step that kills its process) is
        parked (`PARKED`) for a human instead of looping.
        """
        if max_recoveries < 1:
            raise UsageError(f"max_recoveries={max_recoveries} must be at least 1")
        self._check_sync_allowed("recover")
        resumed: list[WorkflowRun[OutputT]] = []
        for record in self.store.list_runs(flow=self.flow.name):
            if record.status.finished or record.owner == self._owner:
                continue
            now = self.clock.now()
            claimed = self._claim(record, now)
            if claimed is None:
                continue  # a live owner holds it, or another recoverer claimed it first
            position = f"{len(claimed.steps)} records"
            count = self.store.note_recovery(claimed.workflow_id, position)
            if count > max_recoveries:
                self.store.finish_run(
                    claimed.workflow_id,
                    WorkflowStatus.PARKED,
                    now=now,
                    error=StepFailed(
                        f"parked: recovered {count - 1} times in a row at the same step "
                        f"(after {position}) without progress; a human decides",
                        step=position,
                        attempts=count - 1,
                    ),
                )
                resumed.append(WorkflowRun(claimed))
                continue
            state = self._resumed(claimed)
            try:
                self._driver.run(state)
            except BaseException:
                self._release(state)
                raise
            resumed.append(WorkflowRun(state.record))
        return resumed

    # -- operators ------------------------------------------------------------------------

    def retry(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """Go on with a run a human had to look at, to its end.

        A `PARKED` run resumes where it stopped; a `COMPENSATION_FAILED` run tries the
        failed undo again (as a new record) and goes on undoing, newest first.
        """
        self._check_sync_allowed("retry")
        record = self._record(workflow_id)
        if record.status is WorkflowStatus.PARKED:
            target = WorkflowStatus.RUNNING
        elif record.status is WorkflowStatus.COMPENSATION_FAILED:
            target = WorkflowStatus.COMPENSATING
        else:
            raise UsageError(
                f"workflow {workflow_id!r} is {record.status.name}; retry() takes a PARKED or "
                f"COMPENSATION_FAILED run"
            )
        check_move(record.status, target)
        return self._drive_reopened(record, target, cancelling=False)

    def cancel(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """Stop a run that has not finished (or is parked): undo what it did, end CANCELLED."""
        self._check_sync_allowed("cancel")
        record = self._record(workflow_id)
        check_move(record.status, WorkflowStatus.COMPENSATING)
        if record.status is WorkflowStatus.RUNNING:
            claimed = self._claim(record, self.clock.now())
            if claimed is None:
                raise WorkflowBusy(
                    f"workflow {workflow_id!r} is running under owner {record.owner!r}; "
                    f"cancel it once that owner stopped",
                    workflow_id=workflow_id,
                )
            record = claimed
        return self._drive_reopened(record, WorkflowStatus.COMPENSATING, cancelling=True)

    def _record(self, workflow_id: str) -> RunRecord:
        record = self.store.get_run(workflow_id)
        if record is None or record.flow != self.flow.name:
            raise WorkflowNotFound(
                f"no run {workflow_id!r} of flow {self.flow.name!r} in {self.store!r}",
                workflow_id=workflow_id,
            )
        return record

    def _drive_reopened(
        self, record: RunRecord, status: WorkflowStatus, *, cancelling: bool
    ) -> WorkflowRun[OutputT]:
        reopened = self.store.reopen_run(
            record.workflow_id,
            expected=record.status,
            status=status,
            owner=self._owner,
            now=self.clock.now(),
        )
        if reopened is None:
            raise WorkflowBusy(
                f"workflow {record.workflow_id!r} changed or is owned by someone else; "
                f"look at it again",
                workflow_id=record.workflow_id,
            )
        state = self._resumed(reopened)
        state.cancelling = cancelling
        try:
            self._driver.run(state)
        except BaseException:
            self._release(state)
            raise
        return WorkflowRun(state.record)

    def _check_sync_allowed(self, method: str) -> None:
        """Refuse to drive a flow with async actions on a private loop inside a running one."""
        if not self.flow.has_async:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise UsageError(
            f"{self.flow.name} has async actions and {method}() was called inside a running "
            f"event loop; use `await orchestrator.run_async(...)`"
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, workflow_id: str) -> WorkflowRun[OutputT]:
        """A past or current run of this flow, from the store."""
        return WorkflowRun(self._record(workflow_id))

    def runs(self, status: WorkflowStatus | None = None) -> list[WorkflowRun[OutputT]]:
        """This flow's runs in the store, oldest first, optionally only those in `status`."""
        return [
            WorkflowRun(record)
            for record in self.store.list_runs(flow=self.flow.name, status=status)
        ]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} flow={self.flow.name!r} store={self.store!r}>"
