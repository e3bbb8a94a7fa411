"""The runs of one orchestrator: started or found, claimed and resumed, driven, let go.

Every public method of `Orchestrator` comes down to these few moves on its store: start a
run (or find the one its workflow_id names), claim a run someone else left to resume it
from its records, drive a saga on this thread or loop, and let go of a run interrupted
half-way so that running its workflow_id again resumes it. They are kept here, once, so
that `run()`, `send()`, `retry()`, `cancel()`, `resume_due()` and the workers take a run the
same way.
"""

from __future__ import annotations

from coordination._clock import Clock
from coordination._messages import Message, new_id
from coordination._status import WorkflowStatus
from coordination.engine import (
    ACTIVE,
    LIVE,
    FlowPlan,
    Observer,
    Saga,
    check_shape,
    claim_or_busy,
    note_takeover,
    reopen,
    same_start,
    take_over,
)
from coordination.errors import StoreError, UsageError, WorkflowNotFound
from coordination.orchestration._drivers import Driver
from coordination.stores._records import RunRecord
from coordination.stores._store import Store

__all__ = ["Sagas"]


class Sagas:
    """Starts, claims, drives and lets go of the runs of one orchestrator's flow."""

    __slots__ = ("clock", "driver", "observers", "owner", "plan", "store")

    def __init__(
        self,
        plan: FlowPlan,
        store: Store,
        clock: Clock,
        driver: Driver,
        owner: str,
        observers: tuple[Observer, ...],
    ) -> None:
        self.plan = plan
        self.store = store
        self.clock = clock
        self.driver = driver
        self.owner = owner
        self.observers = observers

    def saga(self, record: RunRecord, token: int) -> Saga:
        return Saga(self.plan, record, token, self.store, self.clock, observers=self.observers)

    def start(self, message: Message, workflow_id: str | None) -> tuple[RunRecord, int | None]:
        """Check what a run starts with, and start it (or find it): `store.start_run`."""
        plan = self.plan
        if not isinstance(message, plan.start_type):
            raise UsageError(
                f"{plan.name} starts with {plan.start_type.__name__}, got {type(message).__name__}"
            )
        if workflow_id is None:
            workflow_id = new_id()
        elif not isinstance(workflow_id, str) or not workflow_id:
            raise UsageError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        return self.store.start_run(
            workflow_id, plan.name, message, owner=self.owner, now=self.clock.now(),
            shape=plan.shape,
        )  # fmt: skip

    def begin(self, message: Message, workflow_id: str | None) -> Saga | RunRecord:
        """The saga to drive for `message`, or the record of the run it names when that
        run finished already (an equal start message: idempotent)."""
        record, token = self.start(message, workflow_id)
        if token is not None:
            return self.saga(record, token)
        same_start(record, self.plan.name, message)
        if record.status.finished:
            return record
        # Interrupted earlier (its owner let go, or died): resume from its records.
        now = self.clock.now()
        claimed = claim_or_busy(self.store, record, self.owner, now, "wait for it to finish")
        return self.resumed(record.workflow_id, claimed, was=record.owner)

    def resumed(self, workflow_id: str, token: int, *, was: str | None) -> Saga:
        """The saga of a claimed run, if this flow's definition can resume it."""
        record = self.store.get_run(workflow_id)
        if record is None:
            raise WorkflowNotFound(f"run {workflow_id!r} vanished", workflow_id=workflow_id)
        self.check_shape(record, token)
        note_takeover(self.store, record, token)
        take_over(self.store, record, token, self.clock, was=was, observers=self.observers)
        return self.saga(record, token)

    def reopened(self, record: RunRecord, status: WorkflowStatus) -> Saga:
        """A finished or parked run claimed back for an operator, moved to `status`."""
        token = reopen(self.store, record, self.owner, self.clock.now(), status)
        return self.resumed(record.workflow_id, token, was=record.owner)

    def check_shape(self, record: RunRecord, token: int) -> None:
        check_shape(self.store, record, token, self.plan, self.clock.now())

    def record(self, workflow_id: str) -> RunRecord:
        """The stored run `workflow_id` of this flow; `WorkflowNotFound` if there is none."""
        record = self.store.get_run(workflow_id)
        if record is None or record.flow != self.plan.name:
            raise WorkflowNotFound(
                f"no run {workflow_id!r} of flow {self.plan.name!r} in {self.store!r}",
                workflow_id=workflow_id,
            )
        return record

    def drive(self, saga: Saga) -> None:
        """Drive `saga` on this thread, letting go of it if that is interrupted."""
        ACTIVE.enter(saga.workflow_id)
        LIVE.add(saga)
        try:
            self.driver.run(saga)
            if saga.finished and saga.record.owed:  # owing nothing: nothing to look for
                for undo in saga.owed_after_end():  # late undos a crash left owed
                    self.driver.run_owed(saga, undo)
        except BaseException:
            self.release(saga)
            raise
        finally:
            LIVE.discard(saga)
            ACTIVE.leave(saga.workflow_id)

    async def drive_async(self, saga: Saga) -> None:
        """Drive `saga` without blocking the loop, letting go of it if that is interrupted
        (cancelled: the run can be resumed)."""
        ACTIVE.enter(saga.workflow_id)
        LIVE.add(saga)
        try:
            await self.driver.run_async(saga)
        except BaseException:
            self.release(saga)
            raise
        finally:
            LIVE.discard(saga)
            ACTIVE.leave(saga.workflow_id)

    def release(self, saga: Saga) -> None:
        """Let go of a run interrupted half-way, so running its workflow_id again resumes it."""
        if saga.finished:
            return
        try:
            self.store.release_run(saga.workflow_id, saga.token, now=self.clock.now())
        except StoreError:
            pass  # the store is failing: the lease runs out, then recover() takes it

    def __repr__(self) -> str:
        return f"<Sagas of {self.plan.name!r}>"
