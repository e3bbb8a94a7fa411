"""A sync attempt with a timeout: run on a daemon thread, abandoned at the deadline.

Python cannot stop a thread, so a timed-out sync attempt keeps running; whatever it returns
later is handed to `on_late` on the thread it returns on. Daemon threads never delay the
process's exit, and the asyncio default executor (which is joined at exit) is not used.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from coordination.errors import AttemptTimeout

__all__ = ["ATTEMPT_THREAD", "LateHandler", "TimedAttempt", "bounded"]

#: The name prefix of the daemon threads timed attempts run on (tests wait for them).
ATTEMPT_THREAD = "coordination-attempt:"

LateHandler = Callable[[bool, Any], None]


class TimedAttempt:
    """One attempt on its own daemon thread; `wait()` or `wait_async()` for its result."""

    __slots__ = ("_abandoned", "_done", "_lock", "_notify", "_ok", "_on_late", "_thread", "_value")

    def __init__(self, call: Callable[[], Any], on_late: LateHandler, name: str) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self._ok = False
        self._value: Any = None
        self._on_late = on_late
        self._notify: Callable[[], object] | None = None
        self._start(call, name)

    def _start(self, call: Callable[[], Any], name: str) -> None:
        def target() -> None:
            try:
                value, ok = call(), True
            except BaseException as error:  # handed over, not swallowed
                value, ok = error, False
            notify = None
            with self._lock:
                self._ok, self._value = ok, value
                late = self._abandoned
                if not late:
                    self._done.set()
                    notify = self._notify
            if late:
                self._on_late(ok, value)
            elif notify is not None:
                notify()

        # Started lazily by wait()/wait_async() so the async path can register its notifier.
        self._thread = threading.Thread(target=target, name=f"{ATTEMPT_THREAD}{name}", daemon=True)

    def _result(self) -> Any:
        if self._ok:
            return self._value
        raise self._value

    def _abandon(self, timeout: float) -> AttemptTimeout | None:
        with self._lock:
            if self._done.is_set():
                return None
            self._abandoned = True
        return AttemptTimeout(f"attempt did not finish within {timeout:g}s")

    def wait(self, timeout: float) -> Any:
        """Start the attempt and block up to `timeout` seconds for it."""
        self._thread.start()
        self._done.wait(timeout)
        error = self._abandon(timeout)
        if error is not None:
            raise error
        return self._result()

    async def wait_async(self, timeout: float) -> Any:
        """Start the attempt and await it up to `timeout` seconds, without blocking the loop."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def wake() -> None:
            if not finished.done():
                finished.set_result(None)

        self._notify = lambda: loop.call_soon_threadsafe(wake)
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(finished), timeout)
        except TimeoutError:
            error = self._abandon(timeout)
            if error is not None:
                raise error from None
        return self._result()


async def bounded(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    """Await `awaitable`, cancelling it after `timeout` seconds with `AttemptTimeout`.

    Only running out of time becomes `AttemptTimeout`: a `TimeoutError` the awaited code
    raises itself is its own failure and passes through unchanged.
    """
    if timeout is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # it failed while being cancelled: the timeout still stands
            pass
        raise AttemptTimeout(f"attempt did not finish within {timeout:g}s")
    return task.result()
