"""Retry policies: delays, caps, jitter and which errors retry, with a seeded random source."""

from __future__ import annotations

import random

import pytest

from conveyor import ConfigurationError, RetryPolicy
from conveyor.retry import normalise_backoff


def test_fixed_backoff_waits_the_same_each_time() -> None:
    policy = RetryPolicy(backoff="fixed", delay=2.5, jitter=False)
    assert [policy.delay_for(n) for n in (1, 2, 5)] == [2.5, 2.5, 2.5]


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff="exponential", delay=1.0, max_delay=10.0, jitter=False)
    assert [policy.delay_for(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_custom_backoff_gets_the_retry_number_and_the_error() -> None:
    seen: list[tuple[int, str]] = []

    def backoff(n: int, exc: BaseException | None) -> float:
        seen.append((n, type(exc).__name__))
        return n * 7.0

    policy = RetryPolicy(backoff=backoff, jitter=False)
    assert policy.delay_for(3, TimeoutError()) == 21.0
    assert seen == [(3, "TimeoutError")]


def test_jitter_draws_between_half_and_the_full_delay() -> None:
    policy = RetryPolicy(backoff="fixed", delay=10.0, jitter=True, rng=random.Random(7))
    delays = [policy.delay_for(1) for _ in range(500)]
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert max(delays) - min(delays) > 4  # spread, not one value


def test_negative_custom_delay_is_clamped_to_zero() -> None:
    assert RetryPolicy(backoff=lambda n, e: -5, jitter=True).delay_for(1) == 0.0


def test_retry_on_filters_by_exception_class() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError, TimeoutError))
    assert policy.retries(ConnectionRefusedError()) and policy.retries(TimeoutError())
    assert not policy.retries(ValueError())


def test_max_attempts_is_one_more_than_max_retries() -> None:
    assert RetryPolicy(max_retries=0).max_attempts == 1
    assert RetryPolicy(max_retries=4).max_attempts == 5


@pytest.mark.parametrize("bad", [{"max_retries": -1}, {"max_retries": 1.5}, {"backoff": "linear"},
                                 {"delay": -1}, {"max_delay": "soon"}, {"retry_on": (ValueError, "x")}])
def test_invalid_policies_are_refused_naming_the_field(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as error:
        RetryPolicy(**bad)  # type: ignore[arg-type]
    field = next(iter(bad)).replace("backoff", "retry_backoff")
    assert field.split("_")[-1] in str(error.value)


def test_celery_spelling_of_backoff() -> None:
    assert normalise_backoff(True) == "exponential"
    assert normalise_backoff(False) == "fixed"
