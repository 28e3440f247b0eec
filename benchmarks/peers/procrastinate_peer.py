"""procrastinate on PostgreSQL (psycopg 3, its default connector), async tasks.

Every measurement gets a fresh database copied from a template holding procrastinate's schema
(applied once by `setup`, by procrastinate itself). The worker is `python -m procrastinate --app
peers.procrastinate_peer.app --log-level warning worker -q bench -c 8`: one process, its asyncio
worker at concurrency 8 (procrastinate's docs keep concurrency for async tasks). The producer uses
the sync API; the bulk enqueue is `batch_defer`, 1,000 jobs per call.
"""

from __future__ import annotations

from typing import Any

from peers import jobs
from peers.base import QUEUE, Context


async def tally(key: str) -> None:
    jobs.tally(key)


async def probe(key: str, index: int) -> None:
    jobs.probe(key, index)


async def io_async(key: str, value: float) -> None:
    await jobs.io_sleep_async(key, value)  # the realistic mix's I/O-bound job


def make(conninfo: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    mix = {"io_async": app.task(name="io_async", queue=QUEUE)(io_async)}
    return (app, app.task(name="tally", queue=QUEUE)(tally), app.task(name="probe", queue=QUEUE)(probe), mix)


_ctx = Context.from_env()
app = make(_ctx.store)[0] if _ctx is not None else None  # the worker's (the CLI opens it)


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("procrastinate")


def setup(ctx: Context) -> None:
    """procrastinate's schema, applied by procrastinate to `ctx.store` (the template database)."""
    template = make(ctx.store)[0]
    with template.open():
        template.schema_manager.apply_schema()


class Producer:
    is_async = False
    bulk = "batch_defer"

    def __init__(self, ctx: Context) -> None:
        self.app, self.tally, self.probe_task, self.mix = make(ctx.store)
        self.app.open()

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.tally.defer(key=key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        for first in range(0, count, 1000):
            self.tally.batch_defer(*({"key": key} for _ in range(min(1000, count - first))))

    def probe(self, key: str, index: int) -> None:
        self.probe_task.defer(key=key, index=index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        for first in range(0, len(values), 1000):
            self.mix[task].batch_defer(*({"key": key, "value": value} for value in values[first:first + 1000]))

    def close(self) -> None:
        self.app.close()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_argv(ctx: Context) -> list[str]:
    return ["-m", "procrastinate", "--app", "peers.procrastinate_peer.app", "--log-level", "warning", "worker",
            "-q", QUEUE, "-c", str(ctx.concurrency)]
