"""A schedule: which task to enqueue, when, and what to do about ticks nobody fired."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from conveyor.errors import ConfigurationError
from conveyor.options import check_seconds
from conveyor.scheduler.triggers import Trigger
from conveyor.task import Task

MissedPolicy = Literal["skip", "latest", "all"]
MISSED_POLICIES = ("skip", "latest", "all")


@dataclass(frozen=True)
class Schedule:
    """Enqueue `task(*args, **kwargs)` on every tick of `trigger`.

    A tick is fired if a scheduler sees it at most `grace` seconds late. Older ticks were
    missed (no scheduler ran, or all were stalled), and `missed` decides:
    - "skip" (default): forget them and go on from now;
    - "latest": run once for the newest missed tick;
    - "all": run each missed tick, at most `catch_up` of them (the newest).
    """

    name: str
    task: Task[Any, Any]
    trigger: Trigger
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    missed: MissedPolicy = "skip"
    grace: float = 30.0
    catch_up: int = 100
    queue: str | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "@" in self.name or len(self.name) > 200:
            raise ConfigurationError(f"schedule name {self.name!r}: a non-empty string without '@'")
        if self.missed not in MISSED_POLICIES:
            raise ConfigurationError(f"missed={self.missed!r}: use one of {', '.join(MISSED_POLICIES)}")
        check_seconds("grace", self.grace)
        if isinstance(self.catch_up, bool) or not isinstance(self.catch_up, int) or self.catch_up < 1:
            raise ConfigurationError(f"catch_up={self.catch_up!r}: use a positive number of ticks")

    def due(self, last_tick: float, now: float) -> tuple[list[float], float | None]:
        """The ticks to fire at `now`, oldest first, and the newest tick passed (the schedule's
        next `last_tick`), or ([], None) when no tick has come since `last_tick`."""
        newest = self.trigger.last_at_or_before(now)
        if newest <= last_tick:
            return [], None
        ticks: list[float] = []
        tick = newest
        while tick > last_tick and len(ticks) < self.catch_up and (self.missed == "all" or now - tick <= self.grace):
            ticks.append(tick)
            tick = self.trigger.last_at_or_before(tick - 0.001)
        if not ticks and self.missed == "latest":
            ticks = [newest]
        return ticks[::-1], newest

    def job_id(self, tick: float) -> str:
        """The tick's job id: the same in every scheduler, so a tick can only ever make one job."""
        return f"{self.name}@{datetime.fromtimestamp(tick, UTC).isoformat()}"

    def describe(self) -> str:
        return self.trigger.describe()


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule as operators see it: its definition beside what the store knows of it."""

    name: str
    task: str
    when: str  # the trigger, described: "cron 0 * * * * (UTC)", "every 30s"
    missed: MissedPolicy
    paused: bool
    next_run: float | None  # None while paused
    last_tick: float
    last_fired_at: float | None
    last_job_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "when": self.when, "missed": self.missed,
                "paused": self.paused, "next_run": self.next_run, "last_tick": self.last_tick,
                "last_fired_at": self.last_fired_at, "last_job_id": self.last_job_id}
