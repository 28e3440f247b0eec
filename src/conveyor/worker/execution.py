"""Running one attempt as a pipeline of small steps: resolve the task, decode the arguments,
run it, classify the outcome, encode the result. Every pool (thread, async, process) runs
attempts through these same functions and gets back one `Finish` to record."""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.app import Conveyor, JobEvent
from conveyor.backends.base import Finish, Lease
from conveyor.context import CancelFlag, JobContext, enter_job, leave_job
from conveyor.errors import (
    JobCancelledError,
    JobTimeout,
    Retry,
    SerializationError,
    UnknownTask,
)
from conveyor.job import AttemptError, JobRecord, JobState
from conveyor.serialization import decode_payload, encode_result
from conveyor.task import Task


@dataclass
class Attempt:
    """One job this worker holds, from claim to finish."""

    record: JobRecord
    cancel: CancelFlag = field(default_factory=CancelFlag)
    thread_id: int | None = None  # the thread running a sync task, for timeouts
    started: float | None = None  # time.monotonic() when the task began
    ended: float | None = None  # time.monotonic() when its outcome was handed to the worker
    handle: Any = None  # the pool's own handle (an asyncio task, a process slot)
    lost: bool = False  # the lease was lost: a finish will be refused
    done: bool = False  # the task has returned; its outcome is on its way to the store

    @property
    def ran_for(self) -> float:
        """Seconds from start to outcome (0 for an attempt that never started, or has not ended)."""
        return self.ended - self.started if self.started is not None and self.ended is not None else 0.0

    @property
    def lease(self) -> Lease:
        assert self.record.lease_token is not None
        return Lease(self.record.id, self.record.lease_token)


def error_of(attempt: int, exc: BaseException, now: float) -> AttemptError:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return AttemptError(attempt, type(exc).__name__, str(exc), trace, now)


def resolve(app: Conveyor, record: JobRecord) -> tuple[Task[Any, Any], list[Any], dict[str, Any]]:
    """The task and its arguments, or UnknownTask / SerializationError: failures no retry mends."""
    task = app.get_task(record.task)
    args, kwargs = decode_payload(record.payload)
    return task, args, kwargs


def classify(app: Conveyor, record: JobRecord, *, result: Any = None, exc: BaseException | None = None,
             cancelled: bool = False, now: float) -> Finish:
    """Turn what the attempt did into the one outcome the store records."""
    token = record.lease_token or ""
    if cancelled:
        error = error_of(record.attempts, exc or JobCancelledError("cancelled while running"), now)
        return Finish(record.id, token, JobState.CANCELLED, error=error)
    if exc is None:
        try:
            return Finish(record.id, token, JobState.COMPLETED, result=encode_result(record.task, result))
        except SerializationError as bad_result:
            return Finish(record.id, token, JobState.FAILED, error=error_of(record.attempts, bad_result, now))
    task = app.tasks.get(record.task)
    has_attempts_left = record.attempts < record.max_attempts
    if isinstance(exc, Retry):
        cause = exc.exc or exc
        if not has_attempts_left:
            return Finish(record.id, token, JobState.FAILED, error=error_of(record.attempts, cause, now))
        delay = exc.delay if exc.delay is not None else (task.policy.delay_for(record.attempts, cause) if task else 0)
        return Finish(record.id, token, JobState.SCHEDULED, error=error_of(record.attempts, cause, now), delay=delay)
    if isinstance(exc, JobTimeout) and record.timeout:
        exc = JobTimeout(f"the job ran past its timeout of {record.timeout:g}s")
    if task is not None and has_attempts_left and not isinstance(exc, UnknownTask | SerializationError) \
            and task.policy.retries(exc):
        delay = task.policy.delay_for(record.attempts, exc)
        return Finish(record.id, token, JobState.SCHEDULED, error=error_of(record.attempts, exc, now), delay=delay)
    return Finish(record.id, token, JobState.FAILED, error=error_of(record.attempts, exc, now))


def make_context(app: Conveyor, attempt: Attempt, progress: Callable[[Lease, float, str | None], None]) -> JobContext:
    record = attempt.record
    lease = attempt.lease
    return JobContext(
        id=record.id, task=record.task, queue=record.queue, attempt=record.attempts,
        max_attempts=record.max_attempts, _progress_sink=lambda p, m: progress(lease, p, m),
        _cancel=attempt.cancel,
    )


def report_progress(app: Conveyor, record: JobRecord) -> Callable[[Lease, float, str | None], None]:
    """Progress goes to the store (guarded by the lease) and to the app's progress hooks."""
    def sink(lease: Lease, progress: float, message: str | None) -> None:
        app.backend.set_progress(lease, progress, message)
        app.emit(JobEvent("progress", record, progress=progress, message=message))
    return sink


def never_started(app: Conveyor, attempt: Attempt, now: float) -> Finish:
    """The outcome of a job cancelled while it waited in the worker (prefetched): it does not run."""
    return classify(app, attempt.record, exc=JobCancelledError("cancelled before it started"), cancelled=True,
                    now=now)


def run_sync(app: Conveyor, attempt: Attempt, clock: Callable[[], float]) -> Finish:
    """Run a sync task (or, in a child process, an async one) on this thread."""
    record = attempt.record
    if attempt.cancel.is_set():
        return never_started(app, attempt, clock())
    try:
        task, args, kwargs = resolve(app, record)
    except (UnknownTask, SerializationError) as exc:
        return classify(app, record, exc=exc, now=clock())
    token = enter_job(make_context(app, attempt, report_progress(app, record)))
    attempt.thread_id = threading.get_ident()
    try:
        if task.is_async:
            result = asyncio.run(_with_timeout(task.call_async(args, kwargs), record.timeout))
        else:
            result = task.call(args, kwargs)
    except BaseException as exc:
        attempt.thread_id = None
        return classify(app, record, exc=exc, cancelled=attempt.cancel.is_set(), now=clock())
    finally:
        attempt.thread_id = None
        leave_job(token)
    return classify(app, record, result=result, cancelled=attempt.cancel.is_set(), now=clock())


async def _with_timeout(awaitable: Any, timeout: float | None) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise JobTimeout(f"the job ran past its timeout of {timeout:g}s") from None


async def run_async(app: Conveyor, attempt: Attempt, clock: Callable[[], float]) -> Finish:
    """Run an async task on the worker's event loop; cancellation arrives as CancelledError."""
    record = attempt.record
    if attempt.cancel.is_set():
        return never_started(app, attempt, clock())
    try:
        task, args, kwargs = resolve(app, record)
    except (UnknownTask, SerializationError) as exc:
        return classify(app, record, exc=exc, now=clock())
    token = enter_job(make_context(app, attempt, report_progress(app, record)))
    try:
        result = await _with_timeout(task.call_async(args, kwargs), record.timeout)
    except asyncio.CancelledError:
        if not attempt.cancel.is_set():
            raise  # the worker is shutting down: the job is handed back, not finished
        return classify(app, record, cancelled=True, now=clock())
    except Exception as exc:
        return classify(app, record, exc=exc, cancelled=attempt.cancel.is_set(), now=clock())
    finally:
        leave_job(token)
    return classify(app, record, result=result, cancelled=attempt.cancel.is_set(), now=clock())
