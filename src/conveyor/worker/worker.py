"""The worker: claims jobs in batches, runs them in a pool, records outcomes in batches, and
keeps their leases alive from a supervisor thread that never waits on a job."""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Literal

from conveyor import logs
from conveyor.app import Conveyor, JobEvent
from conveyor.backends.base import Claim, FetchReply, Finish, MinuteStats, Retention, WorkerInfo
from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.job import JobRecord, JobState
from conveyor.options import check_queue
from conveyor.signals import handle_stop_signals
from conveyor.worker import faults
from conveyor.worker.execution import Attempt
from conveyor.worker.pools import LocalPool, Pool
from conveyor.worker.process_pool import ProcessPool

logger = logging.getLogger("conveyor.worker")

PoolKind = Literal["thread", "process", "async"]
DEFAULT_CONCURRENCY: dict[str, int] = {"thread": 8, "async": 64, "process": os.cpu_count() or 2}
_EVENT_OF_STATE = {JobState.COMPLETED: "completed", JobState.FAILED: "failed", JobState.CANCELLED: "cancelled",
                   JobState.SCHEDULED: "retrying", JobState.QUEUED: "retrying"}
_SUPERVISOR_TICK = 0.05
_PRUNE_INTERVAL = 60.0  # at most; shorter when a retention is short (see _prune_interval)
_REPORT_INTERVAL = 5.0  # how often a worker announces itself and sends its totals, at most
_GATHER_QUIET = 0.0002  # see Worker._gather
_GATHER_MAX = 0.001  # also the most a job may take for the automatic prefetch to claim more
_PREFETCH_HOLD = 0.01  # see Worker._wait_for_a_slot
_SWITCH_INTERVAL = 0.0002  # see _SwitchInterval
_STEP_ASIDE = 0.001  # see Pool.step_aside
_RECLAIM_JOBS = 10_000  # the store's reclaim() after this many jobs recorded, and at most every
_RECLAIM_INTERVAL = 5.0  # this many seconds (see Backend.reclaim)


class Tally:
    """Per-minute, per-queue totals since the last report: kept by the worker's loop, sent by its
    supervisor. Minutes are on the engine's clock, so every worker's totals land in the same buckets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[float, str], MinuteStats] = {}
        self.clock_offset = 0.0  # the engine's clock minus this machine's, as of the last report

    def _bucket(self, at: float, queue: str) -> MinuteStats:
        minute = at - at % 60
        total = self._totals.get((minute, queue))
        if total is None:
            total = self._totals[(minute, queue)] = MinuteStats(minute, queue)
        return total

    def started(self, records: Sequence[JobRecord]) -> None:
        now = time.time() + self.clock_offset
        with self._lock:
            for record in records:
                at = record.started_at if record.started_at is not None else now
                wait = max(0.0, at - record.run_at)
                total = self._bucket(at, record.queue)
                total.started += 1
                total.wait_total += wait
                total.wait_max = max(total.wait_max, wait)

    def ended(self, outcomes: Sequence[tuple[str, Finish, JobState]]) -> None:
        """Count recorded outcomes, given as (queue, finish, the state the store left the job in);
        finishes that hand a job back count nothing, nor do attempts that ended cancelled."""
        now = time.time() + self.clock_offset
        with self._lock:
            for queue, finish, state in outcomes:
                if finish.release:
                    continue
                total = self._bucket(now, queue)
                if state == JobState.COMPLETED:
                    total.completed += 1
                elif state == JobState.FAILED:
                    total.failed += 1
                elif state in (JobState.SCHEDULED, JobState.QUEUED):
                    total.retried += 1

    def take(self) -> list[MinuteStats]:
        with self._lock:
            totals, self._totals = list(self._totals.values()), {}
        return totals

    def give_back(self, totals: list[MinuteStats]) -> None:
        """Totals a report could not deliver: they go out with the next one."""
        with self._lock:
            for total in totals:
                self._bucket(total.minute, total.queue).add(total)


def _prune_interval(retention: Retention) -> float:
    """Prune at least twice per shortest retention, so a store with `result_ttl=10` holds about
    10-15 s of finished jobs rather than a minute's worth; never more often than once a second."""
    shortest = min(retention.completed, retention.failed, retention.cancelled)
    return min(_PRUNE_INTERVAL, max(1.0, shortest / 2))


