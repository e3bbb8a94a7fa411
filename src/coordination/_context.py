"""Context: what a running action may know about the attempt it is in."""

from __future__ import annotations

import logging

from coordination._clock import Clock, SystemClock

__all__ = ["Context"]

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
        "_logger",
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
