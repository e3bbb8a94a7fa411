"""What comes to one saga from outside its steps: messages, timers, and waiting for them.

A flow that stands at a wait is suspended (WAITING, its lease let go: no thread and no
lease are held while it waits); an outside message for it, or its timer, wakes it. Both
runners hand those to the saga, which records them here under its lock, once for both:

- an outside message is recorded (a message that comes early is kept for its wait; an
  equal one received already is a duplicate: nothing happens); under a choreography it goes
  out in an envelope whose id is derived from it, in the same commit;
- a sleep's timer ends the sleep; a wait's timer fails it like a step (what was done is
  undone), unless the wait names a timeout outcome: then that outcome arrives instead;
- right after letting an instance go, a request left for it meanwhile (its requester
  found it still held, so nobody else looks) claims it back to carry it out.
"""

from __future__ import annotations

from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._plan import PlannedWait
from coordination.engine._requests import pending
from coordination.engine._saga_state import SagaState
from coordination.errors import StepFailed
from coordination.stores._records import StepOutcome, StepRecord

__all__ = ["Arrivals"]

_RUNNING = WorkflowStatus.RUNNING
_WAITING = WorkflowStatus.WAITING


class Arrivals:
    """Records what comes to one saga from outside (the saga's own state holds it)."""

    __slots__ = ("saga",)

    def __init__(self, saga: SagaState) -> None:
        self.saga = saga

    def suspend(self) -> bool:
        """Suspend at the wait the instance stands at: WAITING, its lease let go. False if
        there is nothing to wait for any more (its message came meanwhile, or a request
        came for it while it let go: it was claimed back): go on driving it."""
        saga = self.saga
        recorder = saga.recorder
        with saga.lock:
            planned = saga.progress.awaiting()
            if planned is None or saga.progress.left or recorder.lost:
                return False
            owner = saga.record.owner
            if saga.record.status is _WAITING:
                # Claimed while waiting (its message never came: a crash between claim and
                # arrival): let go of it again.
                recorder.write(release=True)
            else:
                key = f"{planned.key}:waiting"
                records: tuple[StepRecord, ...] = ()
                if not saga.record.has_step(key):  # suspended again after a crash: once
                    entry = recorder.waiting(planned)  # with its timer, if it has one
                    records = (StepRecord(key, StepOutcome.NOTED, 0, None, None, entry),)
                recorder.write(records, status=_WAITING, release=True)
        return not self._claimed_back(owner)

    def _claimed_back(self, owner: str | None) -> bool:
        """Right after letting go: if a request came meanwhile, claim the instance back to
        carry it out. False if there was none, or someone else claimed it first."""
        if owner is None:
            return False
        saga = self.saga
        batch = saga.recorder.batch
        if batch is not None:
            batch.flush()  # the letting go is committed first: a request after it claims it
        if not pending(saga.store, saga):
            return False
        token = saga.store.claim_run(saga.workflow_id, owner, now=saga.clock.now())
        if token is None:
            return False  # its requester (or a timer) took it: carried out there
        with saga.lock:
            saga.token = saga.recorder.token = saga.record.token = token
            saga.record.owner = owner
            saga.requests_due = 0.0
        return True

    def arrive(self, planned: PlannedWait, message: Message, *, timed_out: bool = False) -> bool:
        """An outside message for `planned` arrived: record it. False if an equal message
        was received already. `timed_out`: it is the wait's timeout outcome, built by the
        engine when the timer fired."""
        saga = self.saga
        recorder = saga.recorder
        publishing = saga.publishing
        events: tuple[Envelope[Message], ...] = ()
        with saga.lock:
            progress = saga.progress
            if progress.arrived(planned) or (timed_out and recorder.lost):
                return False
            rows = recorder.arrival(planned, message, timed_out=timed_out)
            if publishing is not None:
                events = (publishing.arrived(planned, message),)
                rows = recorder.published(rows, events, "wait")
                slot = planned.slot_of(message)
                assert slot is not None
                progress.ids[slot] = events[0].message_id
            skipped = progress.arrive(planned, message)
            records = (
                StepRecord(planned.key, StepOutcome.COMPLETED, 0, message, None, rows),
                *(recorder.skipped(a, progress.missing(a)) for a in skipped),
            )
            waking = saga.record.status is _WAITING
            recorder.write(records, status=_RUNNING if waking else None, events=events)
        if events:
            assert publishing is not None
            publishing.committed(events)
        return True

    def fire(self, planned: PlannedWait) -> bool:
        """`planned`'s timer came due: a sleep ends, a wait times out (or arrives at its
        timeout outcome). False if there is nothing to fire any more (its message came, or
        it fired already)."""
        saga = self.saga
        recorder = saga.recorder
        outcome = planned.wait.on_timeout
        if outcome is not None:
            with saga.lock:
                if saga.record.has_step(planned.key):
                    return False
            return self.arrive(planned, outcome(), timed_out=True)
        with saga.lock:
            progress = saga.progress
            if recorder.lost or progress.arrived(planned) or saga.record.has_step(planned.key):
                return False
            waking = saga.record.status is _WAITING
            if planned.is_sleep:
                skipped = progress.fire(planned)
                records = (
                    StepRecord(
                        planned.key, StepOutcome.COMPLETED, 0, None, None, recorder.timer(planned)
                    ),
                    *(recorder.skipped(a, progress.missing(a)) for a in skipped),
                )
                recorder.write(records, status=_RUNNING if waking else None)
                return True
            names = " or ".join(kind.__name__ for kind in planned.types)
            text = f"WaitTimeout: no {names} came within {planned.due_in:g}s"
            record = StepRecord(
                planned.key, StepOutcome.FAILED, 0, None, text, recorder.timer(planned, text)
            )
            recorder.write((record,), status=WorkflowStatus.COMPENSATING)
            if saga.failure is None:
                saga.failure = StepFailed(
                    f"{planned.wait!r} failed: {text}", step=planned.key, attempts=0
                )
            if progress.failing is None:
                progress.failing = planned.before - 1
            return True
