"""Huey, on Redis (RedisHuey: BRPOP while idle) and on its SQLite storage (SqliteHuey: polling).

The consumer is `python -m huey.bin.huey_consumer peers.huey_peer.huey -w 8 -k thread -q`: one
process, 8 threads, WARNING logging (Huey logs two INFO lines per task by default). Huey has no
bulk enqueue. Results are not stored (results=False): the jobs report to Redis themselves.
"""

from __future__ import annotations

from typing import Any

from peers import jobs
from peers.base import Context, pool


def make(ctx: Context) -> tuple[Any, Any, Any, dict[str, Any]]:
    if ctx.engine == "sqlite":
        from huey import SqliteHuey

        huey: Any = SqliteHuey(ctx.name, filename=ctx.store, results=False)
    else:
        from huey import RedisHuey

        huey = RedisHuey(ctx.name, url=ctx.store, results=False)
    mix = {"io": huey.task(name="io")(jobs.io_sleep), "cpu": huey.task(name="cpu")(jobs.burn)}  # the mix's
    return huey, huey.task(name="tally")(jobs.tally), huey.task(name="probe")(jobs.probe), mix


_ctx = Context.from_env()
huey = make(_ctx)[0] if _ctx is not None else None  # the consumer's instance


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("huey")


class Producer:
    is_async = False
    bulk = None

    def __init__(self, ctx: Context) -> None:
        self.huey, self.tally, self.probe_task, self.mix = make(ctx)

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.tally(key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        raise NotImplementedError

    def probe(self, key: str, index: int) -> None:
        self.probe_task(key, index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        call = self.mix[task]
        for value in values:
            call(key, value)

    def close(self) -> None:
        pool = getattr(self.huey.storage, "pool", None)
        if pool is not None:
            pool.disconnect()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_argv(ctx: Context) -> list[str]:
    kind = pool(ctx) or "thread"  # the mix's CPU stage: process (-k process: the consumer forks -w children)
    return ["-m", "huey.bin.huey_consumer", "peers.huey_peer.huey", "-w", str(ctx.concurrency), "-k", kind, "-q"]
