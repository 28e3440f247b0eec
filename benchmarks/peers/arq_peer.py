"""arq (asyncio, Redis), in its own venv (it pins redis<6).

The worker is `python -m arq peers.arq_peer.WorkerSettings --custom-log-dict peers.arq_peer.LOG_CONFIG`:
one process, max_jobs 8, results not kept, WARNING logging (arq logs two INFO lines per job by
default). poll_delay is 10 ms, not arq's default 0.5 s: arq sleeps poll_delay between two reads of
the queue even with a backlog, so its default caps a drain near 200 jobs/s (shared/BENCHMARKS.md);
10 ms is arq at its best. arq has no bulk API: the bulk row is an asyncio.gather of enqueue_job
calls, 1,000 at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from peers import jobs
from peers.base import QUEUE, Context

POLL_DELAY = 0.01


async def tally(_ctx: dict[str, Any], key: str) -> None:
    jobs.tally(key)


async def probe(_ctx: dict[str, Any], key: str, index: int) -> None:
    jobs.probe(key, index)


async def io_async(_ctx: dict[str, Any], key: str, seconds: float) -> None:
    await jobs.io_sleep_async(key, seconds)  # the realistic mix's I/O-bound job


def redis_settings(ctx: Context) -> Any:
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(ctx.store)


LOG_CONFIG = {"version": 1, "disable_existing_loggers": False,
              "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
              "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}}}

_ctx = Context.from_env()
if _ctx is not None:
    class WorkerSettings:
        functions = [tally, probe, io_async]
        redis_settings = redis_settings(_ctx)
        queue_name = QUEUE
        max_jobs = _ctx.concurrency
        poll_delay = POLL_DELAY
        keep_result = 0
        max_tries = 1
        log_results = False


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("arq")


class Producer:
    is_async = True
    bulk = "asyncio.gather(enqueue_job)"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pool: Any = None

    async def connect(self) -> None:
        from arq import create_pool

        self.pool = await create_pool(redis_settings(self.ctx), default_queue_name=QUEUE)
        await self.pool.ping()

    async def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            await self.pool.enqueue_job("tally", key)

    async def enqueue_bulk(self, key: str, count: int) -> None:
        for first in range(0, count, 1000):  # 1,000 at a time, like conveyor's default batch
            await asyncio.gather(*(self.pool.enqueue_job("tally", key) for _ in range(min(1000, count - first))))

    async def probe(self, key: str, index: int) -> None:
        await self.pool.enqueue_job("probe", key, index)

    async def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        for value in values:
            await self.pool.enqueue_job(task, key, value)

    async def close(self) -> None:
        await self.pool.aclose()


async def open_producer(ctx: Context) -> Producer:
    producer = Producer(ctx)
    await producer.connect()
    return producer


def worker_argv(ctx: Context) -> list[str]:
    return ["-m", "arq", "peers.arq_peer.WorkerSettings", "--custom-log-dict", "peers.arq_peer.LOG_CONFIG"]
