"""One action's (or one undo's) attempts, each recorded by its saga: what both runners drive.

`ActionRun.make_attempt()` makes one attempt and returns the delay before the next one, or None
once the action settled (the saga recorded it). Only the waiting differs between runners:
`run()` sleeps on the runner's clock (interleaving siblings), `run_async()` awaits it, a
choreography re-delivers after the delay on its bus. The attempt, its timeout, its journal
rows, its late result and its outcome are decided here, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from coordination._clock import Clock
from coordination._context import Context
from coordination.engine._attempts import Attempts, describe
from coordination.engine._binding import BoundAction
from coordination.engine._executor import attempt_async, attempt_sync
from coordination.engine._ownership import ACTIVE
from coordination.engine._saga import Saga
from coordination.engine._timed import LateHandler
from coordination.engine._undo import Undo
from coordination.errors import AttemptTimeout, LeaseLost, StoreError

__all__ = ["ActionRun", "UndoRun", "finish_async", "finish_sync", "first_attempt"]

_log = logging.getLogger("coordination.engine")


class ActionRun(Attempts):
    """The attempts of one forward action of one instance, each recorded by its saga.

    It is its own `Attempts` (one object per action: one is made for every step of every
    instance) and adds what driving them needs: the saga, the bound action, the inputs.
    """

    __slots__ = ("bound", "inputs", "saga")

    def __init__(
        self,
        saga: Saga,
        bound: BoundAction,
        random: Callable[[], float],
        causation: str | None = None,
    ) -> None:
        planned = bound.planned
        super().__init__(
            bound.forward,
            saga.workflow_id,
            saga.clock,
            random,
            causation,
            first=saga.first_attempt(planned) if saga.record.recoveries else 1,
        )
        self.saga = saga
        self.bound = bound
        self.check_schedule = saga.check_schedule
        self.inputs = saga.progress.inputs(planned)

    @property
    def attempts(self) -> Attempts:
        """The bookkeeping of these attempts (this object itself)."""
        return self

    def make_attempt(self, runner: asyncio.Runner | None = None) -> float | None:
        """One attempt on this thread; the delay before the next, or None once settled."""
        ctx = self.begin()
        number = self.attempt
        forward = self.bound.forward
        try:
            if forward.timeout is None:
                value = attempt_sync(forward, self.inputs, ctx, None, NEVER_LATE, runner)
            else:
                value = attempt_sync(
                    forward,
                    self.inputs,
                    ctx,
                    self.attempt_timeout(),
                    self._late_handler(number),
                    runner,
                )
            self.succeeded(value)
        except Exception as error:
            return self._failed(error, number)
        scheduled = None if ctx is None else ctx._scheduled
        self.saga.completed(self.bound.planned, value, number, tuple(self.rows), scheduled)
        return None

    async def make_attempt_async(self, *, offload: bool = True) -> float | None:
        """One attempt without blocking the loop; the delay before the next, or None."""
        attempts = self
        ctx = attempts.begin()
        number = attempts.attempt
        try:
            value = await attempt_async(
                self.bound.forward,
                self.inputs,
                ctx,
                attempts.attempt_timeout(),
                self._late_handler(number),
                offload=offload,
            )
            attempts.succeeded(value)
        except Exception as error:
            return self._failed(error, number)
        scheduled = None if ctx is None else ctx._scheduled
        self.saga.completed(self.bound.planned, value, number, tuple(attempts.rows), scheduled)
        return None

    def _failed(self, error: Exception, number: int) -> float | None:
        delay = self.failed(error)
        late = error.late if isinstance(error, AttemptTimeout) else None
        if late is not None:
            # An injected late result, known with its timeout: handed over before the
            # failure is recorded, so it is held and written with it (one commit: a crash
            # can never keep the failure and lose the result).
            self._late(number, *late, returned=False)
        if delay is None:
            self.saga.failed(self.bound.planned, error, self)
        return delay

    def _late_handler(self, number: int) -> LateHandler:
        if self.bound.forward.timeout is None:
            return NEVER_LATE  # an attempt without a timeout is never abandoned
        return _LateResult(self, number)

    def _late(self, number: int, ok: bool, value: Any, *, returned: bool = True) -> None:
        """A timed-out attempt returned after all: the saga decides; run what it owes now."""
        saga = self.saga
        try:
            undo = saga.undo_facts.late(
                self.bound.planned,
                number,
                ok,
                value,
                valid=ok and self.bound.forward.check(value),
                returned=returned,
            )
            if undo is not None:
                finish_sync(UndoRun(saga, undo, self.bound, self.random), saga.clock)
        except (LeaseLost, StoreError) as error:
            # The instance is someone else's now, or the store failed: recovery owes it.
            _log.warning("late result of %s not recorded: %s", self.bound.planned.key, error)


class UndoRun(Attempts):
    """The attempts of one compensation of one instance (its own `Attempts`, as above)."""

    __slots__ = ("_landed", "bound", "saga", "undo")

    def __init__(
        self, saga: Saga, undo: Undo, bound: BoundAction, random: Callable[[], float]
    ) -> None:
        plan = bound.backward
        assert plan is not None, f"{bound.planned.key} has no compensation"
        super().__init__(
            plan,
            saga.workflow_id,
            saga.clock,
            random,
            undo.action.key,
            first=saga.first_attempt(None) if undo is saga.undos.current else 1,
            key=undo.base,
        )
        self.saga = saga
        self.undo = undo
        self.bound = bound
        self._landed = _UndoLanded(saga.workflow_id)

    @property
    def attempts(self) -> Attempts:
        """The bookkeeping of these attempts (this object itself)."""
        return self

    def make_attempt(self, runner: asyncio.Runner | None = None) -> float | None:
        """One attempt on this thread; the delay before the next, or None once settled."""
        attempts = self
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            value = attempt_sync(
                plan, [self.undo.message], ctx, attempts.attempt_timeout(), self._landed, runner
            )
            attempts.succeeded(value)
        except Exception as error:
            return self._failed(error)
        self.saga.undo_facts.undone(self.undo, value, attempts)
        return None

    async def make_attempt_async(self, *, offload: bool = True) -> float | None:
        attempts = self
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            value = await attempt_async(
                plan,
                [self.undo.message],
                ctx,
                attempts.attempt_timeout(),
                self._landed,
                offload=offload,
            )
            attempts.succeeded(value)
        except Exception as error:
            return self._failed(error)
        self.saga.undo_facts.undone(self.undo, value, attempts)
        return None

    def _failed(self, error: Exception) -> float | None:
        delay = self.failed(error)
        if delay is None:
            self.saga.undo_facts.undo_failed(self.undo, error, self)
        return delay


def first_attempt(
    saga: Saga,
    bound: BoundAction,
    random: Callable[[], float],
    causation: str | None = None,
    runner: asyncio.Runner | None = None,
) -> tuple[ActionRun, float] | None:
    """Make the first attempt of `bound`'s action for `saga` on this thread: None once the
    action settled, else the run that carries on and the delay before its next attempt.

    Every step of every instance makes a first attempt, and most succeed, so a sync action
    with no timeout and no step deadline makes it here, inline: no `ActionRun`, no list of
    rows, the same executor, journal rows and record as any attempt. Only a failed one is
    taken over by an `ActionRun` (`Attempts.adopt`), which journals it and decides, as for
    every later attempt, whether to retry. Every other action is an `ActionRun`'s from its
    first attempt (a timeout, an async callable, attempt numbers continued by a recovery).
    """
    forward = bound.forward
    if not forward.inline or saga.record.recoveries:
        run = ActionRun(saga, bound, random, causation)
        delay = run.make_attempt(runner)
        return None if delay is None else (run, delay)
    planned = bound.planned
    workflow_id = saga.workflow_id
    cause = forward.causation if causation is None else causation
    inputs = saga.progress.inputs(planned)
    clock = saga.clock
    started = clock.monotonic()
    started_at = clock.now()
    ctx = None
    if forward.wants_context:
        ctx = Context(workflow_id, f"{workflow_id}:{forward.key}", 1, None, clock)
        ctx._check_schedule = saga.check_schedule
    try:
        value = attempt_sync(forward, inputs, ctx, None, NEVER_LATE, None)
        if not forward.check(value):
            raise forward.wrong_output(value)
    except Exception as error:
        run = ActionRun(saga, bound, random, causation)
        run.adopt(started, started_at, forward.started(workflow_id, cause, 1, started_at))
        delay = run._failed(error, 1)
        return None if delay is None else (run, delay)
    duration = clock.monotonic() - started
    rows = forward.started(workflow_id, cause, 1, started_at) + forward.ended(
        workflow_id, cause, 1, started_at + duration, duration
    )
    saga.completed(planned, value, 1, rows, None if ctx is None else ctx._scheduled)
    return None


class _NeverLate:
    """An attempt without a timeout: it is never abandoned, so nothing returns late."""

    def abandoned(self) -> None:
        raise AssertionError("an attempt without a timeout was abandoned")

    def returned(self, ok: bool, value: Any) -> None:
        raise AssertionError("an attempt without a timeout returned late")


NEVER_LATE = _NeverLate()


class _LateResult:
    """An abandoned forward attempt: its instance stays busy in this process, and keeps
    owing, until what it returns after all is handled as a late result."""

    __slots__ = ("number", "run")

    def __init__(self, run: ActionRun, number: int) -> None:
        self.run = run
        self.number = number

    def abandoned(self) -> None:
        saga = self.run.saga
        ACTIVE.enter(saga.workflow_id)
        saga.abandon()

    def returned(self, ok: bool, value: Any) -> None:
        try:
            self.run._late(self.number, ok, value)
        finally:
            ACTIVE.leave(self.run.saga.workflow_id)


class _UndoLanded:
    """An abandoned compensation attempt: the undo is retried under the same key, so what
    it returns late is only logged; its instance stays busy here until it returns."""

    __slots__ = ("workflow_id",)

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def abandoned(self) -> None:
        ACTIVE.enter(self.workflow_id)

    def returned(self, ok: bool, value: Any) -> None:
        ACTIVE.leave(self.workflow_id)
        if not ok:
            _log.warning("a timed-out compensation attempt failed late: %s", describe(value))


def finish_sync(
    run: ActionRun | UndoRun, clock: Clock, runner: asyncio.Runner | None = None
) -> None:
    """Make attempts until `run` settles, sleeping on `clock` between them."""
    while (delay := run.make_attempt(runner)) is not None:
        if delay:
            clock.sleep(delay)


async def finish_async(run: ActionRun | UndoRun, clock: Clock, *, offload: bool = True) -> None:
    """Make attempts until `run` settles, awaiting `clock` between them."""
    while (delay := await run.make_attempt_async(offload=offload)) is not None:
        if delay:
            await clock.sleep_async(delay)
