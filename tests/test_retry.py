"""Retry: validation, which failures earn another try, and how long to wait before it."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from coordination import NonRetryable, Retry
from coordination._retry import COMPENSATION_DEFAULT, NEVER_RETRIED, ONCE
from coordination.errors import (
    AttemptTimeout,
    CoordinationError,
    DefinitionError,
    OutputTypeError,
)


class CardDeclined(NonRetryable):
    pass


class Flaky(Exception):
    pass


class Other(Exception):
    pass


class Strict(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        Strict(n="not a number")  # type: ignore[arg-type]
    except ValidationError as error:
        return error
    raise AssertionError("expected a ValidationError")


def _constant(value: float) -> Any:
    return lambda: value


# -- validation ----------------------------------------------------------------------------


def test_defaults() -> None:
    retry = Retry()
    assert retry.attempts == 3
    assert retry.backoff == 0.0
    assert retry.max_backoff == 30.0
    assert retry.deadline is None
    assert retry.retry_on == (Exception,)


def test_retry_is_frozen_and_compares_by_value() -> None:
    retry = Retry(attempts=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        retry.attempts = 5  # type: ignore[misc]
    assert Retry(attempts=2, backoff=0.5) == Retry(attempts=2, backoff=0.5)
    assert Retry(attempts=2) != Retry(attempts=3)
    assert hash(Retry(attempts=2)) == hash(Retry(attempts=2))


def test_shared_policies() -> None:
    assert Retry(attempts=1) == ONCE
    assert Retry(attempts=5, backoff=0.1) == COMPENSATION_DEFAULT


@pytest.mark.parametrize("attempts", [0, -1, -100])
def test_attempts_below_one(attempts: int) -> None:
    with pytest.raises(DefinitionError, match="at least 1"):
        Retry(attempts=attempts)


@pytest.mark.parametrize("attempts", [True, False, 2.0, "3"])
def test_attempts_must_be_an_int(attempts: Any) -> None:
    with pytest.raises(DefinitionError, match="must be an int"):
        Retry(attempts=attempts)


@pytest.mark.parametrize(
    "keywords", [{"backoff": -0.1}, {"max_backoff": -1.0}, {"backoff": -1, "max_backoff": 5}]
)
def test_negative_backoff(keywords: dict[str, float]) -> None:
    with pytest.raises(DefinitionError, match="backoff"):
        Retry(**keywords)


@pytest.mark.parametrize("deadline", [0, 0.0, -1.0])
def test_deadline_must_be_positive(deadline: float) -> None:
    with pytest.raises(DefinitionError, match="deadline"):
        Retry(deadline=deadline)


def test_valid_deadline() -> None:
    assert Retry(deadline=0.5).deadline == 0.5


@pytest.mark.parametrize(
    "retry_on",
    [
        [Exception],
        Exception,
        (Exception, "ValueError"),
        (Exception(),),
        (int,),
        "Exception",
    ],
)
def test_retry_on_must_be_a_tuple_of_exception_classes(retry_on: Any) -> None:
    with pytest.raises(DefinitionError, match="retry_on"):
        Retry(retry_on=retry_on)


def test_retry_on_accepts_base_exception_subclasses() -> None:
    assert Retry(retry_on=(KeyboardInterrupt, Flaky)).retry_on == (KeyboardInterrupt, Flaky)
    assert Retry(retry_on=()).retry_on == ()


def test_definition_errors_are_coordination_errors() -> None:
    with pytest.raises(CoordinationError):
        Retry(attempts=0)


# -- retries() -----------------------------------------------------------------------------


def test_attempts_count_all_tries() -> None:
    retry = Retry(attempts=3)
    error = Flaky()
    assert [retry.retries(error, attempt) for attempt in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]


def test_a_single_attempt_never_retries() -> None:
    assert Retry(attempts=1).retries(Flaky(), 1) is False


@pytest.mark.parametrize(
    "error",
    [
        NonRetryable("declined"),
        CardDeclined("declined"),
        TypeError("bad call"),
        OutputTypeError("wrong output"),
        _validation_error(),
    ],
)
def test_never_retried_whatever_retry_on_says(error: BaseException) -> None:
    assert isinstance(error, NEVER_RETRIED)
    for retry in (Retry(attempts=10), Retry(attempts=10, retry_on=(BaseException,))):
        assert retry.retries(error, 1) is False


def test_never_retried_even_when_named_in_retry_on() -> None:
    retry = Retry(attempts=10, retry_on=(NonRetryable, TypeError, ValidationError))
    assert retry.retries(CardDeclined(), 1) is False
    assert retry.retries(TypeError(), 1) is False
    assert retry.retries(_validation_error(), 1) is False


def test_value_error_is_retried_unlike_validation_error() -> None:
    # pydantic's ValidationError is a ValueError; plain ValueErrors stay retryable.
    assert Retry(attempts=2).retries(ValueError("transient"), 1) is True


def test_retry_on_limits_what_is_retried() -> None:
    retry = Retry(attempts=5, retry_on=(Flaky, AttemptTimeout))
    assert retry.retries(Flaky(), 1) is True
    assert retry.retries(AttemptTimeout("slow"), 2) is True
    assert retry.retries(Other(), 1) is False
    assert retry.retries(RuntimeError(), 1) is False


def test_retry_on_matches_subclasses() -> None:
    class VeryFlaky(Flaky):
        pass

    assert Retry(attempts=2, retry_on=(Flaky,)).retries(VeryFlaky(), 1) is True


def test_timeouts_are_retried_by_default() -> None:
    assert Retry(attempts=2).retries(AttemptTimeout("slow"), 1) is True


def test_base_exceptions_are_not_retried_by_default() -> None:
    assert Retry(attempts=5).retries(KeyboardInterrupt(), 1) is False


def test_empty_retry_on_retries_nothing() -> None:
    assert Retry(attempts=5, retry_on=()).retries(Flaky(), 1) is False


# -- delay() -------------------------------------------------------------------------------


def test_no_backoff_means_no_wait() -> None:
    retry = Retry(attempts=5)

    def never_called() -> float:
        raise AssertionError("no jitter without backoff")

    assert [retry.delay(n, never_called) for n in (1, 2, 3, 10)] == [0.0, 0.0, 0.0, 0.0]


def test_exponential_backoff_without_jitter_offset() -> None:
    retry = Retry(attempts=10, backoff=0.5)
    # random() -> 0.5 gives a factor of exactly 1.0.
    assert [retry.delay(n, _constant(0.5)) for n in (1, 2, 3, 4)] == pytest.approx(
        [0.5, 1.0, 2.0, 4.0]
    )


def test_backoff_is_capped_at_max_backoff() -> None:
    retry = Retry(attempts=20, backoff=1.0, max_backoff=5.0)
    delays = [retry.delay(n, _constant(0.5)) for n in range(1, 8)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0])


def test_large_attempt_numbers_stay_capped() -> None:
    assert Retry(attempts=2, backoff=1.0).delay(200, _constant(0.5)) == pytest.approx(30.0)


def test_jitter_low_end() -> None:
    retry = Retry(attempts=5, backoff=1.0)
    assert retry.delay(1, _constant(0.0)) == pytest.approx(0.9)
    assert retry.delay(3, _constant(0.0)) == pytest.approx(3.6)


def test_jitter_high_end() -> None:
    retry = Retry(attempts=5, backoff=1.0)
    assert retry.delay(1, _constant(0.999)) == pytest.approx(1.0998)
    assert retry.delay(2, _constant(0.999)) == pytest.approx(2.1996)


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.75, 0.999])
def test_jitter_stays_within_ten_percent(draw: float) -> None:
    retry = Retry(attempts=5, backoff=0.2)
    for attempt in (1, 2, 3):
        base = 0.2 * 2 ** (attempt - 1)
        delay = retry.delay(attempt, _constant(draw))
        assert 0.9 * base - 1e-12 <= delay <= 1.1 * base + 1e-12
        assert delay == pytest.approx(base * (0.9 + 0.2 * draw))


def test_jitter_never_exceeds_max_backoff() -> None:
    retry = Retry(attempts=20, backoff=1.0, max_backoff=5.0)
    assert retry.delay(10, _constant(0.999)) == 5.0
    assert retry.delay(10, _constant(0.0)) == pytest.approx(4.5)
    # Below the cap (4.0 < 4.2), upward jitter (4.0 * 1.0998) is still cut at the cap.
    near_cap = Retry(attempts=20, backoff=1.0, max_backoff=4.2)
    assert near_cap.delay(3, _constant(0.999)) == 4.2
    assert near_cap.delay(3, _constant(0.5)) == pytest.approx(4.0)
    assert near_cap.delay(3, _constant(0.0)) == pytest.approx(3.6)


def test_delays_from_a_seeded_random_source_are_bounded_and_reproducible() -> None:
    retry = Retry(attempts=10, backoff=0.1, max_backoff=1.0)
    first = [retry.delay(n, random.Random(7).random) for n in range(1, 10)]
    again = [retry.delay(n, random.Random(7).random) for n in range(1, 10)]
    assert first == again
    for n, delay in enumerate(first, start=1):
        base = min(0.1 * 2 ** (n - 1), 1.0)
        assert 0.9 * base - 1e-12 <= delay <= min(1.1 * base, 1.0) + 1e-12


# -- until the deadline, and errors given up on ------------------------------------------------


def test_attempts_none_retries_any_number_of_times() -> None:
    retry = Retry(attempts=None, backoff=0.1)
    assert retry.retries(Flaky(), 1)
    assert retry.retries(Flaky(), 10_000)
    assert not retry.retries(CardDeclined(), 1)  # never retried, whatever the count


def test_attempts_none_without_a_backoff_is_refused() -> None:
    with pytest.raises(DefinitionError, match="tight loop"):
        Retry(attempts=None)
    with pytest.raises(DefinitionError, match="tight loop"):
        Retry(attempts=None, deadline=5.0)


@pytest.mark.parametrize("attempts", [0, -1, 1.5, True, "3"])
def test_attempts_is_a_positive_int_or_none(attempts: Any) -> None:
    with pytest.raises(DefinitionError, match="attempts"):
        Retry(attempts=attempts)


def test_give_up_on_errors_are_never_retried() -> None:
    class BankDeclined(Exception):
        pass

    retry = Retry(attempts=5, give_up_on=(BankDeclined,))
    assert not retry.retries(BankDeclined(), 1)
    assert retry.retries(Flaky(), 1)
    # give_up_on wins over retry_on, subclasses included.
    narrow = Retry(attempts=5, retry_on=(Flaky,), give_up_on=(Flaky,))
    assert not narrow.retries(Flaky(), 1)


@pytest.mark.parametrize("given", [ValueError, (1,), ("ValueError",), [ValueError]])
def test_give_up_on_takes_a_tuple_of_exception_classes(given: Any) -> None:
    with pytest.raises(DefinitionError, match="give_up_on"):
        Retry(give_up_on=given)
