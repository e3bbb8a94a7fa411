"""Context: what a running action may know about the attempt it is in."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import NamedTuple

from coordination._clock import Clock, SystemClock
from coordination._messages import Message
from coordination.errors import UsageError

__all__ = ["Context", "Scheduled"]


class Scheduled(NamedTuple):
    """A message an attempt scheduled (`ctx.schedule`): kept only if the attempt succeeds."""

    message: Message
    #: Seconds after the step's record is committed that it is due, on the runner's clock.
    after: float
    #: The instance it is for: None for the scheduling instance itself, else the id of the
    #: instance its start message starts (the next period of a repeating process).
    workflow_id: str | None


_LOGGER = logging.getLogger("coordination.participant")
_SYSTEM_CLOCK = SystemClock()


class Context:
    """Handed to an action that declares a `ctx: Context` parameter.

    `idempotency_key` is the same for every attempt of one step of one flow instance, across
    retries and crash recoveries: use it to make an effect happen exactly once. A
    compensation gets the step's key plus `:undo`. `deadline` is on `clock.monotonic()`'s
    scale: the nearer of this attempt's timeout and the step's retry deadline, or None.
    """

    __slots__ = (
        "_check_schedule",
        "_logger",
        "_scheduled",
        "attempt",
        "causation_id",
        "clock",
        "correlation_id",
        "deadline",
        "idempotency_key",
        "message_id",
    )

    def __init__(
        self,
        correlation_id: str,
        idempotency_key: str,
        attempt: int = 1,
        deadline: float | None = None,
        clock: Clock = _SYSTEM_CLOCK,
        *,
        message_id: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        self.correlation_id = correlation_id
        self.idempotency_key = idempotency_key
        self.attempt = attempt
        self.deadline = deadline
        self.clock = clock
        self.message_id = message_id
        self.causation_id = causation_id
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None
        #: What this attempt scheduled (None until it schedules something).
        self._scheduled: list[Scheduled] | None = None
        #: Checks a schedule against the flow (None: the action may not schedule, e.g. an
        #: undo).
        self._check_schedule: Callable[[Message, str | None], None] | None = None

    def schedule(
        self, message: Message, *, after: float | dt.timedelta, workflow_id: str | None = None
    ) -> None:
        """Send a message later, `after` seconds (or a `timedelta`) on the runner's clock.

        Without `workflow_id` the message is for this flow instance: one of its `wait(...)`
        steps waits for it (the eShop grace period: schedule `GracePeriodOver` and wait for
        `GracePeriodOver | OrderCancelled`). With `workflow_id`, `message` is the flow's
        start message and starts instance `workflow_id` when due: the next period of a
        repeating process (Temporal's continue-as-new). The schedule is committed with the
        step's record and dropped if this attempt fails; it fires exactly once across
        crashes, by `resume_due()` (and the workers' loop).
        """
        if self._check_schedule is None:
            raise UsageError(
                "ctx.schedule() is for a flow's forward actions; a compensation cannot "
                "schedule (an undo must not start new work)"
            )
        if not isinstance(message, Message):
            raise UsageError(f"ctx.schedule() takes a message, got {type(message).__name__}")
        if isinstance(after, dt.timedelta):
            after = after.total_seconds()
        if isinstance(after, bool) or not isinstance(after, int | float) or not after > 0:
            raise UsageError(
                f"ctx.schedule(after=...) is a positive number of seconds or a timedelta, got "
                f"{after!r}"
            )
        if workflow_id is not None and (not isinstance(workflow_id, str) or not workflow_id):
            raise UsageError("ctx.schedule(workflow_id=...) takes a non-empty string")
        if workflow_id == self.correlation_id:
            workflow_id = None  # its own instance, by name
        self._check_schedule(message, workflow_id)
        scheduled = Scheduled(message, float(after), workflow_id)
        if self._scheduled is None:
            self._scheduled = [scheduled]  # made by the first schedule: most attempts make none
        else:
            self._scheduled.append(scheduled)

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry `correlation_id` and `idempotency_key` as extras."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                _LOGGER,
                {"correlation_id": self.correlation_id, "idempotency_key": self.idempotency_key},
            )
        return self._logger

    def remaining(self) -> float | None:
        """Seconds left before `deadline` (negative once past it), or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - self.clock.monotonic()

    def __repr__(self) -> str:
        return (
            f"Context(correlation_id={self.correlation_id!r}, "
            f"idempotency_key={self.idempotency_key!r}, attempt={self.attempt}, "
            f"deadline={self.deadline!r})"
        )
