"""The saga of one flow instance: the one place that decides, for both runners, what runs next.

A `Saga` holds an instance's forward state (which actions of which generation settled and
how, what they produced) and answers `next()`: run these actions, run this undo, wait, or
done. Its `Recorder` writes every fact (one fenced `Write` each, status moves checked
against the lifecycle table); its `UndoBook` keeps what is owed an undo. The orchestrator's
drivers and the choreography's reactor only carry its answers out, so "same participants,
same outcome" holds by construction:

- an instance runs in generations; an action starts only when every action of the earlier
  generations settled and none failed;
- every action of a generation runs to its end, whatever its siblings do;
- once the failing generation settled, undo runs newest generation first, siblings in
  reverse declared order (`plan_undos`); a failed compensation stops it;
- late results are held until their action settles, then left alone (it succeeded) or
  undone under their own keys, recorded durably first so a crash never loses an owed undo.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from coordination._clock import Clock
from coordination._journal import Rows
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._attempts import Attempts, describe
from coordination.engine._observers import Observer
from coordination.engine._plan import FlowPlan, PlannedAction, PlannedWait
from coordination.engine._progress import Progress
from coordination.engine._recorder import Recorder
from coordination.engine._requests import carry_out, first_look, pending
from coordination.engine._schedules import check_scheduled, pending_starts, scheduled_records
from coordination.engine._undo import Undo, UndoBook, undo_progress
from coordination.errors import CompensationFailed, StepFailed
from coordination.stores._records import Finish, RunRecord, StepOutcome, StepRecord
from coordination.stores._store import Store

__all__ = ["SUSPEND", "WAIT", "Publishing", "Saga", "Suspend", "Wait"]

_RUNNING = WorkflowStatus.RUNNING
_COMPENSATING = WorkflowStatus.COMPENSATING
_COMPLETED = WorkflowStatus.COMPLETED
_FINISHED = frozenset(status for status in WorkflowStatus if status.finished)
_OUTCOME_COMPLETED = StepOutcome.COMPLETED
_NOTHING_TO_UNDO = "nothing declared to undo it"
_LEFT_ALONE = "left alone (the action succeeded)"
_UNDONE = "undone (the action failed)"
_UNSETTLED: Any = object()
#: The key of an action's failure after the pivot: `Interface.action:parked<n>`.
_PARKED = ":parked"
# NamedTuple's generated __new__ is a Python function; the tuple constructor is not, and a
# step record is made for every step of every instance.
_new_step = functools.partial(tuple.__new__, StepRecord)
_monotonic = time.monotonic


class Wait:
    """`next()`'s answer when nothing can start now (an action or undo is in flight)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WAIT"


WAIT = Wait()


