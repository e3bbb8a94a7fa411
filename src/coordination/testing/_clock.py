"""A virtual clock: backoff waits and deadlines advance it instantly, so no test waits."""

from __future__ import annotations

import asyncio
import threading

__all__ = ["VirtualClock"]


class VirtualClock:
    """A `Clock` whose time moves only when slept on or advanced.

    `sleeps` records every wait the runner asked for, in order, so a test can assert the
    backoff schedule without waiting for it.
    """

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._elapsed = 0.0
        self._start = start
        self._wall_start = wall_start
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._wall_start + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        with self._lock:
            self._elapsed += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._elapsed += max(seconds, 0.0)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)  # still yield, as a real sleep would

    @property
    def elapsed(self) -> float:
        """Seconds slept or advanced since creation."""
        with self._lock:
            return self._elapsed

    def __repr__(self) -> str:
        return f"VirtualClock(elapsed={self.elapsed:g}s, sleeps={len(self.sleeps)})"
