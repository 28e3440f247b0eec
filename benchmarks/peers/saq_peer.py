"""SAQ (asyncio, Redis).

The worker is `python -m saq peers.saq_peer.settings`: one process, concurrency 8, SAQ's default
logging (ERROR unless -v). SAQ has no bulk enqueue: the bulk row is an asyncio.gather of enqueue
calls, 1,000 at a time. (`key` is SAQ's own keyword, the job's unique key, so the jobs' counter
is passed as `counter`.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from peers import jobs
from peers.base import QUEUE, Context


async def tally(_ctx: dict[str, Any], *, counter: str) -> None:
    jobs.tally(counter)


async def probe(_ctx: dict[str, Any], *, counter: str, index: int) -> None:
    jobs.probe(counter, index)


async def io_async(_ctx: dict[str, Any], *, counter: str, value: float) -> None:
    await jobs.io_sleep_async(counter, value)  # the realistic mix's I/O-bound job


def make_queue(ctx: Context) -> Any:
    from saq import Queue

    return Queue.from_url(ctx.store, name=QUEUE)


_ctx = Context.from_env()
settings = ({"queue": make_queue(_ctx), "functions": [tally, probe, io_async], "concurrency": _ctx.concurrency}
            if _ctx is not None else None)


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("saq")


class Producer:
    is_async = True
    bulk = "asyncio.gather(enqueue)"

    def __init__(self, ctx: Context) -> None:
        self.queue = make_queue(ctx)

    async def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            await self.queue.enqueue("tally", counter=key)

    async def enqueue_bulk(self, key: str, count: int) -> None:
        for first in range(0, count, 1000):
            await asyncio.gather(*(self.queue.enqueue("tally", counter=key) for _ in range(min(1000, count - first))))

    async def probe(self, key: str, index: int) -> None:
        await self.queue.enqueue("probe", counter=key, index=index)

    async def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        for value in values:
            await self.queue.enqueue(task, counter=key, value=value)

    async def close(self) -> None:
        await self.queue.disconnect()


async def open_producer(ctx: Context) -> Producer:
    producer = Producer(ctx)
    await producer.queue.connect()
    return producer


def worker_argv(ctx: Context) -> list[str]:
    return ["-m", "saq", "peers.saq_peer.settings"]
