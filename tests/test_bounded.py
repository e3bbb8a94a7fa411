"""`bounded`: only running out of time is an AttemptTimeout."""

from __future__ import annotations

import asyncio

import pytest

from coordination.engine._timed import bounded
from coordination.errors import AttemptTimeout


def test_a_timeout_the_code_raises_itself_passes_through() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("the gateway said so")

    with pytest.raises(TimeoutError, match="gateway") as caught:
        asyncio.run(bounded(own_timeout(), 5.0))
    assert not isinstance(caught.value, AttemptTimeout)


def test_running_out_of_time_cancels_and_raises_attempt_timeout() -> None:
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(AttemptTimeout, match=r"within 0\.01s"):
        asyncio.run(bounded(slow(), 0.01))
    assert cancelled == [True]


def test_results_and_no_timeout_pass_through() -> None:
    async def value() -> int:
        return 7

    assert asyncio.run(bounded(value(), 1.0)) == 7
    assert asyncio.run(bounded(value(), None)) == 7
