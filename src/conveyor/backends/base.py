"""The storage contract every engine implements, spoken in the job's life-cycle verbs.

Each verb is one atomic change in the engine. Writes from a worker are guarded by the lease
token it got from `fetch`: a worker that lost its lease (rescued, cancelled, retried by hand)
changes nothing. Times are the engine's clock, so producers and workers on machines with
skewed clocks agree on when a job is due and when a lease expires.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from conveyor.job import AttemptError, JobRecord, JobState, NewJob


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs (and so their results and reserved ids) are kept, in seconds."""

    completed: float = 24 * 3600.0
    failed: float = 7 * 24 * 3600.0
    cancelled: float = 24 * 3600.0

    def for_state(self, state: JobState) -> float:
        return {JobState.COMPLETED: self.completed, JobState.FAILED: self.failed}.get(state, self.cancelled)


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    lost: frozenset[str]  # leases this worker no longer holds: stop reporting on those jobs
    cancel_requested: frozenset[str]  # held jobs a user cancelled: stop them


@dataclass(frozen=True, slots=True)
class Finish:
    """A worker's report of one attempt, applied only if `token` still holds the job's lease.

    `state` is the target: COMPLETED, FAILED, CANCELLED, SCHEDULED (retry after `delay`), or
    QUEUED with `release=True` (handed back unstarted at shutdown: the attempt is not counted).
    """

    job_id: str
    token: str
    state: JobState
    result: str | None = None
    error: AttemptError | None = None
    delay: float = 0.0
    release: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can do beyond the contract (conformance tests skip with the reason), and
    how a worker drives it best."""

    transactional_enqueue: bool = False
    shared_across_machines: bool = False
    # The worker's automatic prefetch, in jobs per slot, while jobs are short. Over a network it
    # hides the round trip and spreads each call's fixed cost: against 1 per slot, 4 (Celery's
    # default multiplier) drains no-op jobs 1.5x faster on PostgreSQL, and 8 with
    # fetch_in_background 1.6x faster on Redis. SQLite has no round trip to hide, and claiming 4 per
    # slot there drained 0.9x as fast as 1.
    prefetch_per_slot: int = 1
    # `send_finish_and_fetch` returns before the store has answered, so the worker can start the
    # last reply's jobs while the store works on the next call (an engine reached over a network);
    # otherwise it does the work before it returns, and the worker sends the next call only after
    # it has started the last reply's jobs.
    fetch_in_background: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store knows of one schedule; the definition itself lives in the app's code."""

    name: str
    last_tick: float  # the newest tick handled: fired, or passed over by the missed-run policy
    paused: bool = False
    last_job_id: str | None = None  # the job the last fire (or manual run) enqueued
    last_fired_at: float | None = None


STATS_RETENTION = 24 * 3600.0  # how long per-minute totals are kept, in seconds


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker as it announces itself; the store stamps `last_seen` with its own clock."""

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    pool: str
    started_at: float
    running: tuple[str, ...] = ()  # ids of the jobs it holds now
    processed: int = 0
    last_seen: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "hostname": self.hostname, "pid": self.pid, "queues": list(self.queues),
                           "concurrency": self.concurrency, "pool": self.pool, "started_at": self.started_at,
                           "running": list(self.running), "processed": self.processed})

    @classmethod
    def from_json(cls, text: str, last_seen: float) -> WorkerInfo:
        data = json.loads(text)
        return cls(id=data["id"], hostname=data["hostname"], pid=int(data["pid"]), queues=tuple(data["queues"]),
                   concurrency=int(data["concurrency"]), pool=data["pool"], started_at=float(data["started_at"]),
                   running=tuple(data["running"]), processed=int(data["processed"]), last_seen=float(last_seen))


@dataclass(slots=True)
class MinuteStats:
    """What workers did in one queue in one minute: attempts that ended, by outcome, and how long
    jobs waited between falling due and starting. Workers add theirs up; the store keeps the sums."""

    minute: float  # unix seconds at the start of the minute, engine clock
    queue: str
    completed: int = 0
    failed: int = 0  # attempts that ended the job failed
    retried: int = 0  # attempts that failed and left the job to run again
    started: int = 0
    wait_total: float = 0.0  # seconds from due to start, summed over the `started` jobs
    wait_max: float = 0.0

    def add(self, other: MinuteStats) -> None:
        self.completed += other.completed
        self.failed += other.failed
        self.retried += other.retried
        self.started += other.started
        self.wait_total += other.wait_total
        self.wait_max = max(self.wait_max, other.wait_max)

    @property
    def wait_mean(self) -> float | None:
        return self.wait_total / self.started if self.started else None

    def totals(self) -> tuple[int, int, int, int, float, float]:
        """The six numbers in the order the engines' statements and scripts take them."""
        return (self.completed, self.failed, self.retried, self.started, self.wait_total, self.wait_max)