class Suspend:
    """`next()`'s answer when the instance stands at a wait for an outside message: the
    runner suspends it (`Saga.suspend`), holding no thread and no lease."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SUSPEND"


SUSPEND = Suspend()


class Publishing(Protocol):
    """What a choreography adds to the saga's writes: the envelopes it publishes.

    The saga writes them in the same commit as the fact that produced them (the outbox) and
    hands them back through `committed()` once that commit succeeded, to be delivered.
    """

    def outputs(
        self, action: PlannedAction, output: Any, causes: tuple[str | None, ...]
    ) -> tuple[Envelope[Message], ...]:
        """Envelopes for what `action` produced; pure (ids derived from the causes)."""
        ...

    def failure(
        self, action: PlannedAction, error: str, attempts: int, cause: str | None
    ) -> tuple[Envelope[Message], ...]: ...

    def undone(self, undo: Undo, output: Any) -> tuple[Envelope[Message], ...]: ...

    def arrived(self, planned: PlannedWait, message: Message) -> Envelope[Message]:
        """The envelope an outside message goes out in (its id derived: idempotent)."""
        ...

    def handled(
        self, action: PlannedAction, causes: tuple[str | None, ...]
    ) -> tuple[tuple[str, str], ...]: ...

    def committed(self, envelopes: Sequence[Envelope[Message]]) -> None: ...


class Saga:
    """One flow instance: its forward state and the decisions both runners carry out."""

    __slots__ = (
        "_late_held",
        "abandoned",
        "cancelling",
        "clock",
        "failure",
        "lock",
        "plan",
        "progress",
        "publishing",
        "record",
        "recorder",
        "requests_due",
        "resumed",
        "store",
        "token",
        "undos",
        "workflow_id",
    )

    def __init__(
        self,
        plan: FlowPlan,
        record: RunRecord,
        token: int,
        store: Store,
        clock: Clock,
        *,
        publishing: Publishing | None = None,
        start_id: str | None = None,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self.plan = plan
        self.record = record
        self.token = token
        self.store = store
        self.clock = clock
        self.workflow_id = record.workflow_id
        self.recorder = Recorder(store, record, token, clock, observers)
        self.publishing = publishing
        self.lock = threading.RLock()
        self.progress = Progress(
            plan, record.start, clock, deliveries=publishing is not None, start_id=start_id
        )
        self.failure: StepFailed | None = None
        self.cancelling = False
        self.undos = UndoBook()
        #: Late results `(attempt, output)` per action, held until it settles.
        self._late_held: dict[str, list[tuple[int, Any]]] = {}
        #: Timed-out attempts still running on threads of their own: what they return comes
        #: back late, so an instance that ends meanwhile keeps owing (its store keeps it).
        self.abandoned = 0
        #: The generation open when the instance was resumed (its actions may have been in
        #: flight: their attempt numbers continue).
        self.resumed: int | None = None
        #: When to look for requests next (a claimed instance: at once, requests may have
        #: been left for its previous owner; a new one: once it has run a while).
        self.requests_due = first_look(token > 1)
        # A claimed instance (token > 1) is resumed, records or not: its owner may have died
        # before recording anything, and what it had published must be delivered again.
        if token > 1 or record.has_any_step() or record.status is not _RUNNING:
            self._replay()

    @property
    def status(self) -> WorkflowStatus:
        """Where the instance stands (kept on its record, so a view read at any time shows it)."""
        return self.record.status

    @property
    def finished(self) -> bool:
        return self.record.status in _FINISHED

    @property
    def lost(self) -> bool:
        """A write was refused or failed: this process drives the instance no further."""
        return self.recorder.lost

    # The forward state, as the runners read it.
    @property
    def values(self) -> list[Any]:
        return self.progress.values

    @property
    def ids(self) -> list[str | None]:
        return self.progress.ids

    @property
    def opened_at(self) -> float:
        return self.progress.opened_at

    @property
    def compensation_error(self) -> CompensationFailed | None:
        error: CompensationFailed | None = self.undos.error
        return error

    # -- resuming ---------------------------------------------------------------------------

    def _replay(self) -> None:
        """Rebuild where an interrupted instance stood from its records, to go on with it.

        Settled actions give back their outputs (a choreography's message ids are derived
        again); undos recorded as done are not run again; an action of the open generation
        with no record runs again under the same idempotency key.
        """
        progress = self.progress
        recorded = self.plan.action  # a planned action, or an item of a mapped step
        waits = {planned.key: planned for planned in self.plan.waits}
        for step in self.record.steps:
            action = recorded(step.key)
            if action is None:
                arrived = waits.get(step.key)
                if arrived is None:
                    continue
                if step.outcome is StepOutcome.SKIPPED:
                    progress.passed.add(arrived.key)
                elif step.outcome is StepOutcome.FAILED:  # timed out
                    if self.failure is None:
                        self.failure = StepFailed(
                            f"{arrived.wait!r} failed: {step.error}", step=step.key, attempts=0
                        )
                    progress.failing = arrived.before - 1
                elif arrived.is_sleep:
                    progress.fired.add(arrived.key)
                elif step.outcome is StepOutcome.COMPLETED:
                    self._keep(arrived, step.output)
                continue
            progress.settle(action, step.outcome, step.output)
            if step.outcome is StepOutcome.COMPLETED and self.publishing is not None:
                progress.replayed_ids(action, step.output, self.publishing.outputs)
            if step.outcome is StepOutcome.FAILED and self.failure is None:
                self.failure = _step_failed(action, step.attempts, step.error or "")
                progress.failing = action.generation
        done, retries, late = undo_progress(self.plan, self.record.steps)
        self.undos = UndoBook(done, retries)
        for action, attempt, output in late:
            if progress.outcomes.get(action.key) is False:
                self.undos.owe(action, attempt, output)
        parked = self._parked_notes()
        for action, error in parked:
            progress.parked.add(action.key)
            if self.failure is None:
                self.failure = _step_failed(action, 0, error)
            progress.failing = action.generation
        progress.advance()
        self.resumed = progress.generation
        if progress.deliveries:
            progress.delivered_what_was_published()
        if self.record.status is _COMPENSATING and self.failure is None:
            self.cancelling = True  # undoing with no failure: an operator cancelled it
            progress.failing = progress.last_started()
        progress.taken = set(progress.outcomes) | progress.parked

    def _parked_notes(self) -> list[tuple[PlannedAction, str]]:
        """Actions that failed for good after the pivot and never settled since (an
        operator's retry runs them again): each with the error of its latest failure."""
        latest: dict[str, tuple[PlannedAction, str]] = {}
        outcomes = self.progress.outcomes
        for step in self.record.steps:
            if step.outcome is not StepOutcome.NOTED or _PARKED not in step.key:
                continue
            action = self.plan.action(step.key.rpartition(_PARKED)[0])
            if action is not None and action.key not in outcomes:
                latest[action.key] = (action, step.error or "")
        return list(latest.values())

    def first_attempt(self, action: PlannedAction | None) -> int:
        """The number of the next attempt of `action` (of the current undo when None).

        After a recovery, an action that may have been in flight continues the numbering:
        the journal shows the re-run.
        """
        recoveries = self.record.recoveries
        if recoveries and (action is None or action.generation == self.resumed):
            return 1 + recoveries
        return 1

    def inputs(self, action: PlannedAction) -> list[Any]:
        return self.progress.inputs(action)

    # -- deciding -------------------------------------------------------------------------

    def next(self) -> tuple[PlannedAction, ...] | Undo | Wait | Suspend | None:
        """What to run now: actions (taken: run each to its end), an undo, WAIT (something
        is in flight), SUSPEND (stand at a wait for an outside message), or None (done).

        A step boundary: requests other processes left for the instance (a cancel, an
        early message) are carried out here first, when it is time to look for them."""
        if _monotonic() >= self.requests_due:
            self.take_requests()
        with self.lock:
            if self.recorder.lost or self.record.status in _FINISHED:
                return None
            progress = self.progress
            failing = progress.failing
            if failing is None:
                ready = progress.take_ready()
                if ready:
                    return ready
                if not progress.left and progress.awaiting() is not None:
                    return SUSPEND
                return WAIT
            if failing and not progress.settled_all(failing):
                # The failing generation runs to its end first (after a crash, what had no
                # record runs again under its key).
                return progress.take_ready(failing) or WAIT
            if progress.parked:
                # Past the point of no return nothing is undone: a human decides.
                self.park(_past_pivot(self.plan, sorted(progress.parked), self.failure))
                return None
            undos = self.undos
            if undos.current is not None:
                return WAIT
            if not undos.planned:
                undos.plan(self.plan, failing, progress.outcomes, progress.outputs, self.inputs,
                           progress.values)  # fmt: skip
            undo = undos.take()
            if undo is None:
                self.recorder.write(finish=self._undo_finish(), owes=self._still_owing())
            return undo

    def deliver(self, key: str, index: int, message_id: str) -> PlannedAction | None:
        """A choreography delivered input `index` of action `key`: the action, if it may run
        now (else it is held until its generation opens, or never). A mapped step (not one
        of its items) means: items of it may run now, hand them out with `next()`."""
        with self.lock:
            if self.recorder.lost or self.finished:
                return None
            return self.progress.deliver(key, index, message_id)

    # -- outside messages -------------------------------------------------------------------

    def suspend(self) -> bool:
        """Suspend at the wait the instance stands at: WAITING, its lease let go (no thread
        and no lease are held while it waits). False if there is nothing to wait for any
        more (its message came meanwhile, or a request came for it while it let go: it was
        claimed back): go on driving it."""
        with self.lock:
            planned = self.progress.awaiting()
            if planned is None or self.progress.left or self.recorder.lost:
                return False
            owner = self.record.owner
            if self.record.status is WorkflowStatus.WAITING:
                # Claimed while waiting (its message never came: a crash between claim and
                # arrival): let go of it again.
                self.recorder.write(release=True)
            else:
                key = f"{planned.key}:waiting"
                records: tuple[StepRecord, ...] = ()
                if not self.record.has_step(key):  # suspended again after a crash: once
                    entry = self.recorder.waiting(planned)  # with its timer, if it has one
                    records = (StepRecord(key, StepOutcome.NOTED, 0, None, None, entry),)
                self.recorder.write(records, status=WorkflowStatus.WAITING, release=True)
        return not self._claimed_back(owner)

    def _claimed_back(self, owner: str | None) -> bool:
        """Right after letting go: if a request came meanwhile (its requester found the
        instance still held, so nobody else looks for it), claim the instance back to carry
        it out. False if there was none, or someone else claimed it first."""
        if owner is None:
            return False
        batch = self.recorder.batch
        if batch is not None:
            batch.flush()  # the letting go is committed first: a request after it claims it
        if not pending(self.store, self):
            return False
        token = self.store.claim_run(self.workflow_id, owner, now=self.clock.now())
        if token is None:
            return False  # its requester (or a timer) took it: carried out there
        with self.lock:
            self.token = self.recorder.token = self.record.token = token
            self.record.owner = owner
            self.requests_due = 0.0
        return True

    def take_requests(self) -> None:
        """Carry out the requests left for this instance, if any (see `_requests`)."""
        found = pending(self.store, self)
        if found:
            carry_out(self, found)

    def received(self, planned: PlannedWait) -> bool:
        with self.lock:
            return self.progress.arrived(planned) or self.record.has_step(planned.key)

    def drop_requests(self, upto: int) -> None:
        self.recorder.drop_requests(upto)

    def arrive(self, planned: PlannedWait, message: Message, *, timed_out: bool = False) -> bool:
        """An outside message for `planned` arrived: record it (the instance wakes if it was
        waiting for it; a message that comes early is kept for its wait). False if an equal
        message was received already (a duplicate: nothing happens). `timed_out`: it is the
        wait's timeout outcome, built by the engine when the timer fired."""
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            progress = self.progress
            if progress.arrived(planned) or (timed_out and self.recorder.lost):
                return False
            rows = self.recorder.arrival(planned, message, timed_out=timed_out)
            if publishing is not None:
                events = (publishing.arrived(planned, message),)
                rows = self.recorder.published(rows, events, "wait")
                slot = planned.slot_of(message)
                assert slot is not None
                progress.ids[slot] = events[0].message_id
            skipped = progress.arrive(planned, message)
            records = (
                StepRecord(planned.key, StepOutcome.COMPLETED, 0, message, None, rows),
                *(self.recorder.skipped(a, progress.missing(a)) for a in skipped),
            )
            waking = self.record.status is WorkflowStatus.WAITING
            self.recorder.write(records, status=_RUNNING if waking else None, events=events)
        if events:
            assert publishing is not None
            publishing.committed(events)
        return True

    def fire(self, planned: PlannedWait) -> bool:
        """`planned`'s timer came due: a sleep ends (the instance goes on), a wait times
        out (it fails like a step: what was done is undone, unless it names a timeout
        outcome: it then completes with that). False if there is nothing to fire any more
        (its message came, or it fired already)."""
        outcome = planned.wait.on_timeout
        if outcome is not None:
            with self.lock:
                if self.record.has_step(planned.key):
                    return False
            return self.arrive(planned, outcome(), timed_out=True)
        with self.lock:
            progress = self.progress
            if self.recorder.lost or progress.arrived(planned) or self.record.has_step(planned.key):
                return False
            waking = self.record.status is WorkflowStatus.WAITING
            if planned.is_sleep:
                skipped = progress.fire(planned)
                records = (
                    StepRecord(
                        planned.key, StepOutcome.COMPLETED, 0, None, None,
                        self.recorder.timer(planned),
                    ),
                    *(self.recorder.skipped(a, progress.missing(a)) for a in skipped),
                )  # fmt: skip
                self.recorder.write(records, status=_RUNNING if waking else None)
                return True
            names = " or ".join(kind.__name__ for kind in planned.types)
            text = f"WaitTimeout: no {names} came within {planned.due_in:g}s"
            record = StepRecord(
                planned.key, StepOutcome.FAILED, 0, None, text, self.recorder.timer(planned, text)
            )
            self.recorder.write((record,), status=_COMPENSATING)
            if self.failure is None:
                self.failure = StepFailed(
                    f"{planned.wait!r} failed: {text}", step=planned.key, attempts=0
                )
            if progress.failing is None:
                progress.failing = planned.before - 1
            return True

    def _keep(self, planned: PlannedWait, message: Message) -> None:
        """Replaying: an outside message that arrived (its id derived again)."""
        slot = planned.slot_of(message)
        if slot is None:
            return
        self.progress.values[slot] = message
        if self.publishing is not None:
            self.progress.ids[slot] = self.publishing.arrived(planned, message).message_id

    # -- forward facts ----------------------------------------------------------------------

    def completed(self, action: PlannedAction, output: Any, attempts: Attempts) -> None:
        """Record a completed action; its outputs become inputs of later generations.

        Actions it leaves without an input (a business outcome took another branch) are
        recorded as skipped in the same commit, and if nothing is left to run, the end.
        """
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            handled: tuple[tuple[str, str], ...] = ()
            progress = self.progress
            if publishing is not None:
                causes = progress.causes(action)
                events = publishing.outputs(action, output, causes)
                handled = publishing.handled(action, causes)
                rows = self.recorder.published(rows, events, action.step.action.participant)
            records: tuple[StepRecord, ...] = (
                _new_step((action.key, _OUTCOME_COMPLETED, attempts.attempt, output, None, rows)),
            )
            held = self._late_held.pop(action.key, None) if self._late_held else None
            if held:
                late = self.recorder.late
                records += tuple(late(action, n, out, _LEFT_ALONE) for n, out in held)
            scheduled = attempts.scheduled
            starts = False
            if scheduled:  # committed with the step's record (a failed attempt's never are)
                now = self.clock.now()
                records += scheduled_records(action, scheduled, self.workflow_id, now)
                starts = any(s.workflow_id is not None for s in scheduled)
            # Settled before the write: what it leaves skipped is written with it (a lost
            # write loses this copy of the instance altogether, so nothing reads it after).
            if events:
                progress.published(action, output, events)
            progress.settle(action, StepOutcome.COMPLETED, output)
            skipped = progress.open_next()
            if skipped:
                records += tuple(self.recorder.skipped(a, progress.missing(a)) for a in skipped)
            finish = None
            if progress.completed:
                finish = Finish(_COMPLETED, progress.final_output())
            owes = self._still_owing() if finish is not None else None
            if starts and finish is not None:
                owes = True  # a start to make when due: in the owed-work index till then
            self.recorder.write(records, finish=finish, owes=owes, events=events, handled=handled)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def failed(self, action: PlannedAction, error: BaseException, attempts: Attempts) -> None:
        """Record an action that failed after its attempts; the instance will compensate."""
        text = describe(error)
        if self.plan.past_pivot(action) and self.past_point_of_no_return:
            self._failed_past_pivot(action, error, text, attempts)
            return
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            handled: tuple[tuple[str, str], ...] = ()
            if publishing is not None:
                causes = self.progress.causes(action)
                events = publishing.failure(action, text, attempts.attempt, attempts.causation)
                handled = publishing.handled(action, causes)
                rows = self.recorder.published(rows, events, action.step.action.participant)
            held = self._late_held.pop(action.key, []) if self._late_held else []
            late = self.recorder.late
            records = (
                StepRecord(action.key, StepOutcome.FAILED, attempts.attempt, None, text, rows),
                *(
                    late(action, n, out, _UNDONE if action.undoes(out) else _NOTHING_TO_UNDO)
                    for n, out in held
                ),
            )
            self._fail(action, records, error, text, events, handled)
            for attempt, output in held:
                self.undos.owe(action, attempt, output)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def _failed_past_pivot(
        self, action: PlannedAction, error: BaseException, text: str, attempts: Attempts
    ) -> None:
        """Record an action that failed for good after the pivot: it is never undone (nor is
        anything before it), so it stays unsettled, to run again when an operator retries;
        its failure is journaled, and the instance parks once its generation settled."""
        with self.lock:
            tries = sum(1 for s in self.record.steps if s.key.startswith(action.key + _PARKED))
            held = self._late_held.pop(action.key, []) if self._late_held else []
            late = self.recorder.late
            records = (
                StepRecord(
                    f"{action.key}{_PARKED}{tries + 1}",
                    StepOutcome.NOTED,
                    attempts.attempt,
                    None,
                    text,
                    tuple(attempts.rows),
                ),
                *(late(action, n, out, _NOTHING_TO_UNDO) for n, out in held),
            )
            self.recorder.write(records)
            self.progress.park(action)
            if self.failure is None:
                failure = _step_failed(action, attempts.attempt, text)
                failure.__cause__ = error
                self.failure = failure

    def retry_forward(self) -> None:
        """An operator retries a run parked after the pivot: its failed actions run again
        under their keys (a run parked for another reason goes on as it was)."""
        with self.lock:
            if self.progress.parked:
                self.progress.unpark()
                self.failure = None

    @property
    def past_point_of_no_return(self) -> bool:
        """The pivot completed: nothing of this instance can be undone any more."""
        pivot = self.plan.pivot
        return pivot is not None and self.progress.outcomes.get(pivot.key) is True

    def refuse(self, action: PlannedAction, error: BaseException, detail: str) -> bool:
        """Fail an action that never started (a join whose inputs never came); False if it
        started meanwhile."""
        text = describe(error)
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            if action.key in self.progress.taken or self.finished or self.recorder.lost:
                return False
            self.progress.taken.add(action.key)
            rows = self.recorder.refusal(action, text, detail)
            if publishing is not None:
                events = publishing.failure(action, text, 0, None)
                rows = self.recorder.published(rows, events, action.step.action.participant)
            record = StepRecord(action.key, StepOutcome.FAILED, 0, None, text, rows)
            self._fail(action, (record,), error, text, events, ())
        if events:
            assert publishing is not None
            publishing.committed(events)
        return True

    def _fail(
        self,
        action: PlannedAction,
        records: tuple[StepRecord, ...],
        error: BaseException,
        text: str,
        events: tuple[Envelope[Message], ...],
        handled: tuple[tuple[str, str], ...],
    ) -> None:
        """Write an action's failure (the first one moves the instance to COMPENSATING)."""
        moving = self.record.status is _RUNNING
        self.recorder.write(
            records, status=_COMPENSATING if moving else None, events=events, handled=handled
        )
        self.progress.settle(action, StepOutcome.FAILED, None)
        if self.failure is None:
            failure = _step_failed(action, records[0].attempts, text)
            failure.__cause__ = error
            self.failure = failure
        if self.progress.failing is None:
            self.progress.failing = action.generation

    # -- undoing ----------------------------------------------------------------------------

    def _undo_finish(self) -> Finish:
        if self.undos.error is not None:
            status = WorkflowStatus.COMPENSATION_FAILED  # a late undo failed meanwhile
        else:
            status = WorkflowStatus.CANCELLED if self.cancelling else WorkflowStatus.COMPENSATED
        return Finish(status, None, self.failure, self.undos.error)

    def undone(self, undo: Undo, output: Any, attempts: Attempts) -> None:
        """Record a compensation that succeeded (its output is kept with the record)."""
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            if publishing is not None:
                events = publishing.undone(undo, output)
                rows = self.recorder.published(rows, events, undo.action.step.action.participant)
            record = StepRecord(
                undo.key, StepOutcome.COMPENSATED, attempts.attempt, output, None, rows
            )
            if self.finished:  # a late result's undo, owed after the end
                self.undos.settled(undo)
                self.recorder.write((record,), owes=bool(self._still_owing()), events=events)
            else:
                last = self.undos.settled(undo)
                finish = self._undo_finish() if last else None
                owes = self._still_owing() if finish is not None else None
                self.recorder.write((record,), finish=finish, owes=owes, events=events)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def undo_failed(self, undo: Undo, error: BaseException, attempts: Attempts) -> None:
        """Record a failed compensation; stop undoing (never undo a cause before its effect)."""
        text = describe(error)
        with self.lock:
            compensation = undo.action.compensation
            assert compensation is not None
            what = f"a late result of {undo.action.key} (attempt {undo.late})" if undo.late else (
                undo.action.key
            )  # fmt: skip
            failure = CompensationFailed(
                f"compensation {compensation.qualname} of {what} failed after "
                f"{attempts.attempt} attempt(s): {text}; still applied: "
                f"{', '.join(self.undos.still_applied(undo))}",
                step=undo.action.key,
                compensation=compensation.qualname,
                attempts=attempts.attempt,
            )
            failure.__cause__ = error
            record = StepRecord(
                undo.key,
                StepOutcome.COMPENSATION_FAILED,
                attempts.attempt,
                None,
                text,
                tuple(attempts.rows),
            )
            if self.undos.error is None:
                self.undos.error = failure
            if self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                self.recorder.write((record,))
            else:
                finish = Finish(
                    WorkflowStatus.COMPENSATION_FAILED, None, self.failure, self.undos.error
                )
                self.recorder.write((record,), finish=finish, owes=False)
            self.undos.stop()

    def check_schedule(self, message: Message, workflow_id: str | None) -> None:
        """`ctx.schedule`'s check: `UsageError` unless this flow can take `message`."""
        check_scheduled(self.plan, message, workflow_id)

    def _still_owing(self) -> bool | None:
        """True while something may still be owed after the end (an undo of a late result,
        an abandoned attempt whose result may come back, or a scheduled start not made
        yet); None when nothing is."""
        owing = (
            self.abandoned > 0
            or bool(self.undos.owed_after_end(self.plan, self.inputs))
            or pending_starts(self.record)
        )
        return True if owing else None

    def _settled_owing(self) -> bool | None:
        """After a late result that owes nothing: an ended instance stops owing once it was
        the last thing outstanding (False clears the owed flag; None leaves it alone)."""
        if self.finished and not self._still_owing():
            return False
        return None

    def abandon(self) -> None:
        """A forward attempt was abandoned (timed out, or its wait interrupted): it still
        runs, and may return late, so an end meanwhile keeps owing."""
        with self.lock:
            self.abandoned += 1

    def owed_after_end(self) -> list[Undo]:
        """Undos of late results still owed once the instance ended (run them, newest first).

        A COMPENSATION_FAILED instance owes them to the operator's `retry()` instead.
        """
        with self.lock:
            if not self.finished or self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                return []
            owed = self.undos.owed_after_end(self.plan, self.inputs)
            if (
                not owed
                and self.record.owed
                and not self.abandoned
                and not self.recorder.lost
                and not pending_starts(self.record)
            ):
                # It owed only what an abandoned attempt might return, and that attempt died
                # with its process: nothing can come back now, so stop owing.
                self.recorder.write(owes=False)
            return owed

    # -- late results -----------------------------------------------------------------------

    def late(
        self,
        action: PlannedAction,
        attempt: int,
        ok: bool,
        value: Any,
        *,
        valid: bool,
        returned: bool = True,
    ) -> Undo | None:
        """A timed-out attempt of `action` returned after all (or failed): decide what it owes.

        Returns an undo for the caller to run now, on its own thread, when the undo is owed
        after the instance ended. `returned`: an abandoned attempt came back (not a late
        result injected with its timeout).
        """
        recorder = self.recorder
        with self.lock:
            if returned and self.abandoned:
                self.abandoned -= 1
            if recorder.lost:
                return None
            outcome = self.progress.outcomes.get(action.key, _UNSETTLED)
            if not ok or not valid:
                error = describe(value) if not ok else (
                    f"OutputTypeError: returned {type(value).__name__}, not its output"
                )  # fmt: skip
                record = recorder.late(action, attempt, None, "nothing to undo", error)
                recorder.write((record,), owes=self._settled_owing())
                return None
            if outcome is _UNSETTLED and action.key not in self.progress.parked:
                self._late_held.setdefault(action.key, []).append((attempt, value))
                return None
            # Failed past the pivot (parked, unsettled): nothing after the pivot is undone.
            if outcome is True or not action.undoes(value):
                detail = _LEFT_ALONE if outcome is True else _NOTHING_TO_UNDO
                recorder.write(
                    (recorder.late(action, attempt, value, detail),), owes=self._settled_owing()
                )
                return None
            undo = Undo(action, action.undo_message(value, self.inputs(action)), attempt)
            record = recorder.late(action, attempt, value, _UNDONE)
            self.undos.owe(action, attempt, value)
            if self.finished:
                if self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                    recorder.write((record,))  # the operator's retry() undoes it with the rest
                    return None
                recorder.write((record,), owes=True)  # durable first: a crash never loses it
                return undo
            recorder.write((record,))
            if self.undos.planned:
                self.undos.insert(undo)
            # else: planned with the rest once the failing generation settled
            return None

    # -- notes, parking, operators ------------------------------------------------------------

    def note(self, key: str, rows: Rows) -> None:
        """Journal something that is no saga fact (a free-form subscriber's failure)."""
        with self.lock:
            if self.recorder.lost or self.record.has_step(key):
                return
            self.recorder.write((StepRecord(key, StepOutcome.NOTED, 0, None, None, rows),))

    def park(self, reason: str) -> None:
        """Stop for a human: PARKED, with `reason` (a dead letter, a failure past the pivot)."""
        with self.lock:
            self.recorder.write(
                finish=Finish(
                    WorkflowStatus.PARKED,
                    None,
                    self.failure,
                    self.undos.error,
                    parked_reason=reason,
                )
            )

    def request_cancel(self) -> bool:
        """An operator cancels this instance while it runs: stop at the next step boundary
        and undo. False if it cannot be cancelled now (it ended, it is undoing already, or
        its pivot completed)."""
        with self.lock:
            if (
                self.recorder.lost
                or self.record.status is not _RUNNING
                or self.cancelling
                or self.past_point_of_no_return
            ):
                return False
            self.cancel()
            return True

    def cancel(self) -> None:
        """Stop at the next boundary and undo what was done; the instance ends CANCELLED."""
        with self.lock:
            self.cancelling = True
            self.progress.failing = self.progress.last_started()
            if self.record.status is not _COMPENSATING:
                self.recorder.write(status=_COMPENSATING)

    # -- views ------------------------------------------------------------------------------

    def undelivered(self) -> list[tuple[PlannedAction, list[int]]]:
        """Actions of the open generation waiting for inputs: which input indexes are missing."""
        with self.lock:
            return [] if self.finished else self.progress.undelivered()

    def waiting(self) -> dict[str, list[int]]:
        """Joins holding some of their inputs: action key -> indexes of inputs still to come."""
        with self.lock:
            return {} if self.finished else self.progress.waiting()

    def __repr__(self) -> str:
        generation = self.progress.generation
        return f"<Saga {self.workflow_id} {self.record.status.name} generation {generation}>"


def _past_pivot(plan: FlowPlan, parked: list[str], failure: StepFailed | None) -> str:
    pivot = plan.pivot
    assert pivot is not None
    why = f": {failure}" if failure is not None else ""
    return (
        f"{', '.join(parked)} failed after the pivot {pivot.key} (the point of no return: "
        f"nothing is undone){why}; fix the cause and retry() the run to go on"
    )


def _step_failed(action: PlannedAction, attempts: int, text: str) -> StepFailed:
    return StepFailed(
        f"step {action.key} failed after {attempts} attempt(s): {text}",
        step=action.key,
        attempts=attempts,
    )
