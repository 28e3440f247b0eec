"""conveyor: background jobs and scheduled tasks for Python."""

from conveyor.app import Conveyor, JobEvent
from conveyor.context import JobContext, current_job
from conveyor.errors import (
    BackendError,
    ConfigurationError,
    ConveyorError,
    InvalidTransition,
    JobCancelled,
    JobCancelledError,
    JobFailed,
    JobNotFound,
    JobTimeout,
    NoCurrentJob,
    PayloadTooLarge,
    ResultTimeout,
    Retry,
    ScheduleNotFound,
    SerializationError,
    UnknownTask,
    WorkerCrashed,
)
from conveyor.handle import Job
from conveyor.job import JobState
from conveyor.retry import RetryPolicy
from conveyor.task import Task

__version__ = "0.1.0"

__all__ = [
    "BackendError", "ConfigurationError", "Conveyor", "ConveyorError", "InvalidTransition", "Job",
    "JobCancelled", "JobCancelledError", "JobContext", "JobEvent", "JobFailed", "JobNotFound", "JobState", "JobTimeout",
    "NoCurrentJob", "PayloadTooLarge", "ResultTimeout", "Retry", "RetryPolicy", "ScheduleNotFound",
    "SerializationError",
    "Task", "UnknownTask", "WorkerCrashed", "current_job",
]
