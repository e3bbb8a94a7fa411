"""The saga of one flow instance: the one place that decides, for both runners, what runs next.

A `Saga` holds an instance's state (which actions of which generation settled and how, what
they produced, what is owed an undo) and answers `next()`: run these actions, run this undo,
wait, or done. It records every outcome through the store (one fenced `Write` per fact) and
checks every status move against the lifecycle table. The orchestrator's drivers and the
choreography's handlers only carry its answers out, so "same participants, same outcome"
holds by construction:

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
from collections.abc import Sequence
from typing import Any, Protocol

from coordination._clock import Clock
from coordination._journal import EntryKind, Rows, row
from coordination._lifecycle import check_move
from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.engine._attempts import Attempts, describe
from coordination.engine._plan import FlowPlan, PlannedAction
from coordination.engine._undo import Undo, plan_undos, undo_key
from coordination.errors import CompensationFailed, LeaseLost, StepFailed, StoreError
from coordination.stores._records import Finish, RunRecord, StepOutcome, StepRecord, Write
from coordination.stores._store import Store

__all__ = ["WAIT", "Publishing", "Saga", "Wait"]

_RUNNING = WorkflowStatus.RUNNING
_COMPENSATING = WorkflowStatus.COMPENSATING
_LATE = EntryKind.LATE_RESULT
_PUBLISHED = EntryKind.PUBLISHED


class Wait:
    """`next()`'s answer when nothing can start now (an action or undo is in flight)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WAIT"


WAIT = Wait()


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

    def handled(
        self, action: PlannedAction, causes: tuple[str | None, ...]
    ) -> tuple[tuple[str, str], ...]: ...

    def committed(self, envelopes: Sequence[Envelope[Message]]) -> None: ...


