"""The scheduler loop: fire each schedule's due ticks, exactly once however many run.

There is no leader. Every scheduler computes the same ticks and asks the store to fire them;
the store's `fire_schedule` moves the schedule's last tick forward in the same atomic step
that enqueues the tick's job, so one scheduler wins each tick and the others change nothing.
Run as many as you like for availability: when one dies, the others are already firing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.job import JobRecord

if TYPE_CHECKING:
    from conveyor.app import Conveyor

logger = logging.getLogger("conveyor.scheduler")

MIN_SLEEP = 0.001


class Scheduler:
    """Fires the app's schedules. `clock` (unix seconds) defaults to the store's clock;
    tests pass their own and call `tick(now)` directly."""

    def __init__(self, app: Conveyor, *, clock: Callable[[], float] | None = None, max_sleep: float = 1.0) -> None:
        self.app = app
        self.clock = clock or (lambda: app.backend.now())
        self.max_sleep = max_sleep  # how soon a pause, resume or new state in the store is seen
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> list[JobRecord]:
        """Fire every due tick of every unpaused schedule; returns the jobs this scheduler made."""
        now = self.clock() if now is None else now
        schedules = self.app.schedules
        states = self.app.backend.schedule_states(list(schedules), now)
        made: list[JobRecord] = []
        for name, schedule in schedules.items():
            state = states[name]
            if state.paused:
                continue
            ticks, newest = schedule.due(state.last_tick, now)
            if newest is None:
                continue
            jobs = [(tick, job) for tick in ticks for job in self.app.schedule_jobs(schedule, schedule.job_id(tick))]
            records = self.app.backend.fire_schedule(name, jobs, newest)
            for record in records or ():
                logger.info("schedule %s fired: job %s (%s)", name, record.id, schedule.describe())
            if records is not None and not ticks:
                logger.warning("schedule %s: ticks up to %s were missed and skipped (missed=%r)", name,
                               datetime.fromtimestamp(newest, UTC).isoformat(), schedule.missed)
            made.extend(records or ())
        return made

    def seconds_to_next_tick(self, now: float) -> float:
        upcoming = [s.trigger.next_after(now) for s in self.app.schedules.values()]
        return max(MIN_SLEEP, min([self.max_sleep, *(t - now for t in upcoming)]))

    def run(self) -> None:
        """Fire ticks until `stop()`; a store that is away is retried, never fatal."""
        names = ", ".join(self.app.schedules) or "none"
        logger.info("scheduler started: %d schedule(s): %s", len(self.app.schedules), names)
        while not self.stopping.is_set():
            try:
                self.tick()
            except ConveyorError as exc:
                logger.warning("scheduler: could not reach the store (%s); retrying", exc)
            except Exception:
                logger.exception("scheduler: unexpected error; carrying on")
            self.stopping.wait(self.seconds_to_next_tick(self.clock()))
        logger.info("scheduler stopped")

    def start(self) -> Scheduler:
        """Run in a daemon thread (inside a web process or a worker)."""
        self._thread = threading.Thread(target=self.run, name="conveyor-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
