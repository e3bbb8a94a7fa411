"""Time in a choreography: late results of timed-out attempts, join deadlines, and the
failures of free-form subscribers journaled with their flow."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from coordination._attempts import Attempts, describe
from coordination._clock import Clock
from coordination._journal import EntryKind
from coordination._messages import Message
from coordination._status import WorkflowStatus
from coordination.choreography._events import ActionFailed, HandlerFailed
from coordination.choreography._process import Process, Undo
from coordination.choreography._wiring import Wired
from coordination.errors import JoinTimeout

__all__ = ["Timing"]

_FAILED = EntryKind.FAILED.value
_LATE = EntryKind.LATE_RESULT.value
_RUNNING = WorkflowStatus.RUNNING


class Timing:
    """The timing half of `Choreography` (which provides everything declared here)."""

    clock: Clock
    random: Callable[[], float]
    join_timeout: float
    _active: dict[str, Process]
    _finished: OrderedDict[str, Process]
    _deadlines: OrderedDict[tuple[str, str], float]
    _lock: threading.Lock
    _wired: dict[str, Wired]
    _finish: Callable[[Process, WorkflowStatus], None]
    _publish: Callable[..., None]  # (process, messages, cause, publisher, handled=None)
    _owe: Callable[[Process, Undo | None], None]
    _undo_next: Callable[[Process], None]

    def _late_handler(
        self, process: Process, wired: Wired, attempt: int
    ) -> Callable[[bool, Any], None]:
        def arrived(ok: bool, value: Any) -> None:
            with process.lock:
                succeeded = process.outcomes.get(wired.node.key)
                if succeeded is None:  # the action has not settled: decide once it has
                    process.late.setdefault(wired.node.key, []).append((attempt, ok, value))
                    return
            self._late_result(process, wired, attempt, ok, value, succeeded)
            if ok and not succeeded:
                self._owe(process, process.undo_for(wired, value, True, []))

        return arrived

    def _late_result(
        self, process: Process, wired: Wired, attempt: int, ok: bool, value: Any, succeeded: bool
    ) -> None:
        """Journal what a timed-out attempt returned once its action had settled."""
        detail = (
            f"timed-out attempt {attempt} returned late: "
            + ("left alone (the action succeeded)" if ok and succeeded else "")
            + ("undoing it now" if ok and not succeeded else "")
            + ("" if ok else "it failed")
        )
        process.add_rows(
            (
                _LATE, wired.node.declared.participant, wired.node.declared.name,
                process.correlation_id, None, attempt, self.clock.now(), None, None,
                None if ok else describe(value), detail,
            )
        )  # fmt: skip

    def _late_undo(self, process: Process, undo: Undo, attempts: Attempts) -> None:
        """Undo what ended after the saga, on this thread (retrying with the clock's waits)."""
        plan = attempts.plan
        key = undo.wired.node.key
        while True:
            ctx = attempts.begin()
            try:
                result = plan.invoke([undo.message], ctx)
                attempts.succeeded(result)
            except Exception as error:
                delay = attempts.failed(error)
                process.take_rows(attempts)
                if delay is None:
                    with process.lock:
                        process.failure = (
                            f"{process.failure}; then the late undo of {key} failed: "
                            f"{describe(error)}; still applied: {key}"
                        )
                        ended = process.finished_at is not None
                        if not ended:  # the saga still runs: it ends COMPENSATION_FAILED
                            process.status = WorkflowStatus.COMPENSATION_FAILED
                    if ended:
                        self._finish(process, WorkflowStatus.COMPENSATION_FAILED)
                    return
                self.clock.sleep(delay)
                continue
            process.take_rows(attempts)
            with process.lock:
                process.mark_undone(key)
            outputs = (result,) if isinstance(result, Message) else ()
            participant = undo.wired.node.declared.participant
            self._publish(process, outputs, process.failure_id, participant, f"{key}:undo")
            return

    def check_deadlines(self) -> list[str]:
        """Fail the flows whose joins waited past `join_timeout`; their correlation ids."""
        now = self.clock.monotonic()
        expired: list[tuple[str, str]] = []
        with self._lock:
            while self._deadlines:
                (correlation_id, key), deadline = next(iter(self._deadlines.items()))
                if deadline > now:
                    break
                del self._deadlines[(correlation_id, key)]
                expired.append((correlation_id, key))
        failed: list[str] = []
        for correlation_id, key in expired:
            process = self._active.get(correlation_id)
            if process is None:
                continue
            with process.lock:
                waiting = process.joins.pop(key, None)
                if waiting is None or process.status is not _RUNNING:
                    continue
                wired = self._wired[key]
                missing = [
                    t.__name__
                    for i, t in enumerate(wired.node.signature.inputs)
                    if i not in waiting
                ]
                error = JoinTimeout(
                    f"{key} waited {self.join_timeout:g}s for {', '.join(missing)} of "
                    f"correlation {correlation_id}"
                )
                taken = process.fail(f"{key}: {describe(error)}")
            process.add_rows(
                (
                    _FAILED, wired.node.declared.participant, wired.node.declared.name,
                    correlation_id, None, 0, self.clock.now(), None, None, describe(error),
                    "join timed out",
                )
            )  # fmt: skip
            for other, attempt, ok, value in taken:
                self._late_result(process, other, attempt, ok, value, False)
            self._publish(
                process,
                (
                    ActionFailed(
                        correlation_id=correlation_id,
                        action=key,
                        attempts=0,
                        error=describe(error),
                    ),
                ),
                None,
                wired.node.declared.participant,
            )
            self._undo_next(process)
            failed.append(correlation_id)
        return failed

    def _on_handler_failed(self, failure: HandlerFailed) -> None:
        process = self._active.get(failure.correlation_id) or self._finished.get(
            failure.correlation_id
        )
        if process is None or failure.handler.startswith("coordination.choreography"):
            return
        process.add_rows(
            (
                _FAILED, "subscriber", failure.handler, failure.correlation_id,
                failure.message_id, 1, self.clock.now(), None, None, failure.error,
                f"a subscriber failed on {failure.message_type}; the flow goes on",
            )
        )  # fmt: skip