class Saga:
    """One flow instance: its state, its decisions, and the writes that record them."""

    __slots__ = (
        "_late_held",
        "_left",
        "_owed",
        "cancelling",
        "clock",
        "compensation_error",
        "delivered",
        "deliveries",
        "done_undos",
        "failing",
        "failure",
        "generation",
        "ids",
        "lock",
        "lost",
        "opened_at",
        "outcomes",
        "outputs",
        "plan",
        "publishing",
        "record",
        "resumed",
        "store",
        "taken",
        "token",
        "undo_queue",
        "undo_retries",
        "undoing",
        "values",
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
    ) -> None:
        self.plan = plan
        self.record = record
        self.token = token
        self.store = store
        self.clock = clock
        self.workflow_id = record.workflow_id
        self.publishing = publishing
        #: Under a choreography, an action runs once its inputs were delivered to it, not
        #: merely produced: deliveries are the choreography's trigger.
        self.deliveries = publishing is not None
        self.lock = threading.RLock()
        self.values: list[Any] = [None] * len(plan.slot_types)
        self.values[0] = record.start
        # A choreography's only (an orchestrated run makes neither: one container less per
        # run for every garbage collection to walk).
        self.delivered: set[tuple[str, int]] = set() if self.deliveries else _NONE_DELIVERED
        #: The message id of each slot's envelope (a choreography's inputs are checked by it).
        self.ids: list[str | None] = [None] * len(plan.slot_types) if self.deliveries else []
        if self.deliveries:
            self.ids[0] = start_id
        self.generation = 1
        #: How many actions of the open generation have not settled yet.
        self._left = len(plan.generations[0]) if plan.generations else 0
        #: When the open generation opened (on the clock's monotonic scale).
        self.opened_at = clock.monotonic()
        #: How each settled action ended: True completed, False failed, None skipped.
        self.outcomes: dict[str, bool | None] = {}
        self.outputs: dict[str, Any] = {}
        #: Actions handed out to run (settled or in flight).
        self.taken: set[str] = set()
        self.failure: StepFailed | None = None
        #: The generation whose failure (or cancel) started the undo.
        self.failing: int | None = None
        self.compensation_error: CompensationFailed | None = None
        self.cancelling = False
        self.undo_queue: list[Undo] | None = None
        self.undoing: Undo | None = None
        #: Base keys of undos recorded as done, and how often each failed for good.
        self.done_undos: set[str] = set()
        self.undo_retries: dict[str, int] = {}
        #: Late results `(attempt, output)` per action: held until it settles, kept once it
        #: failed (its undo plan includes them).
        self._late_held: dict[str, list[tuple[int, Any]]] = {}
        self._owed: dict[str, list[tuple[int, Any]]] = {}
        self.lost = False
        #: The generation open when the instance was resumed (its actions may have been in
        #: flight: their attempt numbers continue).
        self.resumed: int | None = None
        if record.has_any_step() or record.status is not _RUNNING:
            self._replay()

    @property
    def status(self) -> WorkflowStatus:
        """Where the instance stands (kept on its record, so a view read at any time shows it)."""
        return self.record.status

    @property
    def finished(self) -> bool:
        return self.record.status in _FINISHED

    # -- resuming ---------------------------------------------------------------------------

    def _replay(self) -> None:
        """Rebuild where an interrupted instance stood from its records, to go on with it.

        Settled actions give back their outputs (a choreography's message ids are derived
        again); undos recorded as done are not run again; an action of the open generation
        with no record runs again under the same idempotency key.
        """
        by_key = self.plan.by_key
        late_records: list[tuple[PlannedAction, int, Any]] = []
        for step in self.record.steps:
            action = by_key.get(step.key)
            if action is not None:
                self._settle(action, step.outcome, step.output, replaying=True)
                if step.outcome is StepOutcome.FAILED and self.failure is None:
                    self.failure = _step_failed(action, step.attempts, step.error or "")
                    self.failing = action.generation
                continue
            base, _, retry = step.key.partition(":retry")
            if base.endswith(":undo"):
                if step.outcome is StepOutcome.COMPENSATED:
                    self.done_undos.add(base)
                elif step.outcome is StepOutcome.COMPENSATION_FAILED:
                    self.undo_retries[base] = max(
                        self.undo_retries.get(base, 0), int(retry or 0) + 1
                    )
                continue
            name, _, late = step.key.rpartition(":late")
            action = by_key.get(name)
            is_late = step.outcome is StepOutcome.LATE and late.isdigit()
            if action is not None and is_late and step.output is not None:
                late_records.append((action, int(late), step.output))
        for action, attempt, output in late_records:
            if self.outcomes.get(action.key) is False:
                self._owed.setdefault(action.key, []).append((attempt, output))
        self._advance()
        self.resumed = self.generation
        if self.deliveries:
            # What was produced before the interruption was published then: its deliveries
            # happened or never will (that cascade is gone). Recovery delivers it again.
            for action in self.plan.actions:
                for index, slot in enumerate(action.input_slots):
                    if self.ids[slot] is not None:
                        self.delivered.add((action.key, index))
        if self.record.status is _COMPENSATING and self.failure is None:
            self.cancelling = True  # undoing with no failure: an operator cancelled it
            self.failing = self._last_started_generation()
        self.taken = set(self.outcomes)

    def _advance(self) -> None:
        """Open the next generation while the current one settled and nothing failed."""
        generations = self.plan.generations
        outcomes = self.outcomes
        while self.generation <= len(generations):
            left = sum(1 for a in generations[self.generation - 1] if a.key not in outcomes)
            self._left = left
            if left or self.failure is not None or self.cancelling:
                return
            self.generation += 1
            self.opened_at = self.clock.monotonic()

    def _last_started_generation(self) -> int:
        started = [self.plan.by_key[key].generation for key in self.taken | set(self.outcomes)]
        return max(started, default=0)

    def first_attempt(self, action: PlannedAction | None) -> int:
        """The number of the next attempt of `action` (of the current undo when None).

        After a recovery, an action that may have been in flight continues the numbering:
        the journal shows the re-run.
        """
        recoveries = self.record.recoveries
        if recoveries and (action is None or action.generation == self.resumed):
            return 1 + recoveries
        return 1

    # -- deciding -------------------------------------------------------------------------

    def next(self) -> tuple[PlannedAction, ...] | Undo | Wait | None:
        """What to run now: actions (taken: run each to its end), an undo, WAIT, or None."""
        with self.lock:
            if self.lost or self.record.status in _FINISHED:
                return None
            if self.failure is None and not self.cancelling:
                ready = self._take_ready()
                return ready or WAIT
            assert self.failing is not None
            if self.failing and not all(
                action.key in self.outcomes for action in self.plan.generations[self.failing - 1]
            ):
                # The failing generation runs to its end first (after a crash, what had no
                # record runs again under its key).
                return self._take_ready(self.failing) or WAIT
            if self.undoing is not None:
                return WAIT
            if self.undo_queue is None:
                self.undo_queue = plan_undos(
                    self.plan, self.failing, self.outcomes, self.outputs, self.inputs,
                    self._owed, self.done_undos, self.undo_retries,
                )  # fmt: skip
            if not self.undo_queue:
                self._write(finish=self._undo_finish())
                return None
            self.undoing = self.undo_queue[0]
            return self.undoing

    def _take_ready(self, generation: int | None = None) -> tuple[PlannedAction, ...]:
        level = self.generation if generation is None else generation
        generations = self.plan.generations
        if level > len(generations):
            return ()
        taken = self.taken
        members = generations[level - 1]
        if not self.deliveries and not taken.intersection(a.key for a in members):
            taken.update(a.key for a in members)  # the common case: a fresh generation
            return members
        ready = []
        for action in members:
            if action.key in taken:
                continue
            if self.deliveries and not all(
                (action.key, index) in self.delivered for index in range(len(action.input_slots))
            ):
                continue
            taken.add(action.key)
            ready.append(action)
        return tuple(ready)

    def deliver(self, key: str, index: int, message_id: str) -> PlannedAction | None:
        """A choreography delivered input `index` of action `key`: the action, if it may run.

        A message that is not the one this instance produced for that input (published by
        someone else, or for another instance) is ignored.
        """
        with self.lock:
            action = self.plan.by_key.get(key)
            if action is None or self.lost or self.finished:
                return None
            if self.ids[action.input_slots[index]] != message_id:
                return None
            self.delivered.add((key, index))
            if key in self.taken:
                return None
            open_level = self.generation if self.failing is None else self.failing
            if action.generation != open_level:
                return None  # held: its generation is not open (yet), or it never will be
            if not all((key, i) in self.delivered for i in range(len(action.input_slots))):
                return None  # a join waiting for its other inputs
            self.taken.add(key)
            return action

    def inputs(self, action: PlannedAction) -> list[Any]:
        values = self.values
        return [values[slot] for slot in action.input_slots]

    def causes(self, action: PlannedAction) -> tuple[str | None, ...]:
        ids = self.ids
        return tuple(ids[slot] for slot in action.input_slots)

    # -- recording --------------------------------------------------------------------------

    def _write(
        self,
        records: tuple[StepRecord, ...] = (),
        *,
        status: WorkflowStatus | None = None,
        finish: Finish | None = None,
        owes: bool | None = None,
        events: tuple[Envelope[Message], ...] = (),
        handled: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """One fenced write; on success, applied to this instance's own record (under lock)."""
        if finish is not None:
            check_move(self.record.status, finish.status)
        elif status is not None and status is not self.record.status:
            check_move(self.record.status, status)
        write = _new_write(
            (self.workflow_id, self.token, self.clock.now(), records, status, finish, owes,
             events, handled, False)
        )  # fmt: skip
        try:
            self.store.write(write)
        except LeaseLost:
            self.lost = True  # another owner took over: record nothing more
            raise
        except StoreError:
            self.lost = True  # this copy can no longer be trusted: resume from the store
            raise
        self.record.apply(write)

    def _published(
        self, action_rows: Rows, envelopes: Sequence[Envelope[Message]], who: str
    ) -> Rows:
        """`action_rows` plus one `published` row per envelope (a choreography's journal)."""
        rows = action_rows
        for envelope in envelopes:
            rows += row(
                _PUBLISHED,
                who,
                type(envelope.message).__name__,
                self.workflow_id,
                causation_id=envelope.causation_id,
                at=self.clock.now(),
                detail=envelope.message_id,
            )
        return rows

    def completed(self, action: PlannedAction, output: Any, attempts: Attempts) -> None:
        """Record a completed action; its outputs become inputs of later generations."""
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            handled: tuple[tuple[str, str], ...] = ()
            if publishing is not None:
                causes = self.causes(action)
                events = publishing.outputs(action, output, causes)
                handled = publishing.handled(action, causes)
                rows = self._published(rows, events, action.step.action.participant)
            records: tuple[StepRecord, ...] = (
                _new_step((action.key, _OUTCOME_COMPLETED, attempts.attempt, output, None, rows)),
            )
            held = self._late_held.pop(action.key, None) if self._late_held else None
            if held:
                records += tuple(
                    self._late_record(action, n, out, "left alone (the action succeeded)")
                    for n, out in held
                )
            finish = None
            if (
                self._left == 1
                and action.generation == self.generation == len(self.plan.generations)
                and self.failure is None
                and not self.cancelling
            ):
                finish = Finish(_COMPLETED, self._final_output(action, output))
            self._write(records, finish=finish, events=events, handled=handled)
            for index, envelope in zip(action.output_slots, events, strict=False):
                self.ids[index] = envelope.message_id
            self._settle(action, StepOutcome.COMPLETED, output)
            if self._left == 0 and self.failure is None and not self.cancelling:
                generations = self.plan.generations
                if self.generation < len(generations):  # nothing of the next one settled yet
                    self.generation += 1
                    self._left = len(generations[self.generation - 1])
                    self.opened_at = self.clock.monotonic()
                elif self.generation == len(generations):
                    self.generation += 1
        if events:
            assert publishing is not None
            publishing.committed(events)

    def failed(self, action: PlannedAction, error: BaseException, attempts: Attempts) -> None:
        """Record an action that failed after its attempts; the instance will compensate."""
        text = describe(error)
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            handled: tuple[tuple[str, str], ...] = ()
            if publishing is not None:
                causes = self.causes(action)
                events = publishing.failure(action, text, attempts.attempt, attempts.causation)
                handled = publishing.handled(action, causes)
                rows = self._published(rows, events, action.step.action.participant)
            records: tuple[StepRecord, ...] = (
                StepRecord(action.key, StepOutcome.FAILED, attempts.attempt, None, text, rows),
            )
            held = self._late_held.pop(action.key, []) if self._late_held else []
            detail = "undone (the action failed)" if action.compensation else _NOTHING_TO_UNDO
            records += tuple(self._late_record(action, n, out, detail) for n, out in held)
            moving = self.record.status is _RUNNING
            self._write(
                records, status=_COMPENSATING if moving else None, events=events, handled=handled
            )
            self._settle(action, StepOutcome.FAILED, None)
            if held and action.compensation is not None:
                self._owed.setdefault(action.key, []).extend(held)
            if self.failure is None:
                failure = _step_failed(action, attempts.attempt, text)
                failure.__cause__ = error
                self.failure = failure
            if self.failing is None:
                self.failing = action.generation
        if events:
            assert publishing is not None
            publishing.committed(events)

    def _settle(
        self, action: PlannedAction, outcome: StepOutcome, output: Any, *, replaying: bool = False
    ) -> None:
        key = action.key
        if outcome is StepOutcome.COMPLETED:
            self.outcomes[key] = True
            self.outputs[key] = output
            slots = action.output_slots
            if len(slots) == 1:
                self.values[slots[0]] = output
            elif slots:
                for slot, value in zip(slots, output, strict=True):
                    self.values[slot] = value
            if replaying and self.publishing is not None:
                events = self.publishing.outputs(action, output, self.causes(action))
                for slot, envelope in zip(slots, events, strict=False):
                    self.ids[slot] = envelope.message_id
        elif outcome is StepOutcome.FAILED:
            self.outcomes[key] = False
        elif outcome is StepOutcome.SKIPPED:
            self.outcomes[key] = None
        self.taken.add(key)
        if action.generation == self.generation:
            self._left -= 1

    def _final_output(self, last: PlannedAction, output: Any) -> Any:
        members = self.plan.generations[-1]
        if len(members) == 1:
            return output
        return tuple(output if m is last else self.outputs.get(m.key) for m in members)

    # -- undoing ----------------------------------------------------------------------------

    def _undo_finish(self) -> Finish:
        if self.compensation_error is not None:
            status = WorkflowStatus.COMPENSATION_FAILED  # a late undo failed meanwhile
        else:
            status = WorkflowStatus.CANCELLED if self.cancelling else WorkflowStatus.COMPENSATED
        return Finish(status, None, self.failure, self.compensation_error)

    def undone(self, undo: Undo, output: Any, attempts: Attempts) -> None:
        """Record a compensation that succeeded (its output is kept with the record)."""
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            rows: Rows = tuple(attempts.rows)
            if publishing is not None:
                events = publishing.undone(undo, output)
                rows = self._published(rows, events, undo.action.step.action.participant)
            record = StepRecord(
                undo.key, StepOutcome.COMPENSATED, attempts.attempt, output, None, rows
            )
            if self.finished:  # a late result's undo, owed after the end
                self.done_undos.add(undo.base)
                self._write((record,), owes=bool(self.owed_after_end()), events=events)
            else:
                queue = self.undo_queue or []
                if undo in queue:
                    queue.remove(undo)
                finish = self._undo_finish() if not queue else None
                self._write((record,), finish=finish, events=events)
                self.done_undos.add(undo.base)
                if self.undoing == undo:
                    self.undoing = None
        if events:
            assert publishing is not None
            publishing.committed(events)

    def undo_failed(self, undo: Undo, error: BaseException, attempts: Attempts) -> None:
        """Record a failed compensation; stop undoing (never undo a cause before its effect)."""
        text = describe(error)
        with self.lock:
            queue = self.undo_queue or []
            remaining = [undo.action.key, *(u.action.key for u in queue if u != undo)]
            compensation = undo.action.compensation
            assert compensation is not None
            what = (
                f"a late result of {undo.action.key} (attempt {undo.late})"
                if undo.late
                else undo.action.key
            )
            failure = CompensationFailed(
                f"compensation {compensation.qualname} of {what} failed after "
                f"{attempts.attempt} attempt(s): {text}; still applied: "
                f"{', '.join(dict.fromkeys(remaining))}",
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
            if self.compensation_error is None:
                self.compensation_error = failure
            finish = Finish(
                WorkflowStatus.COMPENSATION_FAILED, None, self.failure, self.compensation_error
            )
            if self.finished and self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                self._write((record,))
            else:
                self._write((record,), finish=finish, owes=False)
            self.undo_queue = []
            self.undoing = None

    def owed_after_end(self) -> list[Undo]:
        """Undos of late results still owed once the instance ended (run them, newest first).

        A COMPENSATION_FAILED instance owes them to the operator's `retry()` instead.
        """
        with self.lock:
            if not self.finished or self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                return []
            owed = [
                Undo(action, action.undo_message(output, self.inputs(action)), attempt)
                for key, results in self._owed.items()
                for attempt, output in results
                for action in (self.plan.by_key[key],)
                if undo_key(key, attempt) not in self.done_undos
            ]
            return owed[::-1]

    # -- late results -----------------------------------------------------------------------

    def _late_record(self, action: PlannedAction, attempt: int, output: Any, detail: str,
                     error: str | None = None) -> StepRecord:  # fmt: skip
        entry = row(
            _LATE,
            action.step.action.participant,
            action.step.action.name,
            self.workflow_id,
            attempt=attempt,
            at=self.clock.now(),
            error=error,
            detail=f"timed-out attempt {attempt} {'failed' if error else 'returned'} late: "
            f"{detail}",
        )
        return StepRecord(
            f"{action.key}:late{attempt}", StepOutcome.LATE, attempt, output, error, entry
        )

    def late(
        self, action: PlannedAction, attempt: int, ok: bool, value: Any, *, valid: bool
    ) -> Undo | None:
        """A timed-out attempt of `action` returned after all (or failed): decide what it owes.

        Returns an undo for the caller to run now, on its own thread, when the undo is owed
        after the instance's own undo went past `action` (or the instance ended).
        """
        with self.lock:
            if self.lost:
                return None
            outcome = self.outcomes.get(action.key, _UNSETTLED)
            if not ok or not valid:
                error = (
                    describe(value)
                    if not ok
                    else f"OutputTypeError: returned {type(value).__name__}, not its output"
                )
                self._write((self._late_record(action, attempt, None, "nothing to undo", error),))
                return None
            if outcome is _UNSETTLED:
                self._late_held.setdefault(action.key, []).append((attempt, value))
                return None
            if outcome is True:
                left_alone = "left alone (the action succeeded)"
                self._write((self._late_record(action, attempt, value, left_alone),))
                return None
            if action.compensation is None:
                self._write((self._late_record(action, attempt, value, _NOTHING_TO_UNDO),))
                return None
            undo = Undo(action, action.undo_message(value, self.inputs(action)), attempt)
            record = self._late_record(action, attempt, value, "undone (the action failed)")
            self._owed.setdefault(action.key, []).append((attempt, value))
            if self.finished:
                if self.record.status is WorkflowStatus.COMPENSATION_FAILED:
                    self._write((record,))  # the operator's retry() undoes it with the rest
                    return None
                self._write((record,), owes=True)  # durable first: a crash never loses it
                return undo
            self._write((record,))
            if self.undo_queue is None:
                return None  # planned with the rest once the failing generation settled
            position = next(
                (
                    i
                    for i, u in enumerate(self.undo_queue)
                    if u.action is action and u != self.undoing
                ),
                None,
            )
            if position is not None:
                self.undo_queue.insert(position, undo)
            else:
                self.undo_queue.insert(1 if self.undoing is not None else 0, undo)
            return None

    def refuse(self, action: PlannedAction, error: BaseException, detail: str) -> bool:
        """Fail an action that never started (a join whose inputs never came); False if it
        started meanwhile."""
        text = describe(error)
        publishing = self.publishing
        events: tuple[Envelope[Message], ...] = ()
        with self.lock:
            if action.key in self.taken or self.finished or self.lost:
                return False
            self.taken.add(action.key)
            rows: Rows = row(
                EntryKind.FAILED,
                action.step.action.participant,
                action.step.action.name,
                self.workflow_id,
                at=self.clock.now(),
                error=text,
                detail=detail,
            )
            if publishing is not None:
                events = publishing.failure(action, text, 0, None)
                rows = self._published(rows, events, action.step.action.participant)
            moving = self.record.status is _RUNNING
            record = StepRecord(action.key, StepOutcome.FAILED, 0, None, text, rows)
            self._write((record,), status=_COMPENSATING if moving else None, events=events)
            self._settle(action, StepOutcome.FAILED, None)
            if self.failure is None:
                self.failure = _step_failed(action, 0, text)
                self.failure.__cause__ = error
            if self.failing is None:
                self.failing = action.generation
        if events:
            assert publishing is not None
            publishing.committed(events)
        return True

    def note(self, key: str, rows: Rows) -> None:
        """Journal something that is no saga fact (a free-form subscriber's failure)."""
        with self.lock:
            if self.lost or self.record.has_step(key):
                return
            self._write((StepRecord(key, StepOutcome.NOTED, 0, None, None, rows),))

    def park(self, reason: str) -> None:
        """Stop for a human: PARKED, with `reason` (a dead letter, a failure past the pivot)."""
        with self.lock:
            self._write(
                finish=Finish(
                    WorkflowStatus.PARKED,
                    None,
                    self.failure,
                    self.compensation_error,
                    parked_reason=reason,
                )
            )

    def undelivered(self) -> list[tuple[PlannedAction, list[int]]]:
        """Actions of the open generation waiting for inputs: which input indexes are missing."""
        with self.lock:
            level = self.generation if self.failing is None else self.failing
            if self.finished or level < 1 or level > len(self.plan.generations):
                return []
            waiting = []
            for action in self.plan.generations[level - 1]:
                if action.key in self.taken:
                    continue
                missing = [
                    index
                    for index in range(len(action.input_slots))
                    if (action.key, index) not in self.delivered
                ]
                waiting.append((action, missing))
            return waiting

    def waiting(self) -> dict[str, list[int]]:
        """Joins holding some of their inputs: action key -> indexes of inputs still to come."""
        with self.lock:
            if self.finished:
                return {}
            held: dict[str, list[int]] = {}
            for action in self.plan.actions:
                if action.key in self.taken or len(action.input_slots) < 2:
                    continue
                came = [
                    i for i in range(len(action.input_slots)) if (action.key, i) in self.delivered
                ]
                if came:
                    held[action.key] = [i for i in range(len(action.input_slots)) if i not in came]
            return held

    # -- operators --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop at the next boundary and undo what was done; the instance ends CANCELLED."""
        with self.lock:
            self.cancelling = True
            self.failing = self._last_started_generation()
            if self.record.status is not _COMPENSATING:
                self._write(status=_COMPENSATING)

    def view_keys(self) -> tuple[list[str], list[str], list[str]]:
        """(completed, failed, undone) action keys, in the order they settled."""
        with self.lock:
            done = [k for k, v in self.outcomes.items() if v is True]
            failed = [k for k, v in self.outcomes.items() if v is False]
            undone = list(dict.fromkeys(base.split(":")[0] for base in self.done_undos))
            return done, failed, undone

    def __repr__(self) -> str:
        return f"<Saga {self.workflow_id} {self.record.status.name} generation {self.generation}>"


_COMPLETED = WorkflowStatus.COMPLETED
_NONE_DELIVERED: Any = frozenset()
_FINISHED = frozenset(status for status in WorkflowStatus if status.finished)
_OUTCOME_COMPLETED = StepOutcome.COMPLETED
_NOTHING_TO_UNDO = "nothing declared to undo it"
# NamedTuples' generated __new__ is a Python function; the tuple constructor is not, and
# these are made for every step of every instance.
_new_step = functools.partial(tuple.__new__, StepRecord)
_new_write = functools.partial(tuple.__new__, Write)
_UNSETTLED: Any = object()


def _step_failed(action: PlannedAction, attempts: int, text: str) -> StepFailed:
    return StepFailed(
        f"step {action.key} failed after {attempts} attempt(s): {text}",
        step=action.key,
        attempts=attempts,
    )
