"""One attempt of an action or a compensation, sync or async, bounded by its timeout.

The one executor both runners use, for forward actions and undos alike:

- an async callable is awaited and cancelled at its timeout (`bounded`);
- a sync callable with a timeout runs on a daemon thread and is abandoned at the deadline
  (`TimedAttempt`): what it returns later is handed to `on_late`;
- a sync callable without a timeout runs on the calling thread, or, from a coroutine that
  must not block its loop, on the loop's executor.

A sync callable that raises `StopIteration` fails its attempt with a `RuntimeError`: the
exception cannot cross a thread or a coroutine boundary (asyncio's executor would hang), so
every path reports it the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from coordination._context import Context
from coordination.engine._attempts import ActionPlan
from coordination.engine._timed import LateHandler, TimedAttempt, bounded

__all__ = ["attempt_async", "attempt_sync", "loop_running"]


def loop_running() -> bool:
    """Whether this thread runs an event loop (a sync call here would block it).

    Asked before every choreographed attempt: `asyncio._get_running_loop` (in asyncio's
    `__all__`, the low-level form of `get_running_loop`) answers without raising and
    catching a `RuntimeError` each time.
    """
    return asyncio._get_running_loop() is not None


def _stop_iteration(plan: ActionPlan) -> RuntimeError:
    return RuntimeError(
        f"{plan.declared.qualname} raised StopIteration, which cannot cross a thread or a "
        f"coroutine; raise another exception"
    )


def _guarded(plan: ActionPlan, inputs: list[Any], ctx: Context | None) -> Any:
    try:
        return plan.invoke(inputs, ctx)
    except StopIteration as error:
        raise _stop_iteration(plan) from error


def attempt_sync(
    plan: ActionPlan,
    inputs: list[Any],
    ctx: Context | None,
    timeout: float | None,
    on_late: LateHandler,
    runner: asyncio.Runner | None,
) -> Any:
    """Make one attempt on this thread (an async callable runs on `runner`'s loop)."""
    if plan.is_async:
        if runner is None:
            return asyncio.run(bounded(plan.invoke(inputs, ctx), timeout))
        return runner.run(bounded(plan.invoke(inputs, ctx), timeout))
    if timeout is None:
        try:  # _guarded, inline: this is every sync step's path
            return plan.invoke(inputs, ctx)
        except StopIteration as error:
            raise _stop_iteration(plan) from error
    timed = TimedAttempt(lambda: _guarded(plan, inputs, ctx), on_late, plan.key)
    return timed.wait(timeout)


async def attempt_async(
    plan: ActionPlan,
    inputs: list[Any],
    ctx: Context | None,
    timeout: float | None,
    on_late: LateHandler,
    *,
    offload: bool = True,
) -> Any:
    """Make one attempt without blocking the running loop.

    `offload`: run a sync callable on the loop's executor (False when the caller already
    runs on a worker thread of its own).
    """
    if plan.is_async:
        return await bounded(plan.invoke(inputs, ctx), timeout)
    if timeout is not None:
        timed = TimedAttempt(lambda: _guarded(plan, inputs, ctx), on_late, plan.key)
        return await timed.wait_async(timeout)
    if not offload:
        return _guarded(plan, inputs, ctx)
    call: Callable[[ActionPlan, list[Any], Context | None], Any] = _guarded
    return await asyncio.get_running_loop().run_in_executor(None, call, plan, inputs, ctx)
