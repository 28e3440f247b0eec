"""The interface every adapter module provides, and the context the runner hands it.

An adapter module defines:

- `version() -> str`: the library's version;
- `open_producer(ctx) -> Producer`: a connected producer (see `Producer`);
- `worker_argv(ctx) -> list[str]`: the command (after the interpreter) of ONE worker process on
  the queue, at concurrency `ctx.concurrency`, logging at WARNING. The driver execs it, so the
  runner's pid is the worker's. In the realistic mix `pool(ctx)` names the kind of worker
  (registry.MIX: threads, asyncio or processes) and `ctx.concurrency` is 50 or the process count;
- optionally `setup(ctx)`: one-time preparation of the engine (procrastinate: its schema).

The worker side of a module builds its app at import time from $BENCH_CTX, like the producer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

QUEUE = "bench"
CTX_ENV = "BENCH_CTX"


@dataclass
class Context:
    """Where one measurement runs: fresh for every measurement (a new Redis namespace / key
    prefix, a new SQLite file, a new PostgreSQL schema or database)."""

    engine: str  # redis | sqlite | postgres
    store: str  # the library's store: a redis:// URL, a SQLite file path, a postgresql:// URL
    name: str  # unique per measurement: Huey's name, conveyor's namespace or schema, ...
    redis_url: str  # the benchmark's redis-server, where the jobs count (peers.jobs)
    concurrency: int = 8
    options: dict[str, Any] | None = None

    def to_env(self) -> dict[str, str]:
        return {CTX_ENV: json.dumps(asdict(self)), "BENCH_REDIS_URL": self.redis_url}

    @classmethod
    def from_env(cls) -> Context | None:
        raw = os.environ.get(CTX_ENV)
        return cls(**json.loads(raw)) if raw else None


def pool(ctx: Context) -> str | None:
    """The worker kind the mix asks for (registry.MIX's `pool`), or None: the core table's worker."""
    return (ctx.options or {}).get("pool")


class Producer(Protocol):
    """The producer side. For asyncio libraries (`is_async = True`) the three verbs are coroutines."""

    is_async: bool
    bulk: str | None  # the bulk API used by enqueue_bulk ("task.map", "enqueue_many", ...) or None: none

    def enqueue_one(self, key: str, count: int) -> Any:
        """`count` tally jobs, one call each, in a loop."""

    def enqueue_bulk(self, key: str, count: int) -> Any:
        """`count` tally jobs through the library's bulk API (only when `bulk` is not None)."""

    def probe(self, key: str, index: int) -> Any:
        """One latency probe job."""

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> Any:
        """The realistic mix's backlog (compare.py --mix): one job of `task` per value, untimed.
        `task` is "io" (jobs.io_sleep, value: seconds), "io_async" (jobs.io_sleep_async) or "cpu"
        (jobs.burn, value: loops). Only for the tasks the registry's MIX lists for the library."""

    def close(self) -> Any:
        ...
