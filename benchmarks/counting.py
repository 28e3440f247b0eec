"""The job bodies that time a drain from inside the jobs, the same functions for conveyor and Huey.

`count_one` (the "1 INCR/job" rows) does one Redis INCR per job, as shared/BENCHMARKS.md counts.
`tally` (the "no-op, counted in process" rows) counts in the worker's memory and writes to Redis
only when the last job of the drain finishes, so the job is as near a no-op as a job that can be
timed from outside: both libraries then pay only for their own queueing.

Each job does one Redis INCR on a counter key, so every library's completions are detected the
same way (as in shared/BENCHMARKS.md). The job that takes the counter to 1 records when it
started, the one that takes it to `total` when it finished: jobs/s = total / (last finish - first
start), the same span the no-op rows read from conveyor's store. The workers reach Redis through
$BENCH_REDIS_URL, which the benchmark sets; redis-py is imported on first use only.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

_client: Any = None
_lock = threading.Lock()


def client() -> Any:
    """One redis-py client (and connection pool) per process, shared by the worker's threads."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                import redis

                _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


def first_start_key(key: str) -> str:
    return f"{key}:first-start"


def last_finish_key(key: str) -> str:
    return f"{key}:last-finish"


def count_one(key: str, total: int) -> None:
    started = time.time()
    done = client().incr(key)
    if done == 1:
        client().set(first_start_key(key), repr(started))
    if done == total:
        client().set(last_finish_key(key), repr(time.time()))


_tallies: dict[str, tuple[int, float]] = {}  # key -> (jobs done in this process, first start)


def tally(key: str, total: int) -> None:
    started = time.time()
    with _lock:
        done, first = _tallies.get(key, (0, started))
        done += 1
        _tallies[key] = (done, first)
    if done == total:
        with client().pipeline(transaction=False) as pipe:
            pipe.set(key, total)
            pipe.set(first_start_key(key), repr(first))
            pipe.set(last_finish_key(key), repr(time.time()))
            pipe.execute()
