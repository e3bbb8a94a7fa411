"""`run_many()`: many runs of one flow driven in lockstep, one commit per round for all.

What a batch is owed is what each of its runs would be owed alone: the same idempotent ids
(a known id with an equal message returns or resumes that run, a different message is a
`WorkflowConflict`), the same fencing (a run another owner took is dropped from the batch,
and returned as stored), the same outcome per run (one run's failure compensates that run
only), and the same recovery (a crash mid-batch leaves each run resumable from its own
records). Only the commits are shared: one `start_many` for the starts, then one
`write_many` per round (see `coordination.engine.WriteBatch`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from coordination._clock import Clock
from coordination._messages import Message, new_id
from coordination.engine import (
    ACTIVE,
    LIVE,
    FlowPlan,
    Saga,
    Undo,
    WriteBatch,
    claim_or_busy,
    same_start,
)
from coordination.errors import StoreError, UsageError, WorkflowBusy, WorkflowConflict
from coordination.stores._records import RunRecord
from coordination.stores._store import Store

__all__ = ["Batch", "Runner"]


class Runner:
    """What a batch needs of its orchestrator: where runs are kept, and how one is begun,
    resumed, let go of, and owed undos run (the orchestrator's own, handed over)."""

    __slots__ = ("clock", "owner", "plan", "release", "resumed", "run_owed", "saga", "store")

    def __init__(
        self,
        *,
        store: Store,
        plan: FlowPlan,
        clock: Clock,
        owner: str,
        saga: Callable[[RunRecord, int], Saga],
        resumed: Callable[[str, int, str | None], Saga],
        release: Callable[[Saga], None],
        run_owed: Callable[[Saga, Undo], None],
    ) -> None:
        self.store = store
        self.plan = plan
        self.clock = clock
        self.owner = owner
        self.saga = saga
        self.resumed = resumed
        self.release = release
        self.run_owed = run_owed


class Batch:
    """The runs of one `run_many()` call: the ones to drive, and each one's place."""

    __slots__ = ("errors", "orchestrator", "places", "sagas", "write")

    def __init__(self, orchestrator: Runner) -> None:
        self.orchestrator = orchestrator
        #: Per message, in order: its saga (driven here) or its record (finished already).
        self.places: list[Saga | RunRecord | None] = []
        self.sagas: list[Saga] = []
        #: Runs another process drives, or started meanwhile with another message: raised
        #: once the rest of the batch has run.
        self.errors: list[WorkflowBusy | WorkflowConflict] = []
        self.write = WriteBatch(orchestrator.store)

    # -- beginning ----------------------------------------------------------------------------

    def begin(self, messages: Iterable[Message], workflow_ids: Sequence[str] | None) -> None:
        """Check every message and id, then start (or find) every run in one commit."""
        orchestrator = self.orchestrator
        plan, store = orchestrator.plan, orchestrator.store
        items = _messages(messages, plan.start_type, plan.name)
        ids = _ids(workflow_ids, len(items))
        if workflow_ids is not None:
            # An id already used for another message is refused before anything is written.
            for workflow_id, message in zip(ids, items, strict=True):
                known = store.get_run(workflow_id)
                if known is not None:
                    same_start(known, plan.name, message)
        started = store.start_many(
            plan.name,
            list(zip(ids, items, strict=True)),
            owner=orchestrator.owner,
            now=orchestrator.clock.now(),
            shape=plan.shape,
        )
        for (record, token), message in zip(started, items, strict=True):
            if token is not None:
                self._add(orchestrator.saga(record, token))
                continue
            try:
                same_start(record, plan.name, message)  # started meanwhile by another caller
                if record.status.finished:
                    self.places.append(record)
                    continue
                claimed = claim_or_busy(
                    store, record, orchestrator.owner, orchestrator.clock.now(),
                    "wait for it to finish",
                )  # fmt: skip
                self._add(orchestrator.resumed(record.workflow_id, claimed, record.owner))
            except (WorkflowBusy, WorkflowConflict) as error:
                self.errors.append(error)
                self.places.append(None)

    def _add(self, saga: Saga) -> None:
        self.places.append(saga)
        self.sagas.append(saga)

    # -- driving ------------------------------------------------------------------------------

    def drive(self, carry_out: Callable[[list[Saga], WriteBatch], None]) -> None:
        """Drive every run of the batch to its end (or its next suspension)."""
        self._enter()
        try:
            carry_out(self.sagas, self.write)
            self.write.close()
        except BaseException:
            self._let_go()
            raise
        finally:
            self._leave()
        self._settle()

    async def drive_async(
        self, carry_out: Callable[[list[Saga], WriteBatch], Awaitable[None]]
    ) -> None:
        """`drive()` without blocking the running loop."""
        self._enter()
        try:
            await carry_out(self.sagas, self.write)
            self.write.close()
        except BaseException:
            self._let_go()
            raise
        finally:
            self._leave()
        self._settle()

    def _enter(self) -> None:
        for saga in self.sagas:
            ACTIVE.enter(saga.workflow_id)
            LIVE.add(saga)
            saga.recorder.batch = self.write

    def _leave(self) -> None:
        for saga in self.sagas:
            with saga.lock:
                saga.recorder.batch = None
            LIVE.discard(saga)
            ACTIVE.leave(saga.workflow_id)

    def _let_go(self) -> None:
        """Interrupted (Ctrl-C, a cancelled task, a failing store): commit what was done if
        the store still can, and let go of every unfinished run, so each can be resumed."""
        try:
            self.write.close()
        except StoreError:
            pass  # nothing of the last round was committed: those steps run again
        for saga in self.sagas:
            self.orchestrator.release(saga)

    def _settle(self) -> None:
        """Run the late undos a finished run still owes (a crash left them owed)."""
        run_owed = self.orchestrator.run_owed
        for saga in self.sagas:
            if saga.finished and not saga.lost:
                for undo in saga.owed_after_end():
                    run_owed(saga, undo)

    # -- results ----------------------------------------------------------------------------

    def records(self) -> list[RunRecord]:
        """Each message's run, in order; raises what some runs could not do, after the rest."""
        if self.errors:
            first = self.errors[0]
            others = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise type(first)(
                f"{first}{others}; the batch's other runs ran: read them with get()",
                workflow_id=first.workflow_id,
            ) from first
        store = self.orchestrator.store
        records: list[RunRecord] = []
        for place in self.places:
            assert place is not None
            if isinstance(place, RunRecord):
                records.append(place)
            elif place.lost:  # another owner took it over: what the store holds now
                records.append(store.get_run(place.workflow_id) or place.record)
            else:
                records.append(place.record)
        return records


def _messages(messages: object, start_type: type[Message], flow: str) -> list[Message]:
    """The batch's messages, each checked to start the flow, before anything is written."""
    if isinstance(messages, (Message, str, bytes)) or not isinstance(messages, Iterable):
        raise UsageError(
            f"run_many() takes an iterable of {start_type.__name__} messages, got "
            f"{type(messages).__name__}"
        )
    items = list(messages)
    for index, message in enumerate(items):
        if not isinstance(message, start_type):
            raise UsageError(
                f"{flow} starts with {start_type.__name__}; message {index} is "
                f"{type(message).__name__}"
            )
    return items


def _ids(workflow_ids: object, count: int) -> list[str]:
    """One id per message (new ones when none are given), each a non-empty string, once."""
    if workflow_ids is None:
        return [new_id() for _ in range(count)]
    if isinstance(workflow_ids, str) or not isinstance(workflow_ids, Iterable):
        raise UsageError(
            f"workflow_ids must be a sequence of strings, one per message, got "
            f"{type(workflow_ids).__name__}"
        )
    ids = list(workflow_ids)
    if len(ids) != count:
        raise UsageError(f"run_many() got {count} messages and {len(ids)} workflow_ids")
    seen: set[str] = set()
    for workflow_id in ids:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise UsageError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        if workflow_id in seen:
            raise UsageError(
                f"workflow_id {workflow_id!r} appears twice in one run_many() call; an id "
                f"names one run"
            )
        seen.add(workflow_id)
    return ids
