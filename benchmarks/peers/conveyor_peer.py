"""conveyor itself, on any of its three engines, behind the same interface as the peers.

Runs in the project venv. The store is `ctx.store` with a fresh namespace (Redis) or schema
(PostgreSQL) or file (SQLite) per measurement; the worker is `python -m conveyor.cli worker
peers.conveyor_peer:app -q bench -c 8 --log-level WARNING`, which reads the URL from $CONVEYOR_URL.
"""

from __future__ import annotations

from typing import Any

from conveyor import Conveyor
from peers import jobs
from peers.base import QUEUE, Context, pool


def store_url(ctx: Context) -> str:
    if ctx.engine == "redis":
        return f"{ctx.store}?namespace={ctx.name}"
    if ctx.engine == "postgres":
        return f"{ctx.store}?schema={ctx.name}"
    return f"sqlite:///{ctx.store}"


def register(target: Conveyor) -> tuple[Any, Any]:
    return (target.task(name="peers.tally", queue=QUEUE, max_retries=0)(jobs.tally),
            target.task(name="peers.probe", queue=QUEUE, max_retries=0)(jobs.probe))


def register_mix(target: Conveyor) -> dict[str, Any]:
    """The realistic mix's jobs: a blocking sleep (thread pool), an awaited one (async pool), a CPU burn."""
    return {"io": target.task(name="peers.io", queue=QUEUE, max_retries=0)(jobs.io_sleep),
            "io_async": target.task(name="peers.io_async", queue=QUEUE, max_retries=0)(jobs.io_sleep_async),
            "cpu": target.task(name="peers.burn", queue=QUEUE, max_retries=0)(jobs.burn)}


app = Conveyor()  # the worker's: $CONVEYOR_URL (set by worker_argv's environment); opened on first use
register(app)
register_mix(app)


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("conveyor")


class Producer:
    is_async = False
    bulk = "task.map"

    def __init__(self, ctx: Context) -> None:
        self.app = Conveyor(store_url(ctx))
        self.tally, self.probe_task = register(self.app)
        self.mix = register_mix(self.app)
        self.app.backend  # create the store now, outside every timed section  # noqa: B018

    def enqueue_one(self, key: str, count: int) -> None:
        for _ in range(count):
            self.tally.delay(key)

    def enqueue_bulk(self, key: str, count: int) -> None:
        self.tally.map([(key,)] * count)

    def probe(self, key: str, index: int) -> None:
        self.probe_task.delay(key, index)

    def enqueue_mix(self, task: str, key: str, values: list[Any]) -> None:
        self.mix[task].map([(key, value) for value in values])

    def close(self) -> None:
        self.app.close()


def open_producer(ctx: Context) -> Producer:
    return Producer(ctx)


def worker_env(ctx: Context) -> dict[str, str]:
    return {"CONVEYOR_URL": store_url(ctx)}


def worker_argv(ctx: Context) -> list[str]:
    kind = pool(ctx)  # the mix: thread, async or process
    return ["-m", "conveyor.cli", "worker", "peers.conveyor_peer:app", "-q", QUEUE, "-c", str(ctx.concurrency),
            *(["--pool", kind] if kind else []), "--log-level", "WARNING"]
