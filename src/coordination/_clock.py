"""Time as the runners see it: injectable, so backoff and deadlines are testable without waiting.

Attempt timeouts are real time (a thread or a task is cut off); everything else — backoff
waits, step deadlines, journal timestamps — goes through a `Clock`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What a runner needs of time."""

    def now(self) -> float:
        """Wall-clock time in seconds since the epoch, for timestamps."""
        ...

    def monotonic(self) -> float:
        """A clock that never goes back, for deadlines and durations."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds`."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    # The C functions themselves, not methods calling them: the runners read the clock
    # several times per step, and a Python-level call costs more than the read.
    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"
