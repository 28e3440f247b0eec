"""The libraries compare.py measures: pure data, read by the runner (project venv) without
importing any of them. Each entry names its adapter module (run by `peers.driver`) and its venv."""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("redis", "sqlite", "postgres")
ENGINE_LABELS = {"redis": "Redis", "sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class Library:
    name: str  # conveyor, huey, celery, ...
    engine: str  # redis | sqlite | postgres
    module: str  # the adapter module, run by peers.driver
    venv: str  # project | peers | arq (see peers.install)
    worker: str  # what one worker process is, for the table's notes
    processes_per_worker: int = 1  # processes in one worker's tree (Dramatiq: a parent and its worker)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.engine}"

    @property
    def label(self) -> str:
        return f"{self.name} ({ENGINE_LABELS[self.engine]})"

    @property
    def is_conveyor(self) -> bool:
        return self.name == "conveyor"


LIBRARIES = [
    Library("conveyor", "redis", "peers.conveyor_peer", "project", "1 process, 8 threads"),
    Library("huey", "redis", "peers.huey_peer", "peers", "1 process, 8 threads (-k thread)"),
    Library("celery", "redis", "peers.celery_peer", "peers", "1 process, 8 threads (-P threads)"),
    Library("dramatiq", "redis", "peers.dramatiq_peer", "peers", "1 worker process, 8 threads (+ the CLI's parent)",
            processes_per_worker=2),
    Library("rq", "redis", "peers.rq_peer", "peers", "1 process, SimpleWorker (1 job at a time)"),
    Library("arq", "redis", "peers.arq_peer", "arq", "1 process, asyncio, max_jobs 8, poll_delay 10 ms"),
    Library("saq", "redis", "peers.saq_peer", "peers", "1 process, asyncio, concurrency 8"),
    Library("conveyor", "sqlite", "peers.conveyor_peer", "project", "1 process, 8 threads"),
    Library("huey", "sqlite", "peers.huey_peer", "peers", "1 process, 8 threads (-k thread)"),
    Library("conveyor", "postgres", "peers.conveyor_peer", "project", "1 process, 8 threads"),
    Library("procrastinate", "postgres", "peers.procrastinate_peer", "peers", "1 process, asyncio, concurrency 8"),
]
