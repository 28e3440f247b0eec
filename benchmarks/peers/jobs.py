"""The job bodies every library runs in compare.py, and how the runner reads what they recorded.

The same two functions run on conveyor and on every peer, so completion and latency are detected
the same way for all of them, through the benchmark's own redis-server ($BENCH_REDIS_URL), which
every run starts whatever engine the library itself uses:

`tally(key)` is the no-op job of the throughput rows. It counts in the worker process's memory: the
number of jobs done, per 10 ms bucket of finish time, with this process's first start and last
finish. A daemon thread per process, woken by the first job after a flush, writes those to Redis
5 ms later in one pipeline (INCRBY the total, HINCRBY the buckets, HSET the process's first start
and last finish). So a job costs a lock and two clock reads, not a round trip: the drain figure is
the library's own cost, as in bench.py's "no-op counted in process" row, and the per-bucket counts
give the throughput over any window of the drain (the two-process drains and the backlog need that).

`probe(key, index)` is the latency probe: it reads the clock when it starts and HSETs it under its
index; the producer read the clock just before enqueueing it.

Only redis-py is needed, so this module imports in the project venv and in the peers' venvs alike.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

BUCKET = 0.01  # seconds per bucket of the finish-time histogram
FLUSH_DELAY = 0.005  # how long the flusher waits after a wake-up, so that one pipeline carries many jobs

_client: Any = None
_client_pid = 0
_lock = threading.Lock()


def client() -> Any:
    """One redis-py client per process (a forked child makes its own)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        with _lock:
            if _client is None or _client_pid != os.getpid():
                import redis

                _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
                _client_pid = os.getpid()
    return _client


def total_key(key: str) -> str:
    return f"{key}:done"


def buckets_key(key: str) -> str:
    return f"{key}:buckets"


def firsts_key(key: str) -> str:
    return f"{key}:first"


def lasts_key(key: str) -> str:
    return f"{key}:last"


def probes_key(key: str) -> str:
    return f"{key}:probes"


@dataclass
class _Tally:
    pending: int = 0
    buckets: dict[int, int] | None = None
    first: float = 0.0
    last: float = 0.0
    first_written: bool = False


_tallies: dict[str, _Tally] = {}
_wake = threading.Event()
_flusher_pid = 0


def _ensure_flusher() -> None:
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    with _lock:
        if _flusher_pid != os.getpid():  # first job in this process (or in a child forked after one)
            _tallies.clear()
            _wake.clear()
            threading.Thread(target=_flush_loop, name="bench-tally-flusher", daemon=True).start()
            _flusher_pid = os.getpid()


def _flush_loop() -> None:
    pid = str(os.getpid())
    while True:
        _wake.wait()
        time.sleep(FLUSH_DELAY)
        with _lock:
            _wake.clear()
            work = []
            for key, tally_ in _tallies.items():
                if tally_.pending:
                    work.append((key, tally_.pending, tally_.buckets or {}, tally_.first, tally_.last,
                                 tally_.first_written))
                    tally_.pending = 0
                    tally_.buckets = None
                    tally_.first_written = True
        if not work:
            continue
        with client().pipeline(transaction=False) as pipe:
            for key, pending, buckets, first, last, first_written in work:
                for bucket, count in buckets.items():
                    pipe.hincrby(buckets_key(key), str(bucket), count)
                if not first_written:
                    pipe.hset(firsts_key(key), pid, repr(first))
                pipe.hset(lasts_key(key), pid, repr(last))
                pipe.incrby(total_key(key), pending)  # last: the total is what the runner waits on
            pipe.execute()


def tally(key: str) -> None:
    """The no-op job of the throughput rows: counted in this process, written to Redis in batches."""
    _record(key, time.time())


def _record(key: str, started: float) -> None:
    """Count one job that started at `started` and finishes now (a no-op for tally; the mix's jobs)."""
    _ensure_flusher()
    finished = time.time()
    bucket = int(finished / BUCKET)
    with _lock:
        tally_ = _tallies.get(key)
        if tally_ is None:
            tally_ = _tallies[key] = _Tally(first=started)
        tally_.first = min(tally_.first, started)
        tally_.pending += 1
        if tally_.buckets is None:
            tally_.buckets = {}
        tally_.buckets[bucket] = tally_.buckets.get(bucket, 0) + 1
        tally_.last = max(tally_.last, finished)
    _wake.set()


# -- the realistic mix (compare.py --mix) ----------------------------------------------------------

