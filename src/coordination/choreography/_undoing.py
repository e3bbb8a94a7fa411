"""Undoing in a choreography: the saga's compensations, newest first, retried as delayed
deliveries, and undos owed after the saga was planned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordination._attempts import Attempts, describe
from coordination._clock import Clock
from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination._timed import TimedAttempt
from coordination.choreography._bus import EventBus
from coordination.choreography._process import Process, Undo

__all__ = ["Undoing"]

_RUNNING = WorkflowStatus.RUNNING


def _ignore(ok: bool, value: Any) -> None:
    """A timed-out undo attempt returned late: the undo landed; nothing more to do."""


class Undoing:
    """The compensating half of `Choreography` (which provides everything declared here)."""

    bus: EventBus
    clock: Clock
    random: Callable[[], float]
    _finish: Callable[[Process, WorkflowStatus], None]
    _publish: Callable[..., None]  # (process, messages, cause, publisher, handled=None)
    _late_undo: Callable[[Process, Undo, Attempts], None]

    def _owe(self, process: Process, undo: Undo | None) -> None:
        """An undo owed after the saga was planned (an action that ended meanwhile).

        While the saga runs it goes next, behind the undo under way; once the saga is over
        it runs now, on this thread, like the undo of a late result.
        """
        if undo is None:
            return
        with process.lock:
            if process.undo_queue:
                process.undo_queue.insert(1, undo)
                return
        plan = undo.wired.backward
        assert plan is not None
        attempts = Attempts(plan, process.correlation_id, self.clock, self.random)
        if plan.is_async:  # awaited by the cascade, like the saga's own async undos
            self.bus.call_later(0.0, lambda: self._undo_attempt_async(process, undo, attempts))
            return
        self._late_undo(process, undo, attempts)

    def _undo_next(self, process: Process) -> None:
        """Run the undos one by one, newest first; retries wait as delayed deliveries."""
        while True:
            with process.lock:
                if not process.undo_queue:
                    break
                undo = process.undo_queue[0]
            plan = undo.wired.backward
            assert plan is not None
            attempts = Attempts(plan, process.correlation_id, self.clock, self.random)
            if plan.is_async:
                self.bus.call_later(
                    0.0,
                    lambda undo=undo, attempts=attempts: self._undo_attempt_async(  # type: ignore[misc]
                        process, undo, attempts
                    ),
                )
                return
            if not self._undo_attempt(process, undo, attempts):
                return  # waiting for a retry, or the undo failed for good
        self._finish(process, WorkflowStatus.COMPENSATED)

    def _undo_attempt(self, process: Process, undo: Undo, attempts: Attempts) -> bool:
        """One attempt of an undo; True when it succeeded (go on with the next one)."""
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            if plan.timeout is None:
                result = plan.invoke([undo.message], ctx)
            else:
                timed = TimedAttempt(lambda: plan.invoke([undo.message], ctx), _ignore, plan.key)
                result = timed.wait(plan.timeout)
            attempts.succeeded(result)
        except Exception as error:
            self._undo_failed(process, undo, attempts, error)
            return False
        self._undone(process, undo, result, attempts)
        return True

    async def _undo_attempt_async(self, process: Process, undo: Undo, attempts: Attempts) -> None:
        plan = attempts.plan
        ctx = attempts.begin()
        try:
            result = await plan.invoke([undo.message], ctx)
            attempts.succeeded(result)
        except Exception as error:
            self._undo_failed(process, undo, attempts, error, run_async=True)
            return
        self._undone(process, undo, result, attempts)
        self._undo_next(process)

    def _undo_failed(
        self,
        process: Process,
        undo: Undo,
        attempts: Attempts,
        error: Exception,
        *,
        run_async: bool = False,
    ) -> None:
        delay = attempts.failed(error)
        process.take_rows(attempts)
        if delay is not None:
            if run_async:
                self.bus.call_later(
                    delay, lambda: self._undo_attempt_async(process, undo, attempts)
                )
            else:
                self.bus.call_later(delay, lambda: self._resume_undo(process, undo, attempts))
            return
        with process.lock:
            left = [item.wired.node.key for item in process.undo_queue]
            if undo.wired.node.key not in left:  # an undo owed after the saga was planned
                left.insert(0, undo.wired.node.key)
            process.undo_queue = []
            process.failure = (
                f"{process.failure}; then the undo of {undo.wired.node.key} failed: "
                f"{describe(error)}; still applied: {', '.join(left)}"
            )
        self._finish(process, WorkflowStatus.COMPENSATION_FAILED)

    def _resume_undo(self, process: Process, undo: Undo, attempts: Attempts) -> None:
        if self._undo_attempt(process, undo, attempts):
            self._undo_next(process)

    def _undone(self, process: Process, undo: Undo, result: Any, attempts: Attempts) -> None:
        process.take_rows(attempts)
        with process.lock:
            if process.undo_queue and process.undo_queue[0] is undo:
                process.undo_queue.pop(0)
            process.mark_undone(undo.wired.node.key)
        participant = undo.wired.node.declared.participant
        outputs = (result,) if isinstance(result, Message) else ()
        self._publish(
            process, outputs, process.failure_id, participant, f"{undo.wired.node.key}:undo"
        )
