"""conveyor's exceptions: one root, and every message says what to do."""

from __future__ import annotations


class ConveyorError(Exception):
    """Root of every error conveyor raises."""


class ConfigurationError(ConveyorError, ValueError):
    """An option, URL or import string is invalid; the message names it and the fix."""


class SerializationError(ConveyorError, TypeError):
    """An argument or a result cannot be stored as JSON."""


class PayloadTooLarge(ConveyorError, ValueError):
    """The encoded arguments exceed the app's `max_payload` limit."""


class UnknownTask(ConveyorError, LookupError):
    """A job names a task that this app has not registered."""


class JobNotFound(ConveyorError, LookupError):
    """No job with this id exists (it was never enqueued, or it was pruned)."""


class ScheduleNotFound(ConveyorError, LookupError):
    """No schedule with this name is defined in the app."""


class InvalidTransition(ConveyorError):
    """The job's state does not allow this action (for example retrying a running job)."""


class BackendError(ConveyorError):
    """The storage engine refused or could not be reached; the message says which and why."""


class NoCurrentJob(ConveyorError, RuntimeError):
    """`current_job()` was called outside a job that a worker runs."""


class JobTimeout(ConveyorError):
    """Raised inside a task that ran past its `timeout`; the worker records it as the attempt's error."""


class JobCancelledError(ConveyorError):
    """The error recorded for an attempt stopped because its job was cancelled while it ran
    (it is stored on the job; tasks see `current_job().cancel_requested` instead)."""


class WorkerCrashed(ConveyorError):
    """The error recorded when the process running a job died (a crash, os._exit, a signal)
    before reporting its outcome."""


class ResultTimeout(ConveyorError, TimeoutError):
    """`job.result(timeout=...)` gave up before the job finished."""


class JobFailed(ConveyorError):
    """The job ended `failed`; carries the last attempt's remote error and traceback."""

    def __init__(self, job_id: str, error_type: str, message: str, traceback: str) -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        self.job_id = job_id
        self.error_type = error_type
        self.error_message = message
        self.remote_traceback = traceback


class JobCancelled(ConveyorError):
    """The job ended `cancelled`, so it has no result."""


class Retry(Exception):
    """Raise from a task to run it again after `delay` seconds (counts as an attempt).

    `raise Retry(delay=30)` or, with bind=True, `raise self.retry(exc=exc, countdown=30)`.
    """

    def __init__(self, delay: float | None = None, *, exc: BaseException | None = None) -> None:
        if delay is not None and delay < 0:
            raise ConfigurationError(f"Retry(delay={delay!r}): the delay must be >= 0 seconds")
        super().__init__(f"retry requested in {delay}s" if delay is not None else "retry requested")
        self.delay = delay
        self.exc = exc