class _SwitchInterval:
    """Python's thread switch interval, lowered to _SWITCH_INTERVAL while the worker drains a backlog
    of short jobs on an engine that fetches in the background, and put back when the backlog is gone
    or the jobs turn long.

    Draining, the worker keeps a call in flight and its main loop waits for the reply without the
    GIL while job threads hold it. Python hands the GIL to a waiting thread only after the switch
    interval, 5 ms by default, in which the job threads run every job the last reply claimed: the
    store would then wait for the worker, and the worker for the store, in turn. At 0.2 ms the reply
    is read within 0.2 ms of its coming in. Measured on a Redis drain: a thread yielding the GIL after
    each job (time.sleep(0)) did the same at 1.5x the worker's CPU per job (30 against 19.5 µs), and
    a 0.5 ms interval drained about 0.8x as fast. Only while draining short jobs: an idle worker's
    enqueue-to-start latency measured about 25 µs longer with the quick interval on, and long jobs
    on threads of their own would only switch more often."""

    def __init__(self) -> None:
        self._previous: float | None = None
        self._ours = 0.0

    def quick(self, on: bool) -> None:
        if on and self._previous is None:
            self._previous = sys.getswitchinterval()
            sys.setswitchinterval(min(self._previous, _SWITCH_INTERVAL))
            self._ours = sys.getswitchinterval()
        elif not on and self._previous is not None:
            if sys.getswitchinterval() == self._ours:  # unless someone else has set it since
                sys.setswitchinterval(self._previous)
            self._previous = None


