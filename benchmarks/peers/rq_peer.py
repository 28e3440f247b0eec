"""RQ with its SimpleWorker: one job at a time in the worker process.

RQ's default Worker forks a child per job (~60 jobs/s in shared/BENCHMARKS.md); SimpleWorker runs
them in the worker process itself, which is RQ's fastest single-process setting; it has no threads,
so its concurrency is 1 whatever the others use. The worker is `python -m rq.cli worker -w
rq.worker.SimpleWorker -u URL --logging_level WARNING bench`. Bulk enqueue: `Queue.enqueue_many`.
"""

from __future__ import annotations

from typing import Any

from peers import jobs
from peers.base import QUEUE, Context, pool


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("rq")


class Producer:
    is_async = False
    bulk = "Queue.enqueue_many"

    def __init__(self, ctx: Context) -> None:
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(ctx.store)
        self.redis.ping()
        self.queue: Any = Queue(QUEUE, connection=self.redis)

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.queue.enqueue(jobs.tally, key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(jobs.tally, (key,)) for _ in range(count)])

    def probe(self, key: str, index: int) -> None:
        self.queue.enqueue(jobs.probe, key, index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        from rq import Queue

        if task != "cpu":
            raise ValueError(f"RQ has no worker for the {task!r} mix stage")
        for first in range(0, len(values), 1000):
            chunk = values[first:first + 1000]
            self.queue.enqueue_many([Queue.prepare_data(jobs.burn, (key, value)) for value in chunk])

    def close(self) -> None:
        self.redis.close()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_argv(ctx: Context) -> list[str]:
    if pool(ctx) == "worker-pool":  # the mix's CPU stage: `rq worker-pool -n N`, N forked SimpleWorkers
        return ["-m", "rq.cli", "worker-pool", "-n", str(ctx.concurrency), "-w", "rq.worker.SimpleWorker",
                "-u", ctx.store, "-l", "WARNING", QUEUE]
    return ["-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "-u", ctx.store, "--logging_level", "WARNING",
            QUEUE]
