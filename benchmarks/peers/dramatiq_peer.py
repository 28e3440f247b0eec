"""Dramatiq on Redis (RedisBroker), default middleware, no retries.

The worker is `python -m dramatiq peers.dramatiq_peer -p 1 -t 8 -Q bench`: Dramatiq's CLI forks
one worker process with 8 threads (so the measured tree is that child and its parent). Dramatiq has
no bulk enqueue (a group sends its messages one by one).
"""

from __future__ import annotations

import logging
from typing import Any

from peers import jobs
from peers.base import QUEUE, Context, pool


def make(ctx: Context) -> tuple[Any, Any, Any, dict[str, Any]]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=ctx.store)
    dramatiq.set_broker(broker)
    tally = dramatiq.actor(jobs.tally, actor_name="tally", queue_name=QUEUE, max_retries=0)
    probe = dramatiq.actor(jobs.probe, actor_name="probe", queue_name=QUEUE, max_retries=0)
    mix = {"io": dramatiq.actor(jobs.io_sleep, actor_name="io", queue_name=QUEUE, max_retries=0),
           "cpu": dramatiq.actor(jobs.burn, actor_name="cpu", queue_name=QUEUE, max_retries=0)}
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    return broker, tally, probe, mix


_ctx = Context.from_env()
broker = make(_ctx)[0] if _ctx is not None else None  # the worker's (the CLI imports this module)


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("dramatiq")


class Producer:
    is_async = False
    bulk = None

    def __init__(self, ctx: Context) -> None:
        self.broker, self.tally, self.probe_task, self.mix = make(ctx)

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.tally.send(key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        raise NotImplementedError

    def probe(self, key: str, index: int) -> None:
        self.probe_task.send(key, index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        for value in values:
            self.mix[task].send(key, value)

    def close(self) -> None:
        self.broker.close()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_argv(ctx: Context) -> list[str]:
    if pool(ctx) == "processes":  # the mix's CPU stage: -p N worker processes of one thread each
        return ["-m", "dramatiq", "peers.dramatiq_peer", "-p", str(ctx.concurrency), "-t", "1", "-Q", QUEUE]
    return ["-m", "dramatiq", "peers.dramatiq_peer", "-p", "1", "-t", str(ctx.concurrency), "-Q", QUEUE]
