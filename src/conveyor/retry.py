"""Retry policies: when a failed attempt runs again, and after how long."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from conveyor.errors import ConfigurationError

BackoffFunction = Callable[[int, BaseException | None], float]
Backoff = Literal["fixed", "exponential"] | BackoffFunction


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt, so a job runs at most `max_retries + 1` times.

    Delay before retry n (n = 1, 2, ...): fixed -> `delay`; exponential -> `delay * 2**(n-1)`,
    capped at `max_delay`; a callable -> `backoff(n, exc)`. With `jitter`, the delay is drawn
    uniformly from [delay/2, delay], so jobs that failed together do not retry together.
    """

    max_retries: int = 3
    backoff: Backoff = "exponential"
    delay: float = 1.0
    max_delay: float = 3600.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(f"max_retries={self.max_retries!r}: use an integer >= 0")
        if not callable(self.backoff) and self.backoff not in ("fixed", "exponential"):
            raise ConfigurationError(f"retry_backoff={self.backoff!r}: use 'fixed', 'exponential', "
                                     "True (exponential), False (fixed) or a function (attempt, exc) -> seconds")
        for name in ("delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"retry_{name}={value!r}: use a number of seconds >= 0")
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise ConfigurationError(f"retry_on={self.retry_on!r}: use a tuple of exception classes")

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def retries(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on)

    def delay_for(self, retry_number: int, exc: BaseException | None = None) -> float:
        if callable(self.backoff):
            seconds = float(self.backoff(retry_number, exc))
        elif self.backoff == "fixed":
            seconds = self.delay
        else:
            seconds = min(self.max_delay, self.delay * 2 ** (retry_number - 1))
        seconds = max(0.0, seconds)
        if self.jitter and seconds > 0:
            seconds = self.rng.uniform(seconds / 2, seconds)
        return seconds


def normalise_backoff(value: Backoff | bool) -> Backoff:
    """Accept Celery's spelling too: retry_backoff=True means exponential, False fixed."""
    if value is True:
        return "exponential"
    if value is False:
        return "fixed"
    return value