QueueCounts = Mapping[str, Mapping[JobState, int]]


@runtime_checkable
class FetchReply(Protocol):
    """The answer to `send_finish_and_fetch`, read in two steps so that a worker can send its next
    call between them: first how it went, then the jobs it claimed."""

    def wait(self) -> tuple[list[JobState | None], int]:
        """Wait for the store: per finish the state its job was left in (None: the lease was
        gone), and how many jobs were claimed."""
        ...

    def records(self) -> list[JobRecord]:
        """The claimed jobs, in claim order (after `wait`)."""
        ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A FetchReply of a call already done: what engines without `fetch_in_background` return."""

    outcomes: list[JobState | None]
    claimed: list[JobRecord]

    def wait(self) -> tuple[list[JobState | None], int]:
        return self.outcomes, len(self.claimed)

    def records(self) -> list[JobRecord]:
        return self.claimed


@dataclass(frozen=True, slots=True)
class Claim:
    """The claim an idle worker would send once work comes: up to `limit` jobs for `worker_id`,
    leased for `lease_seconds` (see Backend.wait_for_work)."""

    limit: int
    worker_id: str
    lease_seconds: float


class _FinishesAndFetches(Protocol):
    def finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                         worker_id: str, lease_seconds: float) -> tuple[list[JobState | None], list[JobRecord]]: ...


class FetchesNow:
    """`send_finish_and_fetch` for an engine without `fetch_in_background`: done before it returns."""

    def send_finish_and_fetch(self: _FinishesAndFetches, finishes: Sequence[Finish], queues: Sequence[str],
                              limit: int, *, worker_id: str, lease_seconds: float) -> Fetched:
        return Fetched(*self.finish_and_fetch(finishes, queues, limit, worker_id=worker_id,
                                              lease_seconds=lease_seconds))


class Backend(Protocol):
    url: str
    capabilities: Capabilities

    def now(self) -> float:
        """The engine's clock, unix seconds."""
        ...

    def enqueue(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Store a batch atomically. An id already stored returns that job (`created=False`)."""
        ...

    def enqueue_batches(self, batches: Iterable[Sequence[NewJob]]) -> list[JobRecord]:
        """`enqueue` each batch in order (each one atomic) and return all their jobs. `batches` may be
        a generator that encodes each batch as it is asked for: an engine may ask for the next one
        while the store is still storing the last. If one fails, the batches before it are stored."""
        ...

    def fetch(self, queues: Sequence[str], limit: int, *, worker_id: str, lease_seconds: float) -> list[JobRecord]:
        """Claim up to `limit` due jobs from unpaused `queues`: highest priority, then due time,
        then enqueue order. Each claim counts an attempt and holds a lease of `lease_seconds`."""
        ...

    def finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                         worker_id: str, lease_seconds: float) -> tuple[list[JobState | None], list[JobRecord]]:
        """`finish(finishes)`, then `fetch(...)`, in one round trip: what a busy worker does each
        time round, so it costs one round trip per batch of jobs instead of two."""
        ...

    def send_finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                              worker_id: str, lease_seconds: float) -> FetchReply:
        """`finish_and_fetch`, its outcome read from the reply it returns. With
        `capabilities.fetch_in_background` the call returns once the request is sent; at most one
        reply per thread may be outstanding, and it must be read before the thread sends another."""
        ...

    def heartbeat(self, leases: Sequence[Lease], lease_seconds: float) -> HeartbeatReply:
        """Extend the leases still held; report those lost and those cancelled meanwhile."""
        ...

    def finish(self, finishes: Sequence[Finish]) -> list[JobState | None]:
        """Record attempts' outcomes; each is applied only if its lease is still held. Returns per
        finish the state the job was left in, or None where the lease was no longer held. That
        state can differ from the finish's: a retry due now leaves the job queued, and a retry or a
        hand-back of a job whose cancel was requested while it ran leaves it cancelled."""
        ...

    def set_progress(self, lease: Lease, progress: float, message: str | None) -> bool: ...

    def rescue_expired(self) -> list[JobRecord]:
        """Jobs whose lease expired go back to `queued`, or to `failed` ("worker lost") when
        they have used every attempt, or to `cancelled` when a cancel was requested."""
        ...

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a waiting job at once; mark a running one so its worker stops it."""
        ...

    def retry_now(self, job_id: str) -> JobRecord:
        """Queue a scheduled or finished job to run now. A finished one starts over with its full
        attempt budget (attempts back to 0); its earlier errors are kept."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def list_jobs(self, *, state: JobState | None = None, queue: str | None = None, task: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        """Newest first. `search` keeps jobs whose id, task name or arguments (the payload's JSON
        text) contain it, ignoring ASCII case."""
        ...

    def delete(self, job_id: str) -> JobRecord:
        """Delete a job that is not running (cancel a running one first); returns it as it was."""
        ...

    def counts(self) -> dict[str, dict[JobState, int]]:
        """Jobs by queue and state (queues that are only paused appear with no counts)."""
        ...

    def prune(self) -> int:
        """Delete finished jobs past their retention; returns how many."""
        ...

    def reclaim(self) -> None:
        """Clear what many claims and finishes left behind, so the next claims stay fast; a worker
        calls it every few thousand jobs. PostgreSQL vacuums its jobs table; the others need nothing."""
        ...

    def purge(self, states: Sequence[JobState], queue: str | None = None) -> int:
        """Delete jobs in `states` (never running ones); returns how many."""
        ...

    def pause(self, queue: str) -> None: ...

    def resume(self, queue: str) -> None: ...

    def paused(self) -> set[str]: ...

    def report_worker(self, info: WorkerInfo, stats: Sequence[MinuteStats], ttl: float) -> float:
        """Announce a live worker for `ttl` seconds, replacing its previous report, and add `stats`
        to the per-minute totals (kept for STATS_RETENTION); returns the engine's clock."""
        ...

    def remove_worker(self, worker_id: str) -> None: ...

    def workers(self) -> list[WorkerInfo]:
        """Workers whose last report has not expired, by id."""
        ...

    def stats(self, since: float) -> list[MinuteStats]:
        """Per-minute totals for minutes starting at `since` or later, by minute then queue."""
        ...

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or extend the named lock for `ttl` seconds; False if another owner holds it."""
        ...

    def release_lock(self, name: str, owner: str) -> None: ...

    def schedule_states(self, names: Sequence[str], now: float | None = None) -> dict[str, ScheduleState]:
        """The stored state of the named schedules. With `now`, a schedule not stored yet is
        registered as having handled every tick up to `now`, so it first fires after it."""
        ...

    def fire_schedule(self, name: str, ticks: Sequence[tuple[float, NewJob]],
                      advance_to: float | None) -> list[JobRecord] | None:
        """One atomic step for exactly-once: if the schedule is unpaused and its last tick is before
        `advance_to`, enqueue the job of each tick after the last one and move the last tick to
        `advance_to`; otherwise another scheduler got there first and nothing changes (None).
        `advance_to=None` is a manual run: every job is enqueued and the ticks are left alone."""
        ...

    def set_schedule_paused(self, name: str, paused: bool, now: float) -> ScheduleState:
        """Pause or resume a schedule. Resuming moves its last tick to `now`: ticks that passed
        while it was paused are skipped, whatever its missed-run policy."""
        ...

    def wait_for_work(self, queues: Sequence[str], timeout: float, wake: threading.Event,
                      claim: Claim | None = None) -> FetchReply | None:
        """Block until work may be ready in `queues`, `wake` is set, or `timeout` passes.
        Returns early on any of them, and at once if work may have come since this thread's last
        claim (the worker waits straight after a claim that came back short); a spurious return is
        allowed, a missed one is not.
        With a `claim`, an engine may send it itself the moment work comes, as
        `send_finish_and_fetch` with no finishes would, before the caller's thread is awake, and
        return its reply, which the caller must read: the jobs are claimed. None: nothing was."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TransactionalBackend(Backend, Protocol):
    """An engine that can enqueue through the application's own database connection."""

    def enqueue_in_transaction(self, connection: Any, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Like `enqueue`, inside the caller's open transaction: workers see the jobs only once it
        commits, and never if it rolls back."""
        ...
