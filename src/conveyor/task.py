"""A task: a plain function under `@app.task`, which `.delay()` turns into a job."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from conveyor.context import JobContext, current_job
from conveyor.errors import ConfigurationError, Retry
from conveyor.options import EnqueueOptions
from conveyor.retry import RetryPolicy

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.handle import Job

P = ParamSpec("P")
R = TypeVar("R")

MapItem = Sequence[Any] | Mapping[str, Any]


class _Enqueuer(Generic[P, R]):
    """What `.delay`, `.apply_async` and `.map` share, for a task with some options set."""

    task: Task[P, R]
    options: EnqueueOptions

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue one job and return at once with its handle."""
        return self.task.app.enqueue_calls(self.task, [(args, kwargs)], self.options)[0]

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> Job[R]:
        """Celery's spelling: `apply_async(args, kwargs, countdown=..., queue=...)`."""
        merged = EnqueueOptions.build(base=self.options, **options)
        return self.task.app.enqueue_calls(self.task, [(tuple(args), dict(kwargs or {}))], merged)[0]

    def map(self, items: Iterable[MapItem], *, batch_size: int = 1000) -> list[Job[R]]:
        """Enqueue one job per item (a tuple of arguments, or a dict of keyword arguments),
        one atomic round trip per `batch_size` jobs."""
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for item in items:
            if isinstance(item, Mapping):
                calls.append(((), dict(item)))
            elif isinstance(item, list | tuple):
                calls.append((tuple(item), {}))
            else:
                calls.append(((item,), {}))
        if batch_size < 1:
            raise ConfigurationError(f"batch_size={batch_size}: use a positive number of jobs per round trip")
        if self.options.job_id is not None and len(calls) > 1:
            raise ConfigurationError("job_id names one job; .map() of several jobs cannot share it")
        return self.task.app.enqueue_calls(self.task, calls, self.options, batch_size=batch_size)


class TaskCall(_Enqueuer[P, R]):
    """`task.with_options(...)`: the task with per-call options, ready to `.delay()` or `.map()`."""

    def __init__(self, task: Task[P, R], options: EnqueueOptions) -> None:
        self.task = task
        self.options = options

    def with_options(self, **options: Any) -> TaskCall[P, R]:
        return TaskCall(self.task, EnqueueOptions.build(base=self.options, **options))


class Task(_Enqueuer[P, R]):
    def __init__(self, app: Conveyor, fn: Callable[..., Any], *, name: str, queue: str, priority: int,
                 policy: RetryPolicy, timeout: float | None, bind: bool,
                 default_retry_delay: float | None) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.priority = priority
        self.policy = policy
        self.timeout = timeout
        self.bind = bind
        self.default_retry_delay = default_retry_delay
        self.is_async = inspect.iscoroutinefunction(fn)
        self.task = self
        self.options = EnqueueOptions()
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """A plain call runs the function inline, here and now, with no job and no queue."""
        return self.call(args, kwargs)  # type: ignore[no-any-return]

    def call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    def call_async(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Awaitable[Any]:
        return self.call(args, kwargs)  # type: ignore[no-any-return]

    def with_options(self, **options: Any) -> TaskCall[P, R]:
        """Per-call options: queue, priority, delay (or countdown), run_at (or eta), job_id,
        max_retries, timeout, connection."""
        return TaskCall(self, EnqueueOptions.build(**options))

    # -- what a bound task (bind=True) uses as `self` --------------------------------------

    @property
    def request(self) -> JobContext:
        """The running job (Celery's `self.request`): id, attempt, retries, queue."""
        return current_job()

    def set_progress(self, progress: float, message: str | None = None) -> None:
        current_job().set_progress(progress, message)

    def retry(self, exc: BaseException | None = None, countdown: float | None = None) -> NoReturn:
        """Run this job again after `countdown` seconds (default: the task's retry delay).

        Raises `Retry`, so both `self.retry(...)` and Celery's `raise self.retry(...)` work.
        """
        delay = countdown if countdown is not None else self.default_retry_delay
        raise Retry(delay, exc=exc)
