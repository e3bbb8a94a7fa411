"""The saga of one flow instance: the one place that decides, for both runners, what runs next.

A `Saga` holds an instance's forward state (which actions of which generation settled and
how, what they produced) and answers `next()`: run these actions, run this undo, wait, or
done. Its `Recorder` writes every fact (one fenced `Write` each, status moves checked
against the lifecycle table); its `UndoBook` keeps what is owed an undo. Four collaborators
write what is not a forward fact: `replay` rebuilds a stored instance, `Arrivals` records
outside messages and timers, `Failures` records failed actions, `UndoFacts` records undos
and late results. The orchestrator's
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
from typing import Any

from coordination._clock import Clock
from coordination._context import Scheduled
from coordination._journal import Rows
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._arrivals import Arrivals
from coordination.engine._attempts import Attempts
from coordination.engine._failures import Failures
from coordination.engine._observers import Observer
from coordination.engine._plan import FlowPlan, PlannedAction, PlannedWait
from coordination.engine._progress import Progress
from coordination.engine._publishing import Publishing
from coordination.engine._recorder import Recorder
from coordination.engine._replay import replay
from coordination.engine._requests import carry_out, first_look, pending
from coordination.engine._schedules import check_scheduled, scheduled_records
from coordination.engine._undo import Undo, UndoBook
from coordination.engine._undo_facts import LEFT_ALONE, UndoFacts
from coordination.errors import CompensationFailed, StepFailed
from coordination.stores._records import Finish, RunRecord, StepOutcome, StepRecord
from coordination.stores._store import Store

__all__ = ["SUSPEND", "WAIT", "Saga", "Suspend", "Wait"]

_RUNNING = WorkflowStatus.RUNNING
_COMPENSATING = WorkflowStatus.COMPENSATING
_COMPLETED = WorkflowStatus.COMPLETED
_FINISHED = frozenset(status for status in WorkflowStatus if status.finished)
_OUTCOME_COMPLETED = StepOutcome.COMPLETED
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


class Saga:
    """One flow instance: its forward state and the decisions both runners carry out."""

    __slots__ = (
        "abandoned",
        "cancelling",
        "clock",
        "failure",
        "late_held",
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
        self.late_held: dict[str, list[tuple[int, Any]]] = {}
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
            self.failure, self.undos, self.resumed, self.cancelling = replay(
                plan, record, self.progress, publishing
            )

    # The collaborators hold nothing but the saga: one is made when asked for, so an
    # instance that never waits, fails or undoes carries none.
    @property
    def arrivals(self) -> Arrivals:
        """Records outside messages and timers for this instance."""
        return Arrivals(self)

    @property
    def failures(self) -> Failures:
        """Records this instance's failed actions."""
        return Failures(self)

    @property
    def undo_facts(self) -> UndoFacts:
        """Records this instance's undos, late results and what it still owes."""
        return UndoFacts(self)

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
                facts = self.undo_facts
                self.recorder.write(finish=facts.finish(), owes=facts.still_owing())
            return undo

    def deliver(self, key: str, index: int, message_id: str) -> PlannedAction | None:
        """A choreography delivered input `index` of action `key`: the action, if it may run
        now (else it is held until its generation opens, or never). A mapped step (not one
        of its items) means: items of it may run now, hand them out with `next()`."""
        with self.lock:
            if self.recorder.lost or self.record.status in _FINISHED:
                return None
            deliveries = self.progress.deliveries
            assert deliveries is not None, "an orchestrated instance is never delivered to"
            return deliveries.deliver(key, index, message_id)

    # -- outside messages (recorded by `Arrivals`) ------------------------------------------

    def suspend(self) -> bool:
        """Suspend at the wait the instance stands at (see `Arrivals.suspend`)."""
        return self.arrivals.suspend()

    def arrive(self, planned: PlannedWait, message: Message, *, timed_out: bool = False) -> bool:
        """An outside message for `planned` arrived (see `Arrivals.arrive`)."""
        return self.arrivals.arrive(planned, message, timed_out=timed_out)

    def fire(self, planned: PlannedWait) -> bool:
        """`planned`'s timer came due (see `Arrivals.fire`)."""
        return self.arrivals.fire(planned)

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

    # -- forward facts ----------------------------------------------------------------------

    def completed(
        self,
        action: PlannedAction,
        output: Any,
        attempt: int,
        rows: Rows,
        scheduled: list[Scheduled] | None = None,
    ) -> None:
        """Record a completed action: its `attempt` succeeded, journaled with `rows` (its
        attempts'), having `scheduled` these; its outputs become inputs of later generations.

        Actions it leaves without an input (a business outcome took another branch) are
        recorded as skipped in the same commit, and if nothing is left to run, the end.
        """
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            handled: tuple[tuple[str, str], ...] = ()
            progress = self.progress
            if publishing is not None:
                causes = progress.causes(action)
                events = publishing.outputs(action, output, causes)
                handled = publishing.handled(action, causes)
                rows = self.recorder.published(rows, events, action.step.action.participant)
            records: tuple[StepRecord, ...] = (
                _new_step((action.key, _OUTCOME_COMPLETED, attempt, output, None, rows)),
            )
            held = self.late_held.pop(action.key, None) if self.late_held else None
            if held:
                late = self.recorder.late
                records += tuple(late(action, n, out, LEFT_ALONE) for n, out in held)
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
            owes = self.undo_facts.still_owing() if finish is not None else None
            if starts and finish is not None:
                owes = True  # a start to make when due: in the owed-work index till then
            self.recorder.write(records, finish=finish, owes=owes, events=events, handled=handled)
        if events:
            assert publishing is not None
            publishing.committed(events)

    def failed(self, action: PlannedAction, error: BaseException, attempts: Attempts) -> None:
        """Record an action that failed after its attempts (see `Failures.failed`)."""
        self.failures.failed(action, error, attempts)

    def refuse(self, action: PlannedAction, error: BaseException, detail: str) -> bool:
        """Fail an action that never started (see `Failures.refuse`)."""
        return self.failures.refuse(action, error, detail)

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

    # -- undoing (recorded by `UndoFacts`) --------------------------------------------------

    def owed_after_end(self) -> list[Undo]:
        """Undos of late results still owed once the instance ended (run them, newest first)."""
        return self.undo_facts.owed_after_end()

    def check_schedule(self, message: Message, workflow_id: str | None) -> None:
        """`ctx.schedule`'s check: `UsageError` unless this flow can take `message`."""
        check_scheduled(self.plan, message, workflow_id)

    def abandon(self) -> None:
        """A forward attempt was abandoned (timed out, or its wait interrupted): it still
        runs, and may return late, so an end meanwhile keeps owing."""
        with self.lock:
            self.abandoned += 1

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
            deliveries = self.progress.deliveries
            return [] if self.finished or deliveries is None else deliveries.undelivered()

    def waiting(self) -> dict[str, list[int]]:
        """Joins holding some of their inputs: action key -> indexes of inputs still to come."""
        with self.lock:
            deliveries = self.progress.deliveries
            return {} if self.finished or deliveries is None else deliveries.waiting()

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
