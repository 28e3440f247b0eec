"""When a schedule fires: a cron expression in a time zone, or a fixed interval.

Both answer the same two questions in unix seconds, which is all the scheduler asks:
the first tick strictly after a time, and the last tick at or before it. Every scheduler
process computes the same ticks from the same definition, so a tick can name its job.

Daylight saving (cron only), following Debian cron and cronsim:
- An expression with a fixed minute and hour ("30 2 * * *") runs at that wall-clock time.
  When the clock skips it (spring), it runs at the first minute that exists after it
  (02:30 becomes 03:00); when the clock repeats it (autumn), it runs once, at the first pass.
- Any other expression (a wildcard or step in the minute or hour, or six fields) follows
  real time: "*/15 * * * *" fires every 15 real minutes, twice through the repeated hour and
  not at all in the skipped one, because those wall-clock times do not exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from conveyor.errors import ConfigurationError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "[second] minute hour day-of-month month day-of-week"
FIELD_VALUES = {
    "second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31 or L, and a day the months have",
    "month": "1-12 or JAN-DEC", "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday)",
}


class Trigger(Protocol):
    def next_after(self, t: float) -> float:
        """The first tick strictly after `t`."""
        ...

    def last_at_or_before(self, t: float) -> float:
        """The newest tick at or before `t`."""
        ...

    def describe(self) -> str: ...


def zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str) or not tz:
        raise ConfigurationError(f"tz={tz!r}: give an IANA time zone name such as 'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"tz={tz!r} is not a known time zone: use an IANA name such as "
                                 "'Europe/Berlin', 'America/New_York' or 'UTC'") from None


@dataclass(frozen=True)
class Cron:
    """A cron expression: five fields, or six with leading seconds; names of months and days;
    ranges, lists and steps; Sunday as 0 or 7; @hourly, @daily, @weekly, @monthly, @yearly."""

    expression: str
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    _expanded: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise ConfigurationError(f"cron={self.expression!r}: give a cron expression ({FIELDS})")
        text = " ".join(self.expression.split())
        expanded = ALIASES.get(text.lower(), text)
        if expanded.startswith("@"):
            raise ConfigurationError(f"cron={self.expression!r}: unknown alias; use one of {', '.join(ALIASES)}")
        count = len(expanded.split())
        if count not in (5, 6):
            raise ConfigurationError(f"cron={self.expression!r} has {count} fields: use five ({FIELDS[9:]}) "
                                     f"or six with seconds first ({FIELDS})")
        try:
            next(CronSim(expanded, datetime.now(self.tz)))
        except CronSimError as exc:
            name = str(exc).removeprefix("Bad ")
            values = FIELD_VALUES.get(name)
            hint = (f"the {name} field takes {values}, with lists a,b ranges a-b and steps */n" if values
                    else f"fields are {FIELDS}")
            raise ConfigurationError(f"cron={self.expression!r}: {exc}: {hint}") from None
        object.__setattr__(self, "_expanded", expanded)

    def next_after(self, t: float) -> float:
        ticks = CronSim(self._expanded, datetime.fromtimestamp(t, self.tz))
        # Wall-clock stepping can land on the first pass of a repeated hour from inside the second.
        return next(tick for tick in (x.timestamp() for x in ticks) if tick > t)

    def last_at_or_before(self, t: float) -> float:
        # cronsim steps strictly before its start; ticks fall on whole seconds.
        ticks = CronSim(self._expanded, datetime.fromtimestamp(math.floor(t) + 1, self.tz), reverse=True)
        return next(tick for tick in (x.timestamp() for x in ticks) if tick <= t)

    def describe(self) -> str:
        return f"cron {self.expression} ({self.tz})"


@dataclass(frozen=True)
class Every:
    """Every `seconds`, on multiples of the interval since the unix epoch (so every=3600 fires
    on the hour, UTC), which every scheduler process computes alike."""

    seconds: float

    def __post_init__(self) -> None:
        value = self.seconds
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"every={self.seconds!r}: give a positive number of seconds or a timedelta")
        object.__setattr__(self, "seconds", float(value))

    def next_after(self, t: float) -> float:
        return (math.floor(t / self.seconds) + 1) * self.seconds

    def last_at_or_before(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


def make_trigger(cron: str | None, every: float | timedelta | None, tz: str | tzinfo | None) -> Trigger:
    if (cron is None) == (every is None):
        raise ConfigurationError("give exactly one of cron='...' or every=seconds|timedelta")
    if every is not None:
        if tz is not None:
            raise ConfigurationError("tz applies to cron schedules; every=... counts real seconds")
        return Every(every)  # type: ignore[arg-type]
    return Cron(cron, zone(tz or "UTC"))  # type: ignore[arg-type]
