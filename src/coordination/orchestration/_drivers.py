"""The two thin drivers that carry out what the decision core decides: sync and async.

`run()` calls steps on the calling thread (worker threads only for timed attempts and for
parallel groups with a timeout); `run_async()` awaits async actions and runs sync ones in
worker threads so the caller's loop never blocks. Neither holds saga logic: that is
`RunState` and `Attempts`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from coordination._attempts import Attempts, describe
from coordination._clock import Clock
from coordination._context import Context
from coordination._journal import EntryKind, Row
from coordination._timed import TimedAttempt, bounded
from coordination.errors import CompensationFailed, StoreError
from coordination.orchestration._binding import BoundStep
from coordination.orchestration._core import RunState, Undo, late_undo
from coordination.orchestration._flow import CompiledStep, FlowDefinition
from coordination.stores._records import StepOutcome, StepRecord

__all__ = ["Driver"]

_log = logging.getLogger("coordination.orchestration")
_LATE = EntryKind.LATE_RESULT.value

Call = Callable[[list[Any], Context | None], Any]
AsyncCall = Callable[[Context | None], Awaitable[Any]]


class _Late:
    """Late results of one step's timed-out attempts, held until the step settles."""

    __slots__ = ("compiled", "held", "outcome", "state")

    def __init__(self, state: RunState, compiled: CompiledStep) -> None:
        self.state = state
        self.compiled = compiled
        self.outcome: bool | None = None  # None: not settled; True: succeeded; False: failed
        self.held: list[tuple[int, bool, Any]] = []


