"""One log line per state change, as text or JSON (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

STATE_LOGGER = logging.getLogger("conveyor.jobs")
_FIELDS = ("job_id", "task", "queue", "state", "previous", "attempt", "max_attempts", "delay", "error",
           "duration_ms", "worker")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("conveyor")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def state_change(job_id: str, task: str, queue: str, state: str, previous: str, *, attempt: int,
                 max_attempts: int, worker: str, delay: float | None = None, error: str | None = None,
                 duration_ms: float | None = None) -> None:
    if not STATE_LOGGER.isEnabledFor(logging.INFO):
        return
    parts = [f"job {job_id} {task} {previous} -> {state}", f"attempt {attempt}/{max_attempts}", f"queue={queue}"]
    if duration_ms is not None:
        parts.append(f"in {duration_ms:.1f}ms")
    if delay is not None:
        parts.append(f"retry in {delay:.2f}s")
    if error:
        parts.append(f"error={error}")
    STATE_LOGGER.info(" ".join(parts), extra={
        "job_id": job_id, "task": task, "queue": queue, "state": state, "previous": previous,
        "attempt": attempt, "max_attempts": max_attempts, "delay": delay, "error": error,
        "duration_ms": None if duration_ms is None else round(duration_ms, 3), "worker": worker})
