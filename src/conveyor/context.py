"""What a task sees of its own job while a worker runs it: `current_job()`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from conveyor.errors import ConfigurationError, NoCurrentJob

ProgressSink = Callable[[float, str | None], None]


class CancelFlag:
    """Set once when a running job's cancel is requested, read by the job and by its pool. A plain
    attribute rather than a threading.Event: nothing waits on it, and the worker makes one per job
    (an Event costs a Condition and a lock)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass
class JobContext:
    id: str
    task: str
    queue: str
    attempt: int  # 1 for the first run
    max_attempts: int
    _progress_sink: ProgressSink = field(repr=False)
    _cancel: CancelFlag = field(default_factory=CancelFlag, repr=False)

    @property
    def retries(self) -> int:
        """Celery's `self.request.retries`: how many times this job ran before."""
        return self.attempt - 1

    @property
    def cancel_requested(self) -> bool:
        """True once someone cancelled this job; a long thread-pool job should check it and return."""
        return self._cancel.is_set()

    def set_progress(self, progress: float, message: str | None = None) -> None:
        """Record progress as a percentage (0-100) with an optional message; readers see it at once."""
        self._progress_sink(_percent(progress, "set_progress"), message)

    async def aset_progress(self, progress: float, message: str | None = None) -> None:
        """`set_progress` for an `async def` task: the write to the store runs in a thread, so the
        event loop, and the other async jobs on it, go on meanwhile."""
        await asyncio.to_thread(self._progress_sink, _percent(progress, "aset_progress"), message)


def _percent(progress: float, verb: str) -> float:
    if isinstance(progress, bool) or not isinstance(progress, int | float) or not 0 <= progress <= 100:
        raise ConfigurationError(f"{verb}({progress!r}): progress is a number from 0 to 100")
    return float(progress)


_current: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)


def current_job() -> JobContext:
    context = _current.get()
    if context is None:
        raise NoCurrentJob("current_job() is only available inside a task that a worker runs "
                           "(a plain call of the task runs inline, with no job)")
    return context


def enter_job(context: JobContext) -> object:
    return _current.set(context)


def leave_job(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