class Driver:
    """Carries out runs of one flow with one set of bound participants."""

    __slots__ = ("bound", "clock", "flow", "random", "threaded")

    def __init__(
        self,
        flow: FlowDefinition,
        bound: tuple[BoundStep, ...],
        clock: Clock,
        random: Callable[[], float],
    ) -> None:
        self.flow = flow
        self.bound = bound
        self.clock = clock
        self.random = random
        #: Parallel groups run on worker threads under run() when any branch has a timeout.
        self.threaded = tuple(
            len(group) > 1 and any(member.step.timeout is not None for member in group)
            for group in flow.groups
        )

    def _attempts(self, state: RunState, compiled: CompiledStep) -> Attempts:
        plan = self.bound[compiled.index].forward
        return Attempts(plan, state.workflow_id, self.clock, self.random)

    def _undo_attempts(self, state: RunState, undo: Undo) -> Attempts:
        plan = self.bound[undo.step.index].backward
        assert plan is not None
        return Attempts(plan, state.workflow_id, self.clock, self.random)

    # -- sync -----------------------------------------------------------------------------

    def run(self, state: RunState) -> None:
        """Drive `state` to its end on the calling thread."""
        runner = asyncio.Runner() if self.flow.has_async else None
        try:
            while True:
                decision = state.next()
                if decision is None:
                    return
                if isinstance(decision, Undo):
                    self._undo(state, decision, runner)
                elif len(decision) == 1:
                    self._step(state, decision[0], runner)
                elif self.threaded[decision[0].group]:
                    self._parallel_threads(state, decision)
                else:
                    for compiled in decision:
                        self._step(state, compiled, runner)
                        if state.failure is not None:
                            break  # no further branch starts
        finally:
            if runner is not None:
                runner.close()

    def _loop(self, attempts: Attempts, call: Call, inputs: list[Any]) -> tuple[bool, Any]:
        """Attempt `call` until it succeeds or the policy gives up: (succeeded, value)."""
        while True:
            ctx = attempts.begin()
            try:
                result = call(inputs, ctx)
                attempts.succeeded(result)
                return True, result
            except Exception as error:
                delay = attempts.failed(error)
                if delay is None:
                    return False, error
                if delay:
                    self.clock.sleep(delay)

    def _call(self, attempts: Attempts, runner: asyncio.Runner | None, late: _Late | None) -> Call:
        """How to make one attempt on this thread: the plain call unless async or timed."""
        plan = attempts.plan
        invoke = plan.invoke
        if plan.is_async:
            assert runner is not None

            def call_async(inputs: list[Any], ctx: Context | None) -> Any:
                return runner.run(bounded(invoke(inputs, ctx), attempts.attempt_timeout()))

            return call_async
        if plan.timeout is None:
            return invoke

        def call_timed(inputs: list[Any], ctx: Context | None) -> Any:
            attempt = attempts.attempt
            on_late = self._late_handler(late, attempt) if late is not None else _ignore_late
            timed = TimedAttempt(lambda: invoke(inputs, ctx), on_late, plan.key)
            return timed.wait(attempts.attempt_timeout() or 0.0)

        return call_timed

    def _step(self, state: RunState, compiled: CompiledStep, runner: asyncio.Runner | None) -> None:
        attempts = Attempts(
            self.bound[compiled.index].forward, state.workflow_id, self.clock, self.random
        )
        late = _Late(state, compiled) if compiled.step.timeout is not None else None
        ok, value = self._loop(attempts, self._call(attempts, runner, late), state.inputs(compiled))
        if ok:
            state.completed(compiled, value, attempts)
        else:
            state.failed(compiled, value, attempts)
        if late is not None:
            self._settle(late, ok)

    def _undo(
        self, state: RunState, undo: Undo, runner: asyncio.Runner | None, *, late: bool = False
    ) -> None:
        attempts = self._undo_attempts(state, undo)
        ok, value = self._loop(attempts, self._call(attempts, runner, None), [undo.message])
        self._record_undo(state, undo, attempts, ok, value, late)

    def _parallel_threads(self, state: RunState, group: tuple[CompiledStep, ...]) -> None:
        escaped: list[BaseException] = []

        def branch(compiled: CompiledStep) -> None:
            try:
                if self.bound[compiled.index].forward.is_async:
                    with asyncio.Runner() as runner:
                        self._step(state, compiled, runner)
                else:
                    self._step(state, compiled, None)
            except BaseException as error:  # re-raised on the calling thread below
                escaped.append(error)

        threads = [
            threading.Thread(target=branch, args=(c,), name=f"coordination:{c.key}", daemon=True)
            for c in group
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if escaped:
            raise escaped[0]

    # -- async ----------------------------------------------------------------------------

    async def run_async(self, state: RunState) -> None:
        """Drive `state` to its end without blocking the running loop."""
        while True:
            decision = state.next()
            if decision is None:
                return
            if isinstance(decision, Undo):
                await self._undo_async(state, decision)
            elif len(decision) == 1:
                await self._step_async(state, decision[0])
            else:
                outcomes = await asyncio.gather(
                    *(self._step_async(state, compiled) for compiled in decision),
                    return_exceptions=True,
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome

    async def _loop_async(self, attempts: Attempts, call: AsyncCall) -> tuple[bool, Any]:
        while True:
            ctx = attempts.begin()
            try:
                result = await call(ctx)
                attempts.succeeded(result)
                return True, result
            except Exception as error:
                delay = attempts.failed(error)
                if delay is None:
                    return False, error
                if delay:
                    await self.clock.sleep_async(delay)

    def _call_async(self, attempts: Attempts, inputs: list[Any], late: _Late | None) -> AsyncCall:
        plan = attempts.plan
        invoke = plan.invoke
        if plan.is_async:

            async def call_coroutine(ctx: Context | None) -> Any:
                return await bounded(invoke(inputs, ctx), attempts.attempt_timeout())

            return call_coroutine
        if plan.timeout is None:

            async def call_in_executor(ctx: Context | None) -> Any:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(None, invoke, inputs, ctx)

            return call_in_executor

        async def call_timed(ctx: Context | None) -> Any:
            attempt = attempts.attempt
            on_late = self._late_handler(late, attempt) if late is not None else _ignore_late
            timed = TimedAttempt(lambda: invoke(inputs, ctx), on_late, plan.key)
            return await timed.wait_async(attempts.attempt_timeout() or 0.0)

        return call_timed

    async def _step_async(self, state: RunState, compiled: CompiledStep) -> None:
        attempts = self._attempts(state, compiled)
        late = _Late(state, compiled) if compiled.step.timeout is not None else None
        call = self._call_async(attempts, state.inputs(compiled), late)
        ok, value = await self._loop_async(attempts, call)
        if ok:
            state.completed(compiled, value, attempts)
        else:
            state.failed(compiled, value, attempts)
        if late is not None:
            self._settle(late, ok)

    async def _undo_async(self, state: RunState, undo: Undo) -> None:
        attempts = self._undo_attempts(state, undo)
        call = self._call_async(attempts, [undo.message], None)
        ok, value = await self._loop_async(attempts, call)
        self._record_undo(state, undo, attempts, ok, value, late=False)

    # -- shared bookkeeping ---------------------------------------------------------------

    def _record_undo(
        self, state: RunState, undo: Undo, attempts: Attempts, ok: bool, value: Any, late: bool
    ) -> None:
        if ok:
            state.undone(undo, value, attempts)
        elif not late:
            state.undo_failed(undo, value, attempts)
        else:
            compensation = undo.step.compensation
            assert compensation is not None
            state.append(
                StepRecord(
                    undo.key,
                    StepOutcome.COMPENSATION_FAILED,
                    attempts.attempt,
                    None,
                    describe(value),
                    tuple(attempts.rows),
                )
            )
            failure = CompensationFailed(
                f"compensation {compensation.qualname} of a late result of {undo.step.key} "
                f"(attempt {undo.late_attempt}) failed: {describe(value)}; still applied: "
                f"{undo.step.key}",
                step=undo.step.key,
                compensation=compensation.qualname,
                attempts=attempts.attempt,
            )
            failure.__cause__ = value
            state.late_undo_failed(failure)

    def _late_handler(self, late: _Late, attempt: int) -> Callable[[bool, Any], None]:
        def arrived(ok: bool, value: Any) -> None:
            state = late.state
            with state.lock:
                outcome = late.outcome
                if outcome is None:
                    late.held.append((attempt, ok, value))
                    if ok:
                        state.hold_late(late.compiled, attempt, value)
                    return
            try:
                self._after_settle(late, attempt, ok, value, outcome)
            except StoreError as error:  # the run was forgotten by a bounded store
                _log.warning("late result of %s not recorded: %s", late.compiled.key, error)

        return arrived

    def _settle(self, late: _Late, succeeded: bool) -> None:
        """The step settled: journal what arrived late meanwhile (the saga undoes the rest)."""
        with late.state.lock:
            late.outcome = succeeded
            held, late.held = late.held, []
        for attempt, ok, value in held:
            self._record_late(late, attempt, ok, value, succeeded, undone_by_saga=not succeeded)

    def _after_settle(
        self, late: _Late, attempt: int, ok: bool, value: Any, succeeded: bool
    ) -> None:
        self._record_late(late, attempt, ok, value, succeeded, undone_by_saga=False)
        if ok and not succeeded:
            undo = late_undo(late.compiled, value, attempt, late.state.values)
            if undo is not None:
                self._undo(late.state, undo, None, late=True)

    def _record_late(
        self, late: _Late, attempt: int, ok: bool, value: Any, succeeded: bool, undone_by_saga: bool
    ) -> None:
        compiled = late.compiled
        if not ok:
            detail = f"timed-out attempt {attempt} failed late"
        elif succeeded:
            detail = f"timed-out attempt {attempt} returned late: left alone (the step succeeded)"
        elif undone_by_saga:
            detail = f"timed-out attempt {attempt} returned late: undone with the saga"
        elif compiled.compensation is None:
            detail = f"timed-out attempt {attempt} returned late: nothing declared to undo it"
        else:
            detail = f"timed-out attempt {attempt} returned late: undoing it now"
        row: Row = (
            _LATE, compiled.step.action.participant, compiled.step.action.name,
            late.state.workflow_id, compiled.causation, attempt, self.clock.now(), None, None,
            None if ok else describe(value), detail,
        )  # fmt: skip
        late.state.append(
            StepRecord(
                f"{compiled.key}:late{attempt}",
                StepOutcome.LATE,
                attempt,
                value if ok else None,
                None if ok else describe(value),
                row,
            )
        )


def _ignore_late(ok: bool, value: Any) -> None:
    """A timed-out compensation attempt finished late: the undo landed; nothing to do."""
    if not ok:
        _log.warning("a timed-out compensation attempt failed late: %s", describe(value))
