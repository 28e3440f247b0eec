"""Celery on Redis (kombu's Redis transport), results ignored.

The worker is `python -m celery -A peers.celery_peer worker -P threads -c 8 -Q bench -l WARNING`:
one process with 8 threads, like the other workers (Celery's default prefork pool would be 1 + 8
processes). Everything else is Celery's default (prefetch multiplier 4, gossip, mingle, heartbeat).
The bulk enqueue is a `group(...).apply_async()`, which publishes the messages one by one.
"""

from __future__ import annotations

from typing import Any

from peers import jobs
from peers.base import QUEUE, Context, pool


def make(ctx: Context) -> tuple[Any, Any, Any, dict[str, Any]]:
    from celery import Celery

    celery = Celery("bench", broker=ctx.store, set_as_current=True)
    celery.conf.update(task_ignore_result=True, task_default_queue=QUEUE, broker_connection_retry_on_startup=True,
                       worker_hijack_root_logger=True, worker_redirect_stdouts=False)
    mix = {"io": celery.task(name="io", ignore_result=True)(jobs.io_sleep),  # the realistic mix's jobs
           "cpu": celery.task(name="cpu", ignore_result=True)(jobs.burn)}
    return (celery, celery.task(name="tally", ignore_result=True)(jobs.tally),
            celery.task(name="probe", ignore_result=True)(jobs.probe), mix)


_ctx = Context.from_env()
app = make(_ctx)[0] if _ctx is not None else None  # the worker's instance (-A peers.celery_peer)


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("celery")


class Producer:
    is_async = False
    bulk = "group().apply_async()"

    def __init__(self, ctx: Context) -> None:
        self.app, self.tally, self.probe_task, self.mix = make(ctx)
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.tally.delay(key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        from celery import group

        group(self.tally.s(key) for _ in range(count)).apply_async()

    def probe(self, key: str, index: int) -> None:
        self.probe_task.delay(key, index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        for value in values:
            self.mix[task].delay(key, value)

    def close(self) -> None:
        self.app.close()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_argv(ctx: Context) -> list[str]:
    kind = pool(ctx) or "threads"  # the mix's CPU stage: prefork (Celery's default pool: -c child processes)
    return ["-m", "celery", "-A", "peers.celery_peer", "worker", "-P", kind, "-c", str(ctx.concurrency),
            "-Q", QUEUE, "-l", "WARNING"]
