"""A cascade: one publishing thread's (or task's) queue, delivered breadth-first.

What a handler publishes is queued behind what is already queued (no recursion, however
long the chain); delayed deliveries (retries) wait in a heap and the cascade sleeps only
when nothing else is queued. A context variable holds the current cascade, so each thread
or asyncio task drains its own, and publishing from several at once is safe.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from coordination._clock import Clock
from coordination._messages import Envelope, Message

__all__ = [
    "Deliver",
    "DeliverAsync",
    "Dispatch",
    "current",
    "delivering",
    "drive",
    "drive_async",
    "release_due",
]

#: How a bus delivers one envelope to its handlers (sync: within this cascade).
Deliver = Callable[[Envelope[Message], "Dispatch"], None]
DeliverAsync = Callable[[Envelope[Message]], Awaitable[None]]


class Dispatch:
    """One cascade: what is queued, what is delayed, on one thread or task."""

    __slots__ = ("current", "delayed", "done", "queue", "runner", "sequence")

    def later(self, due: float, clock: Clock, callback: Callable[[], object]) -> None:
        """Deliver `callback` at `due` on `clock` (ties in the order they were asked)."""
        self.sequence += 1
        heapq.heappush(self.delayed, (due, self.sequence, clock, callback))

    def __init__(self) -> None:
        #: (deliver, deliver_async, envelope) to deliver, or a callable to run, in FIFO order.
        self.queue: deque[Any] = deque()
        #: (due on the clock, tie-breaker, clock, callable), earliest first.
        self.delayed: list[tuple[float, int, Clock, Callable[[], object]]] = []
        self.sequence = 0
        self.done = False
        self.runner: asyncio.Runner | None = None
        #: The envelope being delivered: what a handler publishes is caused by it.
        self.current: Envelope[Message] | None = None


current: ContextVar[Dispatch | None] = ContextVar("coordination_dispatch", default=None)


def delivering() -> Envelope[Message] | None:
    """The envelope this thread's (or task's) cascade is delivering now, if any.

    A handler that needs the envelope's ids but no `Context` reads them here, so the bus
    delivers to it as a plain handler (no Context made per delivery).
    """
    dispatch = current.get()
    return None if dispatch is None else dispatch.current


def drive(dispatch: Dispatch) -> None:
    """Deliver everything queued in `dispatch`, and what that causes, on this thread."""
    token = current.set(dispatch)
    try:
        queue = dispatch.queue
        while True:
            while queue:
                if dispatch.delayed:
                    release_due(dispatch)
                item = queue.popleft()
                if type(item) is tuple:
                    deliver, _, envelope = item
                    dispatch.current = envelope
                    deliver(envelope, dispatch)
                    dispatch.current = None
                else:
                    result = item()
                    if inspect.isawaitable(result):
                        if dispatch.runner is None:
                            dispatch.runner = asyncio.Runner()
                        dispatch.runner.run(result)  # type: ignore[arg-type]
            if not dispatch.delayed:
                break
            due, _, clock, callback = heapq.heappop(dispatch.delayed)
            wait = due - clock.monotonic()
            if wait > 0:
                clock.sleep(wait)
            queue.append(callback)
    finally:
        dispatch.done = True
        current.reset(token)
        if dispatch.runner is not None:
            dispatch.runner.close()


async def drive_async(dispatch: Dispatch) -> None:
    """Like `drive`, awaiting async handlers and delayed waits on the running loop."""
    token = current.set(dispatch)
    try:
        queue = dispatch.queue
        while True:
            while queue:
                if dispatch.delayed:
                    release_due(dispatch)
                item = queue.popleft()
                if type(item) is tuple:
                    _, deliver_async, envelope = item
                    dispatch.current = envelope
                    await deliver_async(envelope)
                    dispatch.current = None
                else:
                    result = item()
                    if inspect.isawaitable(result):
                        await result
            if not dispatch.delayed:
                break
            due, _, clock, callback = heapq.heappop(dispatch.delayed)
            wait = due - clock.monotonic()
            if wait > 0:
                await clock.sleep_async(wait)
            queue.append(callback)
    finally:
        dispatch.done = True
        current.reset(token)


def release_due(dispatch: Dispatch) -> None:
    """Move delayed callbacks whose time has come to the back of the queue."""
    delayed = dispatch.delayed
    while delayed and delayed[0][0] <= delayed[0][2].monotonic():
        _, _, _, callback = heapq.heappop(delayed)
        dispatch.queue.append(callback)
