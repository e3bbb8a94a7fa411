"""Context: what a running action knows about its attempt."""

from __future__ import annotations

import logging

import pytest

from coordination import Clock, Context, SystemClock


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, monotonic: float = 100.0, now: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._now = now

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._now += seconds


def test_fields_and_defaults() -> None:
    ctx = Context("flow-1", "flow-1:Payments.charge")
    assert ctx.correlation_id == "flow-1"
    assert ctx.idempotency_key == "flow-1:Payments.charge"
    assert ctx.attempt == 1
    assert ctx.deadline is None
    assert isinstance(ctx.clock, SystemClock)
    assert ctx.message_id is None
    assert ctx.causation_id is None


def test_all_fields_given() -> None:
    clock = FakeClock()
    ctx = Context(
        "flow-2",
        "key",
        attempt=3,
        deadline=105.0,
        clock=clock,
        message_id="m-1",
        causation_id="m-0",
    )
    assert (ctx.correlation_id, ctx.idempotency_key, ctx.attempt) == ("flow-2", "key", 3)
    assert ctx.deadline == 105.0
    assert ctx.clock is clock
    assert ctx.message_id == "m-1"
    assert ctx.causation_id == "m-0"


def test_ids_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Context("flow", "key", 1, None, FakeClock(), "m-1")  # type: ignore[misc]


def test_context_has_no_stray_attributes() -> None:
    ctx = Context("flow", "key")
    with pytest.raises(AttributeError):
        ctx.anything = 1  # type: ignore[attr-defined]


def test_fake_clock_is_a_clock() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_remaining_without_deadline_is_none() -> None:
    clock = FakeClock()
    ctx = Context("flow", "key", clock=clock)
    assert ctx.remaining() is None
    clock.advance(1_000)
    assert ctx.remaining() is None


def test_remaining_counts_down_on_the_injected_clock() -> None:
    clock = FakeClock(monotonic=50.0)
    ctx = Context("flow", "key", deadline=52.5, clock=clock)
    assert ctx.remaining() == pytest.approx(2.5)
    clock.advance(2.0)
    assert ctx.remaining() == pytest.approx(0.5)
    clock.advance(0.5)
    assert ctx.remaining() == pytest.approx(0.0)


def test_remaining_is_negative_once_past_the_deadline() -> None:
    clock = FakeClock(monotonic=10.0)
    ctx = Context("flow", "key", deadline=11.0, clock=clock)
    clock.advance(4.0)
    assert ctx.remaining() == pytest.approx(-3.0)


def test_remaining_uses_monotonic_not_wall_clock() -> None:
    clock = FakeClock(monotonic=10.0, now=1_000_000.0)
    ctx = Context("flow", "key", deadline=12.0, clock=clock)
    assert ctx.remaining() == pytest.approx(2.0)


def test_logger_is_an_adapter_carrying_ids(caplog: pytest.LogCaptureFixture) -> None:
    ctx = Context("flow-42", "flow-42:Payments.charge")
    assert isinstance(ctx.logger, logging.LoggerAdapter)
    assert ctx.logger is ctx.logger  # made once
    assert ctx.logger.extra == {
        "correlation_id": "flow-42",
        "idempotency_key": "flow-42:Payments.charge",
    }
    with caplog.at_level(logging.INFO, logger="coordination"):
        ctx.logger.info("charging %s", "o-1")
    (record,) = caplog.records
    assert record.getMessage() == "charging o-1"
    assert record.name == "coordination.participant"
    assert record.levelno == logging.INFO
    assert record.correlation_id == "flow-42"  # type: ignore[attr-defined]
    assert record.idempotency_key == "flow-42:Payments.charge"  # type: ignore[attr-defined]


def test_each_context_logs_its_own_correlation(caplog: pytest.LogCaptureFixture) -> None:
    first = Context("flow-a", "a")
    second = Context("flow-b", "b")
    with caplog.at_level(logging.WARNING, logger="coordination.participant"):
        first.logger.warning("one")
        second.logger.warning("two")
        first.logger.debug("not captured at WARNING")
    assert [(r.getMessage(), r.correlation_id) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("one", "flow-a"),
        ("two", "flow-b"),
    ]


def test_repr_shows_ids_attempt_and_deadline() -> None:
    ctx = Context("flow", "key", attempt=2, deadline=3.5, clock=FakeClock())
    assert (
        repr(ctx)
        == "Context(correlation_id='flow', idempotency_key='key', attempt=2, deadline=3.5)"
    )
