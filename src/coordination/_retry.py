"""Retry: how often and how patiently an action is tried, the same under both runners.

A small frozen value, like tenacity's strategies, so an action's policy reads in its
declaration. The runner, not the policy, owns time: waits use the runner's injectable clock
and jitter its injectable random source, so tests never sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from coordination.errors import DefinitionError, NonRetryable

__all__ = ["NEVER_RETRIED", "Retry"]

#: Errors no policy retries: refusals, invalid data and programming errors stay wrong.
NEVER_RETRIED: tuple[type[BaseException], ...] = (NonRetryable, ValidationError, TypeError)


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy: `attempts` counts all tries; waits grow as `backoff * 2**(n-1)`.

    The wait before try n+1 is capped at `max_backoff` and jittered by ±10%. `deadline`
    (seconds) bounds all attempts of one step together: no attempt starts, and no wait ends,
    past it. Only exceptions matching `retry_on` are retried, and never `NonRetryable`,
    `pydantic.ValidationError` or `TypeError`.
    """

    attempts: int = 3
    backoff: float = 0.0
    max_backoff: float = 30.0
    deadline: float | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise DefinitionError(f"Retry(attempts=...) must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise DefinitionError(
                f"Retry(attempts={self.attempts}) must be at least 1 (it counts the first try)"
            )
        if self.backoff < 0 or self.max_backoff < 0:
            raise DefinitionError("Retry backoff and max_backoff must be >= 0 seconds")
        if self.deadline is not None and self.deadline <= 0:
            raise DefinitionError(f"Retry(deadline={self.deadline}) must be > 0 seconds or None")
        retry_on = self.retry_on
        if not isinstance(retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
        ):
            raise DefinitionError(
                f"Retry(retry_on=...) must be a tuple of exception classes, got {retry_on!r}"
            )

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether a failure of try number `attempt` (1-based) with `error` earns another try."""
        return (
            attempt < self.attempts
            and not isinstance(error, NEVER_RETRIED)
            and isinstance(error, self.retry_on)
        )

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait after failed try `attempt` before the next, jittered by ±10%."""
        if self.backoff == 0:
            return 0.0
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return min(base * (0.9 + 0.2 * random()), self.max_backoff)


#: What a bare `@action` does: one attempt.
ONCE = Retry(attempts=1)
#: What a compensation does unless told otherwise: undoing must try hard.
COMPENSATION_DEFAULT = Retry(attempts=5, backoff=0.1)
