"""`Job`: the handle a producer holds on one job."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from conveyor.errors import JobCancelled, JobFailed, JobNotFound, ResultTimeout
from conveyor.job import FINISHED_STATES, AttemptError, JobRecord, JobState
from conveyor.serialization import decode_payload, decode_result

if TYPE_CHECKING:
    from conveyor.app import Conveyor

R = TypeVar("R")


class Job(Generic[R]):
    """A job's handle. `status` and `progress` read the store each time; the other attributes
    are the snapshot taken when the handle was made or last `refresh()`ed."""

    def __init__(self, app: Conveyor, record: JobRecord) -> None:
        self.app = app
        self.record = record

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.record.task} {self.record.state}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def task_name(self) -> str:
        return self.record.task

    @property
    def queue(self) -> str:
        return self.record.queue

    @property
    def created(self) -> bool:
        """False when enqueue found a live or retained job with the same id and returned it."""
        return self.record.created

    @property
    def attempts(self) -> int:
        return self.record.attempts

    @property
    def errors(self) -> list[AttemptError]:
        """Every failed attempt's error: type, message, traceback, time."""
        return self.record.errors

    @property
    def args(self) -> list[Any]:
        return decode_payload(self.record.payload)[0]

    @property
    def kwargs(self) -> dict[str, Any]:
        return decode_payload(self.record.payload)[1]

    @property
    def status(self) -> JobState:
        return self.refresh().record.state

    @property
    def progress(self) -> float | None:
        return self.refresh().record.progress

    @property
    def progress_message(self) -> str | None:
        return self.record.progress_message

    def refresh(self) -> Job[R]:
        record = self.app.backend.get(self.id)
        if record is None:
            raise JobNotFound(f"job {self.id!r} no longer exists (pruned after its retention, or purged)")
        record.created = self.record.created
        self.record = record
        return self

    def result(self, timeout: float | None = None, *, poll: float = 0.005, max_poll: float = 0.25) -> R:
        """Wait for the job to finish and return its result.

        Raises `JobFailed` (with the remote error and traceback), `JobCancelled`, or
        `ResultTimeout` after `timeout` seconds. Polls the store starting every 5 ms and
        backing off to every 250 ms, so a long wait costs a few reads a second.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().record.state not in FINISHED_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"job {self.id} is still {self.record.state} after {timeout}s")
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            poll = min(max_poll, poll * 1.5)
        return self._outcome()

    def _outcome(self) -> R:
        record = self.record
        if record.state == JobState.COMPLETED:
            return decode_result(record.result)  # type: ignore[no-any-return]
        if record.state == JobState.CANCELLED:
            raise JobCancelled(f"job {self.id} was cancelled; it has no result")
        errors = record.errors
        last = errors[-1] if errors else AttemptError(record.attempts, "Unknown", "no error recorded", "", 0.0)
        raise JobFailed(self.id, last.type, last.message, last.traceback)

    def cancel(self) -> Job[R]:
        """Cancel now if waiting; if running, its worker stops it within a heartbeat."""
        self.record = self.app.backend.cancel(self.id)
        return self

    def delete(self) -> None:
        """Delete the job and its result; a running job must be cancelled first."""
        self.record = self.app.backend.delete(self.id)

    def retry(self) -> Job[R]:
        """Run a failed, cancelled, completed or delayed job now."""
        self.record = self.app.backend.retry_now(self.id)
        return self
