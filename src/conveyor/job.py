"""The job: its states, the one table of allowed transitions, and the stored record."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    SCHEDULED = "scheduled"  # delayed, or waiting for its next attempt
    QUEUED = "queued"  # due, waiting for a worker
    RUNNING = "running"  # claimed by a worker that holds its lease
    COMPLETED = "completed"
    FAILED = "failed"  # attempts used up, or the error was not retryable
    CANCELLED = "cancelled"


LIVE_STATES = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING})
FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

# Every state change any engine makes is one of these; ARCHITECTURE.md draws the same table.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.COMPLETED,
            JobState.SCHEDULED,  # retry after a delay
            JobState.QUEUED,  # rescued after its lease expired, or handed back at shutdown
            JobState.FAILED,
            JobState.CANCELLED,
        }
    ),
    JobState.COMPLETED: frozenset({JobState.QUEUED}),  # job.retry() runs it again
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


def new_job_id() -> str:
    """A job id: 32 hex digits, as a uuid4's hex, but the first 12 are the time in milliseconds and
    the other 20 random (80 bits). Ids made later sort later, so a store's id index grows at its end
    instead of at a random page per job, and enqueueing keeps its speed as the backlog grows."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def can_transition(source: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[source]


# Where `job.retry()` (run now) and `job.cancel()` are allowed from.
RETRYABLE_STATES = frozenset(s for s in JobState if JobState.QUEUED in TRANSITIONS[s] and s != JobState.RUNNING)
CANCELLABLE_STATES = frozenset(s for s in JobState if JobState.CANCELLED in TRANSITIONS[s])


@dataclass(frozen=True, slots=True)
class AttemptError:
    """What went wrong in one attempt, kept on the job for every attempt."""

    attempt: int
    type: str
    message: str
    traceback: str
    at: float  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "type": self.type, "message": self.message,
                "traceback": self.traceback, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttemptError:
        return cls(int(data["attempt"]), str(data["type"]), str(data["message"]),
                   str(data.get("traceback", "")), float(data["at"]))


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job as a producer hands it to an engine. The engine stamps times with its own clock."""

    id: str
    task: str
    queue: str
    priority: int
    payload: str  # JSON: {"args": [...], "kwargs": {...}}
    max_attempts: int
    timeout: float | None
    delay: float = 0.0  # seconds from the engine's now; ignored when run_at is set
    run_at: float | None = None  # absolute unix seconds


@dataclass(slots=True)
class JobRecord:
    """A job as an engine stores it. Engines return these; the core never sees rows or hashes."""

    id: str
    task: str
    queue: str
    priority: int
    state: JobState
    payload: str
    run_at: float
    enqueued_at: float
    attempts: int
    max_attempts: int
    timeout: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None
    cancel_requested: bool = False
    progress: float | None = None
    progress_message: str | None = None
    result: str | None = None  # JSON text
    errors_json: str = "[]"
    created: bool = field(default=True, compare=False)  # False when enqueue found a job with this id

    @property
    def errors(self) -> list[AttemptError]:
        return [AttemptError.from_json(e) for e in json.loads(self.errors_json or "[]")]

    def to_json(self) -> dict[str, Any]:
        """A plain view for the CLI's --json and logs (arguments and result left as stored text)."""
        return {
            "id": self.id, "task": self.task, "queue": self.queue, "priority": self.priority,
            "state": str(self.state), "payload": self.payload, "run_at": self.run_at,
            "enqueued_at": self.enqueued_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "attempts": self.attempts,
            "max_attempts": self.max_attempts, "timeout": self.timeout,
            "worker_id": self.worker_id, "cancel_requested": self.cancel_requested,
            "progress": self.progress, "progress_message": self.progress_message,
            "result": self.result, "errors": json.loads(self.errors_json or "[]"),
        }
