"""The job body of the "1 INCR/job" rows, the same function for conveyor and for Huey.

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
