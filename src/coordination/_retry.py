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
    past it. `attempts=None` tries until the deadline, if any, else until it succeeds (it
    needs a backoff, so it never spins). Only exceptions matching `retry_on` are
    retried, never those matching `give_up_on` (a bank's own `CardDeclined`, like
    Temporal's non-retryable error types), and never `NonRetryable`,
    `pydantic.ValidationError` or `TypeError`.
    """

    attempts: int | None = 3
    backoff: float = 0.0
    max_backoff: float = 30.0
    deadline: float | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        attempts = self.attempts
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                raise DefinitionError(
                    f"Retry(attempts=...) must be an int or None, got {attempts!r}"
                )
            if attempts < 1:
                raise DefinitionError(
                    f"Retry(attempts={attempts}) must be at least 1 (it counts the first try)"
                )
        if self.backoff < 0 or self.max_backoff < 0:
            raise DefinitionError("Retry backoff and max_backoff must be >= 0 seconds")
        if self.deadline is not None and self.deadline <= 0:
            raise DefinitionError(f"Retry(deadline={self.deadline}) must be > 0 seconds or None")
        if attempts is None and self.backoff == 0:
            raise DefinitionError(
                "Retry(attempts=None) tries until the step succeeds or its deadline= passes: "
                "give it a backoff= (seconds before the second try) so it never spins in a "
                "tight loop"
            )
        for name in ("retry_on", "give_up_on"):
            kinds = getattr(self, name)
            if not isinstance(kinds, tuple) or not all(
                isinstance(kind, type) and issubclass(kind, BaseException) for kind in kinds
            ):
                raise DefinitionError(
                    f"Retry({name}=...) must be a tuple of exception classes, got {kinds!r}"
                )

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether a failure of try number `attempt` (1-based) with `error` earns another try."""
        return (
            (self.attempts is None or attempt < self.attempts)
            and not isinstance(error, NEVER_RETRIED)
            and isinstance(error, self.retry_on)
            and not isinstance(error, self.give_up_on)
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
