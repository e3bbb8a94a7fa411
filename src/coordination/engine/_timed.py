"""A sync attempt with a timeout: run on a daemon thread, abandoned at the deadline.

Python cannot stop a thread, so a timed-out sync attempt keeps running; whatever it returns
later is handed to `on_late` on the thread it returns on. The same holds when the wait itself
is interrupted (Ctrl-C, a cancelled task): the attempt runs on, and is abandoned just the
same, so its instance stays busy until it returns. Daemon threads never delay the process's
exit, and the asyncio default executor (which is joined at exit) is not used.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from coordination.errors import AttemptTimeout

__all__ = ["ATTEMPT_THREAD", "LateHandler", "TimedAttempt", "bounded"]

#: The name prefix of the daemon threads timed attempts run on (tests wait for them).
ATTEMPT_THREAD = "coordination-attempt:"


class LateHandler(Protocol):
    """Told when an attempt is abandoned, then what it returned (or raised) after all."""

    def abandoned(self) -> None:
        """The attempt still runs but nobody waits for it now (called once, before
        `wait()` raises)."""

    def returned(self, ok: bool, value: Any) -> None:
        """The abandoned attempt finished: `(True, output)` or `(False, exception)`."""


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
                self._on_late.returned(ok, value)
            elif notify is not None:
                notify()

        # Started lazily by wait()/wait_async() so the async path can register its notifier.
        self._thread = threading.Thread(target=target, name=f"{ATTEMPT_THREAD}{name}", daemon=True)

    def _result(self) -> Any:
        if self._ok:
            return self._value
        raise self._value

    def _abandon(self) -> bool:
        """Stop waiting: True when the attempt still runs (it is abandoned now)."""
        with self._lock:  # held while told, so `returned` can never come first
            if self._done.is_set():
                return False
            self._abandoned = True
            self._on_late.abandoned()
        return True

    def _interrupted(self) -> None:
        """The wait was interrupted: abandon the attempt if its thread got going."""
        if self._thread.ident is not None:  # started (a failed start raised before it ran)
            self._abandon()

    def _timed_out(self, timeout: float) -> AttemptTimeout | None:
        if not self._abandon():
            return None
        return AttemptTimeout(f"attempt did not finish within {timeout:g}s", abandoned=True)

    def wait(self, timeout: float) -> Any:
        """Start the attempt and block up to `timeout` seconds for it."""
        try:
            self._thread.start()
            self._done.wait(timeout)
        except BaseException:  # Ctrl-C while waiting: the attempt runs on, abandoned
            self._interrupted()
            raise
        error = self._timed_out(timeout)
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
        try:
            self._thread.start()
            await asyncio.wait_for(asyncio.shield(finished), timeout)
        except TimeoutError:
            error = self._timed_out(timeout)
            if error is not None:
                raise error from None
        except BaseException:  # cancelled while waiting: the attempt runs on, abandoned
            self._interrupted()
            raise
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