MIX_SEED = 20261130  # the I/O jobs' sleeps: the same durations, in the same order, for every library
SLEEP_RANGE = (0.010, 0.050)  # seconds
CPU_LOOPS = 130_000  # the CPU-bound job's loop: about 5 ms of one core on the machine this was set on


def sleep_durations(count: int, seed: int = MIX_SEED) -> list[float]:
    """The I/O-bound jobs' sleeps, drawn uniformly from SLEEP_RANGE with a fixed seed."""
    import random

    draw = random.Random(seed)
    return [round(draw.uniform(*SLEEP_RANGE), 6) for _ in range(count)]


def io_sleep(key: str, seconds: float) -> None:
    """The I/O-bound job for thread pools: blocks for `seconds` (like waiting on an SMTP server)."""
    started = time.time()
    time.sleep(seconds)
    _record(key, started)


async def io_sleep_async(key: str, seconds: float) -> None:
    """The I/O-bound job for asyncio workers: awaits `seconds`."""
    import asyncio

    started = time.time()
    await asyncio.sleep(seconds)
    _record(key, started)


def spin(loops: int) -> int:
    """Pure-Python CPU work: holds the GIL throughout."""
    total = 0
    for number in range(loops):
        total += number * number % 7
    return total


def burn(key: str, loops: int) -> None:
    """The CPU-bound job: `loops` turns of `spin`, the same fixed amount of work for every library."""
    started = time.time()
    spin(loops)
    _record(key, started)


def cpu_seconds(loops: int, repeats: int = 20, batches: int = 5) -> float:
    """The CPU time of one `burn` body in this process: the median over `batches` of `repeats` runs."""
    spin(loops)  # warm-up
    per_job = []
    for _ in range(batches):
        start = time.process_time()
        for _ in range(repeats):
            spin(loops)
        per_job.append((time.process_time() - start) / repeats)
    per_job.sort()
    return per_job[len(per_job) // 2]


def probe(key: str, index: int) -> None:
    """The latency probe: when it started, under its index."""
    started = time.time()
    client().hset(probes_key(key), str(index), repr(started))


# -- the runner's side -------------------------------------------------------------------------


@dataclass
class Drain:
    done: int
    firsts: list[float]  # per worker process: its first job's start
    lasts: list[float]  # per worker process: its last job's finish
    buckets: dict[int, int]  # finish-time bucket -> jobs

    @property
    def span(self) -> float:
        return max(self.lasts) - min(self.firsts)

    def rate_all_running(self) -> tuple[float, float]:
        """jobs/s while every worker process was running: from the last process's first start to
        the first process's last finish, counted from the 10 ms buckets (pro rata at the edges).
        With one process that is jobs / (last finish - first start). Returns (rate, window in s);
        a window shorter than 20 buckets (a drain too short for the processes' start-up skew) is
        reported as 0 and the rate is then jobs / (last finish - first start), start-up skew included."""
        if len(self.firsts) == 1:
            return self.done / self.span, self.span
        start, end = max(self.firsts), min(self.lasts)
        if end - start < 20 * BUCKET:
            return self.done / self.span, 0.0
        return self.count_between(start, end) / (end - start), end - start

    def count_between(self, start: float, end: float) -> float:
        total = 0.0
        for bucket, count in self.buckets.items():
            low, high = bucket * BUCKET, (bucket + 1) * BUCKET
            overlap = min(high, end) - max(low, start)
            if overlap > 0:
                total += count * overlap / BUCKET
        return total

    def marks(self, every: int) -> list[float]:
        """The times at which the cumulative count crossed every, 2*every, ... (end of bucket)."""
        times: list[float] = []
        running = 0
        target = every
        for bucket in sorted(self.buckets):
            running += self.buckets[bucket]
            while running >= target:
                times.append((bucket + 1) * BUCKET)
                target += every
        return times


def read_done(redis_client: Any, key: str) -> int:
    return int(redis_client.get(total_key(key)) or 0)


def read_drain(redis_client: Any, key: str) -> Drain:
    firsts = [float(v) for v in redis_client.hvals(firsts_key(key))]
    lasts = [float(v) for v in redis_client.hvals(lasts_key(key))]
    buckets = {int(k): int(v) for k, v in redis_client.hgetall(buckets_key(key)).items()}
    return Drain(read_done(redis_client, key), firsts, lasts, buckets)


def read_probes(redis_client: Any, key: str) -> dict[int, float]:
    return {int(k): float(v) for k, v in redis_client.hgetall(probes_key(key)).items()}