class Worker:
    """Run jobs from `queues` until stopped.

    A worker holds at most `concurrency + prefetch` jobs: it claims what it can start now, plus
    `prefetch` more. `prefetch=None` (the default) is automatic: while jobs take under a millisecond
    it claims `capabilities.prefetch_per_slot` more per slot (8 on Redis, 4 on PostgreSQL, 1 on
    SQLite), which keeps the slots busy during the round trip to the store; otherwise none, and a
    prefetched job that waits `_PREFETCH_HOLD` for a slot goes back to the queue, so a worker never
    hoards work that another worker could run.
    """

    def __init__(self, app: Conveyor, *, queues: Sequence[str] | None = None, concurrency: int | None = None,
                 pool: PoolKind = "thread", burst: bool = False, max_jobs: int | None = None,
                 shutdown_timeout: float = 30.0, prefetch: int | None = None, idle_timeout: float = 1.0,
                 max_memory_mib: float | None = None) -> None:
        if pool not in DEFAULT_CONCURRENCY:
            raise ConfigurationError(f"pool={pool!r}: use thread, process or async")
        if max_memory_mib is not None and (pool != "process" or max_memory_mib <= 0):
            raise ConfigurationError("max_memory needs pool='process' and a positive number of MiB: only a job in "
                                     "a process of its own can be held to a memory limit without the others")
        self.app = app
        self.pool_kind = pool
        self.queues = [check_queue(q) for q in (queues or [app.default_queue])]
        self.concurrency = concurrency or DEFAULT_CONCURRENCY[pool]
        if self.concurrency < 1 or (prefetch is not None and prefetch < 0):
            raise ConfigurationError("concurrency must be >= 1 and prefetch >= 0")
        if max_jobs is not None and max_jobs < 1:
            raise ConfigurationError(f"max_jobs={max_jobs}: use a positive number, or leave it unset")
        self.burst = burst
        self.max_jobs = max_jobs
        self.shutdown_timeout = shutdown_timeout
        self.prefetch = prefetch
        self._switches = _SwitchInterval()
        self._background = False  # the engine fetches in the background (set in run)
        self._short_jobs = False  # the last outcomes recorded all came from jobs shorter than _GATHER_MAX
        self.idle_timeout = idle_timeout
        self.lease_seconds = app.lease_seconds
        self.heartbeat_interval = app.heartbeat_interval
        self.rescue_interval = max(0.25, min(self.lease_seconds / 4, 15.0))
        self.report_interval = min(_REPORT_INTERVAL, self.heartbeat_interval)
        self.started_at = time.time()
        self.tally = Tally()
        self.id = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(2)}"
        max_memory = int(max_memory_mib * 2**20) if max_memory_mib else None
        self.pool: Pool = (ProcessPool(app, self.concurrency, self._on_done, app.import_path, max_memory=max_memory)
                           if pool == "process"
                           else LocalPool(app, self.concurrency, self._on_done))
        self.attempts: dict[str, Attempt] = {}
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[tuple[Attempt, Finish]] = queue.SimpleQueue()
        self._unreported: list[tuple[Attempt, Finish]] = []
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._hurry = threading.Event()  # a second signal: hand running jobs back without waiting
        self._supervisor = threading.Thread(target=self._supervise, name="conveyor-supervisor", daemon=True)
        self.fetched = 0
        self.processed = 0

    # -- the main loop ----------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> None:
        if install_signals and threading.current_thread() is threading.main_thread():
            handle_stop_signals(self._on_first_signal, self._on_second_signal)
        # open (and create) the store before announcing readiness
        self._background = self.app.backend.capabilities.fetch_in_background
        self.pool.start()
        self._report()
        self._supervisor.start()
        logger.info("worker %s started: queues=%s concurrency=%d pool=%s", self.id, ",".join(self.queues),
                    self.concurrency, type(self.pool).__name__)
        try:
            self._loop()
        finally:
            self._switches.quick(False)
            self._shutdown()

    def _loop(self) -> None:
        backoff = 0.0
        claim = True
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                if self._record_and_claim(claim=claim):
                    backoff, claim = 0.0, True
                    continue
                if self._finished_max_jobs():
                    return
                if self.burst and not self.attempts:
                    logger.info("worker %s: queues are empty, leaving (--burst)", self.id)
                    return
                claim = self._wait()
                backoff = 0.0
            except ConveyorError as exc:
                backoff, claim = min(5.0, max(0.1, backoff * 2)), True
                logger.warning("worker %s: the store failed (%s); trying again in %.1fs", self.id, exc, backoff)
                self.stopping.wait(backoff)

    def _wait(self) -> bool:
        """Wait for work, or for a slot if none is free; returns whether to claim next time round.
        An engine may claim for the worker as work comes (see Backend.wait_for_work): after that
        claim came back short, there is nothing to claim until the next wake-up."""
        capacity = self._capacity()
        if capacity <= 0:
            self._wait_for_a_slot()
            return True
        reply = self.app.backend.wait_for_work(self.queues, self.idle_timeout, self.wake,
                                               Claim(capacity, self.id, self.lease_seconds))
        return reply is None or self._follow([], reply, capacity)

    def _capacity(self, freed: int = 0, coming: int = 0) -> int:
        """Jobs this worker can claim now; `freed` attempts are finished but not yet recorded, and
        `coming` jobs are claimed but not yet started."""
        per_slot = self.app.backend.capabilities.prefetch_per_slot
        automatic = per_slot * self.concurrency if self._short_jobs else 0
        prefetch = self.prefetch if self.prefetch is not None else automatic
        capacity = self.concurrency + prefetch - len(self.attempts) - coming + freed
        if self.max_jobs is not None:
            capacity = min(capacity, self.max_jobs - self.fetched - coming)
        return capacity

    def _finished_max_jobs(self) -> bool:
        return self.max_jobs is not None and self.fetched >= self.max_jobs and not self.attempts

    def _record_and_claim(self, *, claim: bool = True) -> bool:
        """Record the attempts that finished and claim jobs for every free slot, in one round trip
        to the store (with nothing finished, only if `claim`); returns whether the last claim came
        back full (the queues may hold more). After a claim that came back short the loop waits: a
        job enqueued since that claim wakes it at once (see Backend.wait_for_work), so claiming
        again straight away would only cost a round trip, and keep the job threads from the GIL
        while the claimed jobs start."""
        batch = self._take_finished()
        limit = self._capacity(freed=len(batch))
        if not batch and (limit <= 0 or not claim):
            return False
        return self._follow(batch, self._send(batch, max(limit, 0)), limit)

    def _follow(self, batch: list[tuple[Attempt, Finish]], reply: FetchReply | None, limit: int) -> bool:
        """Read the reply to a call that recorded `batch` and claimed up to `limit` jobs, and start
        them; returns whether the last claim came back full. On an engine that fetches in the
        background, while claims come back full the next call goes out as soon as a reply is in,
        before that reply's jobs are started: the store works on it while this thread starts them."""
        full, records = False, []
        while reply is not None:
            try:
                applied, count = reply.wait()
            except ConveyorError:
                self._unreported = batch  # the store is away: report again next time round
                raise
            full = 0 < limit <= count
            self._switches.quick(full and self._background and self._short_jobs)
            following, next_reply, limit = self._send_next(len(batch), count, limit)
            records = reply.records()
            self._recorded(batch, applied)
            if records:
                faults.point("after_claim")
            self._start(records)
            batch, reply = following, next_reply
        if records and not full:  # the loop is about to wait: let the jobs start first
            self.pool.step_aside(_STEP_ASIDE)
        return full

    def _send(self, batch: list[tuple[Attempt, Finish]], limit: int) -> FetchReply:
        if batch:
            faults.point("before_finish")
        try:
            return self.app.backend.send_finish_and_fetch([finish for _, finish in batch], self.queues, limit,
                                                          worker_id=self.id, lease_seconds=self.lease_seconds)
        except ConveyorError:
            self._unreported = batch
            raise

    def _send_next(self, recording: int, claimed: int, limit: int
                   ) -> tuple[list[tuple[Attempt, Finish]], FetchReply | None, int]:
        """The next call, sent before the `claimed` jobs of the last reply are started (while
        `recording` outcomes are being recorded), if the engine fetches in the background and the
        claim came back full: the outcomes that came in meanwhile and the room left. Otherwise, or
        if it cannot be sent, those outcomes wait for the next time round."""
        if claimed < limit or limit <= 0 or self.stopping.is_set() or \
                not self._background:
            return [], None, 0
        following = self._take_finished(gather=False)
        room = max(self._capacity(freed=recording + len(following), coming=claimed), 0)
        if not following and room == 0:
            return [], None, 0
        try:
            return following, self._send(following, room), room
        except ConveyorError:
            return [], None, 0  # kept in _unreported by _send; the next time round meets the error

    def _take_finished(self, *, gather: bool = True) -> list[tuple[Attempt, Finish]]:
        batch, self._unreported = self._unreported, []
        while True:
            try:
                batch.append(self._done.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._short_jobs = all(attempt.ran_for <= _GATHER_MAX for attempt, _ in batch)
            if self._short_jobs and gather:
                self._gather(batch)
        return batch

    def _gather(self, batch: list[tuple[Attempt, Finish]]) -> None:
        """Short jobs finish in bursts: wait a moment for the rest of a burst, so that one round trip
        records it and refills its slots, rather than each early finisher taking a round trip of its
        own. Called only after jobs shorter than the wait itself (a slot of a 30 ms job must not idle
        for 1 ms); waits while other attempts are running and finishes keep arriving: at most
        `_GATHER_QUIET` after the last one and `_GATHER_MAX` in all. Prefetched jobs that have not
        started are not part of the burst: they run while the round trip is under way."""
        running = sum(1 for attempt in self.attempts.values() if attempt.started is not None and not attempt.done)
        deadline = time.monotonic() + _GATHER_MAX
        while running > 0:
            wait = min(_GATHER_QUIET, deadline - time.monotonic())
            if wait <= 0:
                return
            try:
                batch.append(self._done.get(timeout=wait))
            except queue.Empty:
                return
            running -= 1

    def _recorded(self, batch: list[tuple[Attempt, Finish]], applied: list[JobState | None]) -> None:
        """`applied`: per finish, the state the store left its job in (None: the lease was gone)."""
        with self._lock:
            for attempt, _ in batch:
                self.attempts.pop(attempt.record.id, None)
        self.processed += len(batch)
        self.tally.ended([(attempt.record.queue, finish, state)
                          for (attempt, finish), state in zip(batch, applied, strict=True) if state is not None])
        logged = logs.STATE_LOGGER.isEnabledFor(logging.INFO)
        for (attempt, finish), state in zip(batch, applied, strict=True):
            self._announce(attempt, finish, state, logged)

    def _start(self, records: list[JobRecord]) -> None:
        attempts = [Attempt(record) for record in records]
        with self._lock:
            for attempt in attempts:
                self.attempts[attempt.record.id] = attempt
        self.fetched += len(records)
        self.tally.started(records)
        logged = logs.STATE_LOGGER.isEnabledFor(logging.INFO)
        hooked = bool(self.app.hooks["started"])
        for attempt in attempts:
            record = attempt.record
            if logged:
                logs.state_change(record.id, record.task, record.queue, "running", "queued",
                                  attempt=record.attempts, max_attempts=record.max_attempts, worker=self.id)
            if hooked:
                self.app.emit(JobEvent("started", record))
            self.pool.submit(attempt)

    def _wait_for_a_slot(self) -> None:
        """Every slot is busy. Jobs prefetched automatically, behind jobs that were short, wait at
        most `_PREFETCH_HOLD` for a slot: if none frees by then, the jobs have turned long, and those
        not started go back to the queue for other workers."""
        if self.prefetch is not None or not self._short_jobs:
            self.wake.wait(self.idle_timeout)
            return
        if self.wake.wait(_PREFETCH_HOLD):
            return
        self._short_jobs = False
        self._release(self.pool.take_unstarted(), "no slot freed for it: the jobs ahead of it are long")

    def _on_done(self, attempt: Attempt, finish: Finish) -> None:
        """Called on the pool's threads; the main loop records outcomes in batches."""
        attempt.ended = time.monotonic()
        attempt.done = True
        self._done.put((attempt, finish))
        self.wake.set()

    def _record_finished(self) -> None:
        """Record finished attempts without claiming more (while stopping)."""
        batch = self._take_finished()
        if not batch:
            return
        try:
            applied = self.app.backend.finish([finish for _, finish in batch])
        except ConveyorError:
            self._unreported = batch
            raise
        self._recorded(batch, applied)

    def _announce(self, attempt: Attempt, finish: Finish, state: JobState | None, logged: bool) -> None:
        """Log a recorded outcome (if state changes are logged) and call its hooks (if any), by the
        state the store left the job in: a retry of a job cancelled meanwhile is announced cancelled."""
        record = attempt.record
        if state is None:
            logger.warning("job %s: outcome %s not recorded: this worker no longer holds its lease (it was "
                           "rescued, cancelled or retried meanwhile)", record.id, finish.state)
            return
        event = _EVENT_OF_STATE[state]
        hooked = not finish.release and self.app.hooks[event]
        if not logged and not hooked:
            return  # the common case at WARNING with no hooks: nothing to build
        error = f"{finish.error.type}: {finish.error.message}" if finish.error else None
        duration = (time.monotonic() - attempt.started) * 1000 if attempt.started is not None else None
        logs.state_change(record.id, record.task, record.queue, str(state), "running", attempt=record.attempts,
                          max_attempts=record.max_attempts, worker=self.id, error=error, duration_ms=duration,
                          delay=finish.delay if state in (JobState.SCHEDULED, JobState.QUEUED) else None)
        if not hooked:
            return  # nobody listens: do not decode the result for nothing
        result = None
        if finish.result is not None:
            from conveyor.serialization import decode_result
            result = decode_result(finish.result)
        self.app.emit(JobEvent(event, record, result=result, error=error,
                               delay=finish.delay if event == "retrying" else None))

    # -- the supervisor: leases, cancels, timeouts, rescue, pruning -------------------------

    def _supervise(self) -> None:
        next_heartbeat = next_rescue = time.monotonic()
        prune_interval = _prune_interval(self.app.retention)
        next_prune = time.monotonic() + prune_interval
        next_report = time.monotonic() + self.report_interval
        next_reclaim, reclaimed_at = time.monotonic() + _RECLAIM_INTERVAL, 0
        while not self.stopping.wait(_SUPERVISOR_TICK) or self.attempts:
            with self._lock:
                attempts = list(self.attempts.values())
            self.pool.enforce_timeouts(attempts)
            now = time.monotonic()
            try:
                if now >= next_heartbeat:
                    next_heartbeat = now + self.heartbeat_interval
                    self._heartbeat(attempts)
                if now >= next_rescue:
                    next_rescue = now + self.rescue_interval
                    self._rescue()
                if now >= next_report:
                    next_report = now + self.report_interval
                    self._report()
                if now >= next_prune:
                    next_prune = now + prune_interval
                    self.app.backend.prune()
                if now >= next_reclaim and self.processed - reclaimed_at >= _RECLAIM_JOBS:
                    next_reclaim, reclaimed_at = now + _RECLAIM_INTERVAL, self.processed
                    self.app.backend.reclaim()
            except ConveyorError as exc:
                logger.warning("worker %s: supervisor could not reach the store (%s); will retry", self.id, exc)
            except Exception:
                logger.exception("worker %s: supervisor error; carrying on", self.id)
            if self._stopped_for_good:
                return

    _stopped_for_good = False

    def _heartbeat(self, attempts: list[Attempt]) -> None:
        live = [a for a in attempts if not a.lost]
        if not live or faults.SKIP_HEARTBEATS:
            return
        faults.point("before_heartbeat")
        reply = self.app.backend.heartbeat([a.lease for a in live], self.lease_seconds)
        for attempt in live:
            job_id = attempt.record.id
            if job_id in reply.lost:
                if attempt.done or job_id not in self.attempts:
                    # Finished, or handed back unstarted, between the snapshot and the heartbeat: that
                    # cleared the lease; if the lease truly lapsed, a refused finish will say so.
                    continue
                attempt.lost = True
                logger.warning("job %s: this worker lost its lease (rescued elsewhere after a stall?); its "
                               "outcome will not be recorded", job_id)
            elif job_id in reply.cancel_requested and not attempt.cancel.is_set():
                logger.info("job %s: cancel requested, stopping it", job_id)
                self.pool.cancel(attempt)

    def info(self) -> WorkerInfo:
        with self._lock:
            running = tuple(self.attempts)
        return WorkerInfo(id=self.id, hostname=socket.gethostname(), pid=os.getpid(), queues=tuple(self.queues),
                          concurrency=self.concurrency, pool=self.pool_kind, started_at=self.started_at,
                          running=running, processed=self.processed)

    def _report(self) -> None:
        """Announce this worker and send its totals; what fails to go out goes with the next report."""
        totals = self.tally.take()
        try:
            clock = self.app.backend.report_worker(self.info(), totals, ttl=max(3 * self.report_interval,
                                                                                self.lease_seconds))
        except ConveyorError as exc:
            self.tally.give_back(totals)
            logger.warning("worker %s: could not report to the store (%s); will retry", self.id, exc)
            return
        self.tally.clock_offset = clock - time.time()

    def _rescue(self) -> None:
        for record in self.app.backend.rescue_expired():
            logs.state_change(record.id, record.task, record.queue, str(record.state), "running",
                              attempt=record.attempts, max_attempts=record.max_attempts, worker=self.id,
                              error="WorkerLost: lease expired")

    # -- stopping ---------------------------------------------------------------------------

    def _on_first_signal(self, name: str) -> None:
        logger.info("worker %s: %s received, finishing running jobs (up to %ss)", self.id, name,
                    self.shutdown_timeout)
        self.stop()

    def _on_second_signal(self) -> None:
        logger.warning("worker %s: second signal, handing jobs back now", self.id)
        self.hurry()

    def stop(self) -> None:
        """Stop taking jobs; running ones get `shutdown_timeout` seconds, then go back to the queue."""
        self.stopping.set()
        self.wake.set()

    def hurry(self) -> None:
        """Stop now: running jobs go back to the queue at once (what a second SIGTERM does)."""
        self._hurry.set()
        self.stop()

    def _shutdown(self) -> None:
        self.stopping.set()
        self._release(self.pool.take_unstarted(), "not started")
        deadline = time.monotonic() + self.shutdown_timeout
        while True:
            try:
                self._record_finished()
            except ConveyorError as exc:
                logger.warning("worker %s: could not record outcomes while stopping (%s)", self.id, exc)
            if not self.attempts or time.monotonic() >= deadline or self._hurry.is_set():
                break
            self.wake.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self.wake.clear()
        with self._lock:
            leftover = list(self.attempts.values())
        self._release(leftover, "still running at the shutdown timeout")
        self._stopped_for_good = True
        self.pool.stop()
        self._supervisor.join(timeout=2)
        self._report()
        try:
            self.app.backend.remove_worker(self.id)
        except ConveyorError as exc:
            logger.warning("worker %s: could not sign off (%s); the store forgets it when its report expires",
                           self.id, exc)
        logger.info("worker %s stopped after %d jobs", self.id, self.processed)

    def _release(self, attempts: list[Attempt], why: str) -> None:
        if not attempts:
            return
        finishes = [Finish(a.record.id, a.record.lease_token or "", JobState.QUEUED, release=True)
                    for a in attempts]
        try:
            self.app.backend.finish(finishes)
        except ConveyorError as exc:
            logger.warning("worker %s: could not hand back %d jobs (%s); they will be rescued when their "
                           "leases expire", self.id, len(attempts), exc)
        self.fetched -= len(attempts)  # handed back unstarted: --max-jobs counts only jobs that ran
        for attempt in attempts:
            with self._lock:
                self.attempts.pop(attempt.record.id, None)
            logs.state_change(attempt.record.id, attempt.record.task, attempt.record.queue, "queued", "running",
                              attempt=attempt.record.attempts, max_attempts=attempt.record.max_attempts,
                              worker=self.id, error=f"handed back: {why}")
