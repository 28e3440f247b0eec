"""Per-call enqueue options, checked where they are given."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from conveyor.errors import ConfigurationError

_UNSET: Any = object()


def check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue or len(queue) > 200 or any(c.isspace() for c in queue):
        raise ConfigurationError(f"queue={queue!r}: a queue name is a non-empty string without spaces")
    return queue


def check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(f"priority={priority!r}: priority is an integer (higher runs sooner)")
    return priority


def check_seconds(name: str, value: object, *, allow_none: bool = False, positive: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigurationError(f"{name}={value!r}: use a number of seconds {bound}")
    return float(value)


def check_run_at(run_at: object) -> float:
    if not isinstance(run_at, datetime):
        raise ConfigurationError(f"run_at={run_at!r}: pass a timezone-aware datetime")
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ConfigurationError(f"run_at={run_at!r} is naive: pass an aware datetime, "
                                 "e.g. datetime.now(timezone.utc) + timedelta(minutes=5)")
    return run_at.timestamp()


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id or len(job_id) > 255:
        raise ConfigurationError(f"job_id={job_id!r}: a job id is a non-empty string of at most 255 characters")
    return job_id


@dataclass(frozen=True)
class EnqueueOptions:
    """Options of one enqueue; None means "the task's default"."""

    queue: str | None = None
    priority: int | None = None
    delay: float = 0.0
    run_at: float | None = None
    job_id: str | None = None
    max_retries: int | None = None
    timeout: float | None = None
    connection: Any = None  # an open DB connection for transactional enqueue (SQL engines)

    @classmethod
    def build(cls, *, queue: Any = _UNSET, priority: Any = _UNSET, delay: Any = _UNSET,
              countdown: Any = _UNSET, run_at: Any = _UNSET, eta: Any = _UNSET, job_id: Any = _UNSET,
              task_id: Any = _UNSET, max_retries: Any = _UNSET, timeout: Any = _UNSET,
              connection: Any = _UNSET, base: EnqueueOptions | None = None) -> EnqueueOptions:
        """Celery's names work too: countdown for delay, eta for run_at, task_id for job_id."""
        changes: dict[str, Any] = {}
        if queue is not _UNSET:
            changes["queue"] = check_queue(queue)
        if priority is not _UNSET:
            changes["priority"] = check_priority(priority)
        for value in (delay, countdown):
            if value is not _UNSET:
                changes["delay"] = check_seconds("delay", value)
        for value in (run_at, eta):
            if value is not _UNSET:
                changes["run_at"] = None if value is None else check_run_at(value)
        for value in (job_id, task_id):
            if value is not _UNSET:
                changes["job_id"] = None if value is None else check_job_id(value)
        if max_retries is not _UNSET:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ConfigurationError(f"max_retries={max_retries!r}: use an integer >= 0")
            changes["max_retries"] = max_retries
        if timeout is not _UNSET:
            changes["timeout"] = check_seconds("timeout", timeout, allow_none=True, positive=True)
        if connection is not _UNSET:
            changes["connection"] = connection
        if "delay" in changes and "run_at" in changes and changes["run_at"] is not None:
            raise ConfigurationError("give delay or run_at, not both")
        return replace(base or cls(), **changes)
