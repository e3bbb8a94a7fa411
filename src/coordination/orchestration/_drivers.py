"""The two thin drivers that carry out what a saga decides, generation by generation.

`run()` makes attempts on the calling thread, interleaving the retries of a generation's
actions (while one waits for its backoff, the next one runs), or runs the actions on worker
threads when any of them has a timeout; `run_async()` runs a generation's actions
concurrently without blocking the loop. Either way every action of a generation runs to its
end, and neither holds saga logic: that is `Saga`, `ActionRun` and `UndoRun`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from coordination._clock import Clock
from coordination.engine import (
    ActionRun,
    BoundAction,
    FlowPlan,
    PlannedAction,
    Saga,
    Suspend,
    Undo,
    UndoRun,
    Wait,
    WriteBatch,
    bound_to,
    finish_async,
    finish_sync,
    first_attempt,
)

__all__ = ["Driver"]


class Driver:
    """Carries out instances of one plan with one set of bound participants."""

    __slots__ = ("bound", "clock", "plan", "random", "threaded")

    def __init__(
        self,
        plan: FlowPlan,
        bound: dict[str, BoundAction],
        clock: Clock,
        random: Callable[[], float],
    ) -> None:
        self.plan = plan
        self.bound = bound
        self.clock = clock
        self.random = random
        #: Generations run on worker threads under run() when any action has a timeout.
        self.threaded = tuple(
            (len(generation) > 1 or any(member.mapped for member in generation))
            and any(member.step.timeout is not None for member in generation)
            for generation in plan.generations
        )

    def _action(self, saga: Saga, planned: PlannedAction) -> ActionRun:
        cause = saga.progress.causation(planned)
        return ActionRun(saga, bound_to(self.bound, planned), self.random, cause)

    def _first(
        self, saga: Saga, planned: PlannedAction, runner: asyncio.Runner | None
    ) -> tuple[ActionRun, float] | None:
        """`planned`'s first attempt: None once it settled, else its run and the delay."""
        cause = saga.progress.causation(planned)
        return first_attempt(saga, bound_to(self.bound, planned), self.random, cause, runner)

    def _undo(self, saga: Saga, undo: Undo) -> UndoRun:
        return UndoRun(saga, undo, bound_to(self.bound, undo.action), self.random)

    # -- sync -----------------------------------------------------------------------------

    def run(self, saga: Saga) -> None:
        """Drive `saga` to its end (or its next suspension) on the calling thread."""
        runner = asyncio.Runner() if self.plan.has_async else None
        try:
            while True:
                decision = saga.next()
                if type(decision) is tuple:  # actions to run (every step): asked first
                    if len(decision) == 1:
                        carried = self._first(saga, decision[0], runner)
                        if carried is not None:  # it failed: retried after its delay
                            run, delay = carried
                            if delay:
                                self.clock.sleep(delay)
                            finish_sync(run, self.clock, runner)
                    elif self.threaded[decision[0].generation - 1]:
                        self._on_threads(saga, decision)
                    else:
                        self._interleaved([(saga, p) for p in decision], runner)
                elif decision is None or isinstance(decision, Wait):
                    return
                elif isinstance(decision, Suspend):
                    if saga.suspend():
                        return  # WAITING: send() carries it on
                    # else its message came meanwhile: go on
                else:
                    assert isinstance(decision, Undo)
                    finish_sync(self._undo(saga, decision), self.clock, runner)
        finally:
            if runner is not None:
                runner.close()

    def _interleaved(
        self, actions: list[tuple[Saga, PlannedAction]], runner: asyncio.Runner | None
    ) -> None:
        """Attempt each action in declared order; a retry waits its turn by due time."""
        clock = self.clock
        order = itertools.count()
        # (due, tie-breaker, when it was scheduled, its delay, run): the wait is the delay
        # less the time gone by, so with nothing in between it is the delay exactly.
        due: list[tuple[float, int, float, float, ActionRun]] = []
        for saga, planned in actions:
            carried = self._first(saga, planned, runner)
            if carried is not None:
                now = clock.monotonic()
                heapq.heappush(due, (now + carried[1], next(order), now, carried[1], carried[0]))
        while due:
            _, _, scheduled, delay, run = heapq.heappop(due)
            wait = delay - (clock.monotonic() - scheduled)
            if wait > 0:
                clock.sleep(wait)
            retry = run.make_attempt(runner)
            if retry is not None:
                now = clock.monotonic()
                heapq.heappush(due, (now + retry, next(order), now, retry, run))

    def _on_threads(self, saga: Saga, generation: tuple[PlannedAction, ...]) -> None:
        self._branches([(saga, planned) for planned in generation])

    def _branches(self, branches: list[tuple[Saga, PlannedAction]]) -> None:
        """Run each action on a thread of its own (a generation with a timeout), all at
        once, each to its end."""
        escaped: list[BaseException] = []

        def branch(saga: Saga, planned: PlannedAction) -> None:
            try:
                if planned.signature.is_async:
                    with asyncio.Runner() as runner:
                        finish_sync(self._action(saga, planned), self.clock, runner)
                else:
                    finish_sync(self._action(saga, planned), self.clock)
            except BaseException as error:  # re-raised on the calling thread below
                escaped.append(error)

        threads = [
            threading.Thread(
                target=branch, args=(saga, p), name=f"coordination:{p.key}", daemon=True
            )
            for saga, p in branches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if escaped:
            raise escaped[0]

    def run_batch(self, sagas: list[Saga], batch: WriteBatch) -> None:
        """Drive `sagas` in lockstep on the calling thread: each round every instance
        carries out its next decision (a generation, or one undo), then one commit records
        what all of them did. Retries interleave across the whole batch by due time."""
        runner = asyncio.Runner() if self.plan.has_async else None
        live = sagas
        try:
            while live:
                going: list[Saga] = []
                interleaved: list[tuple[Saga, PlannedAction]] = []
                threaded: list[tuple[Saga, PlannedAction]] = []
                for saga in live:
                    decision = saga.next()
                    if decision is None or isinstance(decision, Wait):
                        continue
                    going.append(saga)
                    if isinstance(decision, Suspend):
                        if saga.suspend():
                            going.pop()  # WAITING: send() carries it on
                    elif isinstance(decision, Undo):
                        finish_sync(self._undo(saga, decision), self.clock, runner)
                    elif len(decision) > 1 and self.threaded[decision[0].generation - 1]:
                        threaded.extend((saga, planned) for planned in decision)
                    else:
                        interleaved.extend((saga, p) for p in decision)
                if threaded:
                    self._branches(threaded)
                if interleaved:
                    self._interleaved(interleaved, runner)
                batch.flush()
                live = [saga for saga in going if not saga.lost]
        finally:
            if runner is not None:
                runner.close()

    async def run_batch_async(self, sagas: list[Saga], batch: WriteBatch) -> None:
        """Like `run_batch()` without blocking the loop: a round's actions of every instance
        run concurrently, then one commit records them."""
        live = sagas
        while live:
            going: list[Saga] = []
            pending: list[Coroutine[Any, Any, None]] = []
            for saga in live:
                decision = saga.next()
                if decision is None or isinstance(decision, Wait):
                    continue
                going.append(saga)
                if isinstance(decision, Suspend):
                    if saga.suspend():
                        going.pop()
                elif isinstance(decision, Undo):
                    pending.append(finish_async(self._undo(saga, decision), self.clock))
                else:
                    pending.extend(
                        finish_async(self._action(saga, p), self.clock) for p in decision
                    )
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
            batch.flush()
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            live = [saga for saga in going if not saga.lost]

    def run_owed(self, saga: Saga, undo: Undo) -> None:
        """Run an undo a finished instance still owes (a late result's), to its end."""
        finish_sync(self._undo(saga, undo), self.clock)

    # -- async ----------------------------------------------------------------------------

    async def run_async(self, saga: Saga) -> None:
        """Drive `saga` to its end without blocking the running loop."""
        while True:
            decision = saga.next()
            if decision is None or isinstance(decision, Wait):
                return
            if isinstance(decision, Suspend):
                if saga.suspend():
                    return
                continue
            if isinstance(decision, Undo):
                await finish_async(self._undo(saga, decision), self.clock)
                continue
            outcomes = await asyncio.gather(
                *(finish_async(self._action(saga, p), self.clock) for p in decision),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
