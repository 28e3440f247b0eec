"""The app: the task registry, the store it talks to, and the settings both share."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from conveyor.backends import (
    Backend,
    MinuteStats,
    Retention,
    ScheduleState,
    TransactionalBackend,
    WorkerInfo,
    open_backend,
)
from conveyor.backends.shared import safe_url
from conveyor.errors import ConfigurationError, InvalidTransition, JobNotFound, ScheduleNotFound, UnknownTask
from conveyor.handle import Job
from conveyor.job import JobRecord, JobState, NewJob, new_job_id
from conveyor.options import EnqueueOptions, check_priority, check_queue, check_seconds
from conveyor.retry import Backoff, RetryPolicy, normalise_backoff
from conveyor.scheduler.schedule import MissedPolicy, Schedule, ScheduleStatus
from conveyor.scheduler.triggers import make_trigger
from conveyor.serialization import encode_payload
from conveyor.task import Task

if TYPE_CHECKING:
    from conveyor.scheduler.scheduler import Scheduler

P = ParamSpec("P")
R = TypeVar("R")

HookEvent = Literal["started", "progress", "completed", "retrying", "failed", "cancelled"]
HOOK_EVENTS: frozenset[str] = frozenset({"started", "progress", "completed", "retrying", "failed", "cancelled"})
DEFAULT_URL = "sqlite:///conveyor.db"

logger = logging.getLogger("conveyor")
_BULK_PAGE = 500


def _state(state: JobState | str | None) -> JobState | None:
    if state is None:
        return None
    try:
        return JobState(state)
    except ValueError:
        raise ConfigurationError(f"state={state!r}: use one of {', '.join(JobState)}") from None


@dataclass(frozen=True)
class JobEvent:
    """What a hook receives: the job as stored, plus what the event adds."""

    name: str
    job: JobRecord
    result: Any = None
    error: str | None = None  # "Type: message" for retrying and failed
    delay: float | None = None  # seconds until the retry
    progress: float | None = None
    message: str | None = None


Hook = Callable[[JobEvent], None]


class Conveyor:
    def __init__(
        self,
        url: str | None = None,
        *,
        default_queue: str = "default",
        max_payload: int = 1024 * 1024,
        lease_seconds: float = 30.0,
        heartbeat_interval: float = 5.0,
        result_ttl: float = 24 * 3600.0,
        failed_ttl: float = 7 * 24 * 3600.0,
        cancelled_ttl: float = 24 * 3600.0,
    ) -> None:
        """`url` defaults to $CONVEYOR_URL, else sqlite:///conveyor.db in the working directory.
        The store is opened on first use, so importing a module that makes an app touches nothing."""
        self.url = url or os.environ.get("CONVEYOR_URL") or DEFAULT_URL
        self.default_queue = check_queue(default_queue)
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload <= 0:
            raise ConfigurationError(f"max_payload={max_payload!r}: use a positive number of bytes")
        self.max_payload = max_payload
        self.lease_seconds = check_seconds("lease_seconds", lease_seconds, positive=True) or 30.0
        self.heartbeat_interval = check_seconds("heartbeat_interval", heartbeat_interval, positive=True) or 5.0
        if self.heartbeat_interval >= self.lease_seconds:
            raise ConfigurationError(f"heartbeat_interval={heartbeat_interval} must be shorter than "
                                     f"lease_seconds={lease_seconds}, or leases expire between heartbeats")
        self.retention = Retention(
            completed=check_seconds("result_ttl", result_ttl) or 0.0,
            failed=check_seconds("failed_ttl", failed_ttl) or 0.0,
            cancelled=check_seconds("cancelled_ttl", cancelled_ttl) or 0.0,
        )
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.hooks: dict[str, list[Hook]] = {name: [] for name in HOOK_EVENTS}
        self.schedules: dict[str, Schedule] = {}
        self.import_path: str | None = None  # set by the CLI's loader; process pools need it
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Conveyor {self.display_url} tasks={len(self.tasks)}>"

    @property
    def display_url(self) -> str:
        """The store's URL without its password: what to print or log."""
        return safe_url(self.url or "")

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    self._backend = open_backend(self.url, retention=self.retention)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- defining tasks ---------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: None = None, /, *, name: str | None = None, queue: str | None = None, priority: int = 0,
             max_retries: int = 3, retry_backoff: Backoff | bool = "exponential", retry_delay: float | None = None,
             default_retry_delay: float | None = None, retry_backoff_max: float = 3600.0,
             retry_jitter: bool = True, retry_on: Sequence[type[BaseException]] | None = None,
             autoretry_for: Sequence[type[BaseException]] | None = None, timeout: float | None = None,
             bind: bool = False) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             queue: str | None = None, priority: int = 0, max_retries: int = 3,
             retry_backoff: Backoff | bool = "exponential", retry_delay: float | None = None,
             default_retry_delay: float | None = None, retry_backoff_max: float = 3600.0,
             retry_jitter: bool = True, retry_on: Sequence[type[BaseException]] | None = None,
             autoretry_for: Sequence[type[BaseException]] | None = None,
             timeout: float | None = None, bind: bool = False) -> Any:
        """Register a function (sync or async) as a task.

        Retries: `max_retries` after the first attempt (default 3), on exceptions in `retry_on`
        (default: any Exception; `autoretry_for` is Celery's name), with `retry_backoff`
        'exponential' (default), 'fixed' or a function (retry_number, exc) -> seconds, starting at
        `retry_delay` seconds (default 1; Celery's `default_retry_delay` also sets it), capped
        at `retry_backoff_max`, with jitter unless `retry_jitter=False`.
        """
        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            if task_name in self.tasks and self.tasks[task_name].fn is not function:
                raise ConfigurationError(f"two tasks are named {task_name!r}; pass name=... to one of them")
            delay = retry_delay if retry_delay is not None else default_retry_delay
            policy = RetryPolicy(
                max_retries=max_retries, backoff=normalise_backoff(retry_backoff),
                delay=1.0 if delay is None else delay, max_delay=retry_backoff_max, jitter=retry_jitter,
                retry_on=tuple(retry_on or autoretry_for or (Exception,)),
            )
            task: Task[Any, Any] = Task(
                self, function, name=task_name, queue=check_queue(queue or self.default_queue),
                priority=check_priority(priority), policy=policy,
                timeout=check_seconds("timeout", timeout, allow_none=True, positive=True), bind=bind,
                default_retry_delay=default_retry_delay,
            )
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)[:10]) or "none"
            raise UnknownTask(f"no task named {name!r} is registered in this app (known: {known}); "
                              "check the worker imports the module that defines it") from None

    # -- hooks ------------------------------------------------------------------------------

    def on(self, event: HookEvent) -> Callable[[Hook], Hook]:
        """Register a worker-side hook: started, progress, completed, retrying, failed, cancelled."""
        if event not in HOOK_EVENTS:
            raise ConfigurationError(f"unknown hook event {event!r}; use one of {', '.join(sorted(HOOK_EVENTS))}")

        def register(hook: Hook) -> Hook:
            self.hooks[event].append(hook)
            return hook

        return register

    def emit(self, event: JobEvent) -> None:
        """Call the hooks for an event; a failing hook is logged and never stops the worker."""
        for hook in self.hooks[event.name]:
            try:
                hook(event)
            except Exception:
                logger.exception("hook %s for %r on job %s failed", getattr(hook, "__name__", hook),
                                 event.name, event.job.id)

    # -- producing jobs ---------------------------------------------------------------------

    def enqueue_calls(self, task: Task[Any, R], calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
                      options: EnqueueOptions, *, batch_size: int | None = None) -> list[Job[R]]:
        """Encode and store calls of one task, in order, one atomic round trip per `batch_size` calls
        (all in one without it). Each batch is encoded as the engine asks for it (see
        Backend.enqueue_batches), so encoding can overlap storing."""
        batches = (self.build_jobs(task, calls[start:start + batch_size], options)
                   for start in range(0, len(calls), batch_size)) if batch_size and len(calls) > batch_size else None
        if options.connection is None:
            records = (self.backend.enqueue(self.build_jobs(task, calls, options)) if batches is None
                       else self.backend.enqueue_batches(batches))
            return [Job(self, record) for record in records]
        if not isinstance(self.backend, TransactionalBackend):
            raise ConfigurationError("connection=... (enqueue inside your transaction) needs a PostgreSQL store; "
                                     f"this app uses {self.display_url}")
        return [Job(self, record) for batch in (batches or [self.build_jobs(task, calls, options)])
                for record in self.backend.enqueue_in_transaction(options.connection, batch)]

    def build_jobs(self, task: Task[Any, Any], calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
                   options: EnqueueOptions) -> list[NewJob]:
        """Encode calls of one task as jobs to store (arguments checked and size-limited here)."""
        max_retries = options.max_retries if options.max_retries is not None else task.policy.max_retries
        return [
            NewJob(
                id=options.job_id or new_job_id(),
                task=task.name,
                queue=options.queue or task.queue,
                priority=options.priority if options.priority is not None else task.priority,
                payload=encode_payload(task.name, task.fn, args, kwargs, self.max_payload, bound=task.bind),
                max_attempts=max_retries + 1,
                timeout=options.timeout if options.timeout is not None else task.timeout,
                delay=options.delay,
                run_at=options.run_at,
            )
            for args, kwargs in calls
        ]

    def enqueue(self, task_name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                **options: Any) -> Job[Any]:
        """Enqueue by task name (for tools and other services that do not import the task)."""
        task = self.tasks.get(task_name) or Task(
            self, lambda *a, **k: None, name=task_name, queue=self.default_queue, priority=0,
            policy=RetryPolicy(), timeout=None, bind=False, default_retry_delay=None)
        return task.apply_async(args, kwargs, **options)

    # -- reading and steering ---------------------------------------------------------------

    def get_job(self, job_id: str) -> Job[Any]:
        record = self.backend.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r} (never enqueued, or pruned after its retention)")
        return Job(self, record)

    def jobs(self, *, state: JobState | str | None = None, queue: str | None = None, task: str | None = None,
             search: str | None = None, limit: int = 50, offset: int = 0) -> list[Job[Any]]:
        """Jobs newest first, filtered by state, queue and task name, paginated. `search` keeps jobs
        whose id, task name or arguments contain the text (ASCII case ignored)."""
        records = self.backend.list_jobs(state=_state(state), queue=queue, task=task, search=search or None,
                                         limit=limit, offset=offset)
        return [Job(self, record) for record in records]

    def retry_jobs(self, *, state: JobState | str | None = None, queue: str | None = None,
                  task: str | None = None, search: str | None = None,
                  enqueued_before: float | None = None) -> int:
        """Run now every matching job that is finished or delayed; returns how many."""
        return self._change_matching(self.backend.retry_now, state, queue, task, search, enqueued_before)

    def cancel_jobs(self, *, state: JobState | str | None = None, queue: str | None = None,
                   task: str | None = None, search: str | None = None,
                   enqueued_before: float | None = None) -> int:
        """Cancel every matching job that is waiting or running; returns how many."""
        return self._change_matching(self.backend.cancel, state, queue, task, search, enqueued_before)

    def delete_jobs(self, *, state: JobState | str | None = None, queue: str | None = None,
                   task: str | None = None, search: str | None = None,
                   enqueued_before: float | None = None) -> int:
        """Delete every matching job that is not running; returns how many."""
        return self._change_matching(self.backend.delete, state, queue, task, search, enqueued_before)

    def matching_job_ids(self, *, state: JobState | str | None = None, queue: str | None = None,
                         task: str | None = None, search: str | None = None,
                         enqueued_before: float | None = None) -> list[str]:
        """The ids of the jobs matching now, read page by page: what the bulk verbs act on."""
        ids: list[str] = []
        listed = 0
        while True:
            page = self.backend.list_jobs(state=_state(state), queue=queue, task=task, search=search or None,
                                          limit=_BULK_PAGE, offset=listed)
            listed += len(page)
            ids += [r.id for r in page if enqueued_before is None or r.enqueued_at <= enqueued_before]
            if len(page) < _BULK_PAGE:
                return ids

    def _change_matching(self, change: Callable[[str], JobRecord], state: JobState | str | None,
                         queue: str | None, task: str | None, search: str | None,
                         enqueued_before: float | None) -> int:
        """Apply `change` to the jobs matching when called (those added meanwhile are left alone, and
        with `enqueued_before`, those enqueued after it); jobs it does not apply to (a running job to
        delete, a queued one to retry) are skipped."""
        changed = 0
        for job_id in self.matching_job_ids(state=state, queue=queue, task=task, search=search,
                                            enqueued_before=enqueued_before):
            try:
                change(job_id)
            except (JobNotFound, InvalidTransition):
                continue
            changed += 1
        return changed

    def counts(self) -> dict[str, dict[JobState, int]]:
        return self.backend.counts()

    def pause(self, queue: str) -> None:
        """Workers stop taking jobs from `queue` (running ones finish); enqueueing goes on."""
        self.backend.pause(check_queue(queue))

    def resume(self, queue: str) -> None:
        self.backend.resume(check_queue(queue))

    def paused_queues(self) -> set[str]:
        return self.backend.paused()

    def workers(self) -> list[WorkerInfo]:
        """Workers alive now: each reports itself every few seconds and is forgotten when it stops."""
        return self.backend.workers()

    def stats(self, minutes: int = 60) -> list[MinuteStats]:
        """Per-minute, per-queue totals of the last `minutes` minutes (the current one included)."""
        now = self.backend.now()
        return self.backend.stats(now - now % 60 - (minutes - 1) * 60)

    def prune(self) -> int:
        """Delete finished jobs past their retention now (workers also do it every minute)."""
        return self.backend.prune()

    # -- schedules --------------------------------------------------------------------------

    def schedule(self, name: str, task: Task[Any, Any] | Callable[..., Any], *, cron: str | None = None,
                 every: float | timedelta | None = None, tz: str | tzinfo | None = None,
                 args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                 missed: MissedPolicy = "skip", grace: float = 30.0, catch_up: int = 100,
                 queue: str | None = None, priority: int | None = None) -> Schedule:
        """Enqueue `task(*args, **kwargs)` on a cron expression (five fields, or six with seconds
        first; in `tz`, default UTC) or `every` N seconds. Missed ticks: see `Schedule`.
        Invalid expressions, zones and intervals raise ConfigurationError here, not at run time."""
        if not isinstance(task, Task):
            task = self.task(task)
        if task.app is not self:
            raise ConfigurationError(f"schedule {name!r}: task {task.name!r} belongs to another app")
        schedule = Schedule(
            name=name, task=task, trigger=make_trigger(cron, every, tz), args=tuple(args),
            kwargs=dict(kwargs or {}), missed=missed, grace=grace, catch_up=catch_up,
            queue=None if queue is None else check_queue(queue),
            priority=None if priority is None else check_priority(priority))
        self.build_jobs(task, [(schedule.args, schedule.kwargs)], EnqueueOptions())  # JSON and size checked now
        if name in self.schedules and self.schedules[name] != schedule:
            raise ConfigurationError(f"two schedules are named {name!r}; give each a distinct name")
        self.schedules[name] = schedule
        return schedule

    def periodic(self, *, cron: str | None = None, every: float | timedelta | None = None,
                 tz: str | tzinfo | None = None, name: str | None = None, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, missed: MissedPolicy = "skip", grace: float = 30.0,
                 catch_up: int = 100, **task_options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Decorate a function (or a task) to run on a schedule named after the task.
        Other keyword arguments are task options (queue, priority, max_retries, timeout, ...)."""
        def register(fn: Callable[P, R]) -> Task[P, R]:
            task = fn if isinstance(fn, Task) else self.task(**task_options)(fn)
            self.schedule(name or task.name, task, cron=cron, every=every, tz=tz, args=args, kwargs=kwargs,
                          missed=missed, grace=grace, catch_up=catch_up)
            return task

        return register

    def get_schedule(self, name: str) -> Schedule:
        try:
            return self.schedules[name]
        except KeyError:
            known = ", ".join(sorted(self.schedules)[:10]) or "none"
            raise ScheduleNotFound(f"no schedule named {name!r} in this app (defined: {known})") from None

    def schedule_states(self) -> dict[str, ScheduleState]:
        """The store's state of every schedule the app defines (registering new ones from now)."""
        return self.backend.schedule_states(list(self.schedules), self.backend.now())

    def schedule_status(self) -> list[ScheduleStatus]:
        """Every schedule the app defines, with its next and last run, in definition order."""
        now = self.backend.now()
        states = self.schedule_states()
        return [ScheduleStatus(name=name, task=schedule.task.name, when=schedule.describe(),
                               missed=schedule.missed, paused=states[name].paused,
                               next_run=None if states[name].paused else schedule.trigger.next_after(now),
                               last_tick=states[name].last_tick, last_fired_at=states[name].last_fired_at,
                               last_job_id=states[name].last_job_id)
                for name, schedule in self.schedules.items()]

    def run_schedule(self, name: str) -> Job[Any]:
        """Fire a schedule once now, outside its ticks (its next tick is unchanged)."""
        schedule = self.get_schedule(name)
        now = self.backend.now()
        self.backend.schedule_states([name], now)
        jobs = self.schedule_jobs(schedule, f"{name}@run-{uuid.uuid4().hex[:12]}")
        records = self.backend.fire_schedule(name, [(now, job) for job in jobs], None)
        assert records, "a manual run always enqueues"
        return Job(self, records[0])

    def pause_schedule(self, name: str) -> ScheduleState:
        """Stop firing `name` until resumed; ticks while paused are skipped."""
        self.get_schedule(name)
        return self.backend.set_schedule_paused(name, True, self.backend.now())

    def resume_schedule(self, name: str) -> ScheduleState:
        self.get_schedule(name)
        return self.backend.set_schedule_paused(name, False, self.backend.now())

    def schedule_jobs(self, schedule: Schedule, job_id: str) -> list[NewJob]:
        options = EnqueueOptions(queue=schedule.queue, priority=schedule.priority, job_id=job_id)
        return self.build_jobs(schedule.task, [(schedule.args, schedule.kwargs)], options)

    def start_scheduler(self) -> Scheduler:
        """Fire this app's schedules from a background thread of this process (small apps, the
        way node-cron is used). Safe beside other schedulers: each tick still fires once."""
        from conveyor.scheduler.scheduler import Scheduler

        return Scheduler(self).start()
