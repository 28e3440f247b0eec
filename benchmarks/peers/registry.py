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


# -- the realistic mix (compare.py --mix) ----------------------------------------------------------

IO_CONCURRENCY = 50  # jobs at once in the I/O-bound stage
CPU_PROCESSES = 2  # processes in the CPU-bound stage: both cores of the machine it was set for
MIX_STAGES = ("io", "cpu")


@dataclass(frozen=True)
class MixSetup:
    """One worker of the realistic mix: which stage, which job, which kind of worker (handed to the
    adapter as `ctx.options["pool"]`), at which concurrency, and how many processes run the jobs."""

    stage: str  # io | cpu
    variant: str  # the row's name: conveyor has two I/O rows (thread, async)
    task: str  # the job: io (blocking sleep), io_async (asyncio.sleep), cpu (a pure-Python loop)
    pool: str  # the adapter's worker kind
    concurrency: int
    worker: str  # the command's essentials, for the tables
    job_processes: int = 1  # processes that run jobs (a process pool's children)


MIX: dict[str, list[MixSetup]] = {
    "conveyor": [
        MixSetup("io", "thread", "io", "thread", IO_CONCURRENCY, "--pool thread -c 50, time.sleep"),
        MixSetup("io", "async", "io_async", "async", IO_CONCURRENCY, "--pool async -c 50, async def + asyncio.sleep"),
        MixSetup("cpu", "process", "cpu", "process", CPU_PROCESSES, "--pool process -c 2",
                 job_processes=CPU_PROCESSES),
    ],
    "huey": [
        MixSetup("io", "threads", "io", "thread", IO_CONCURRENCY, "-k thread -w 50, time.sleep"),
        MixSetup("cpu", "processes", "cpu", "process", CPU_PROCESSES, "-k process -w 2", job_processes=CPU_PROCESSES),
    ],
    "celery": [
        MixSetup("io", "threads", "io", "threads", IO_CONCURRENCY, "-P threads -c 50, time.sleep"),
        MixSetup("cpu", "prefork", "cpu", "prefork", CPU_PROCESSES, "-P prefork -c 2", job_processes=CPU_PROCESSES),
    ],
    "dramatiq": [
        MixSetup("io", "threads", "io", "threads", IO_CONCURRENCY, "-p 1 -t 50, time.sleep"),
        MixSetup("cpu", "processes", "cpu", "processes", CPU_PROCESSES, "-p 2 -t 1", job_processes=CPU_PROCESSES),
    ],
    "rq": [
        MixSetup("cpu", "worker-pool", "cpu", "worker-pool", CPU_PROCESSES,
                 "rq worker-pool -n 2 -w SimpleWorker", job_processes=CPU_PROCESSES),
    ],
    "arq": [MixSetup("io", "asyncio", "io_async", "asyncio", IO_CONCURRENCY, "max_jobs 50, asyncio.sleep")],
    "saq": [MixSetup("io", "asyncio", "io_async", "asyncio", IO_CONCURRENCY, "concurrency 50, asyncio.sleep")],
    "procrastinate": [MixSetup("io", "asyncio", "io_async", "asyncio", IO_CONCURRENCY,
                               "worker -c 50, async task + asyncio.sleep")],
}

MIX_IMPOSSIBLE: dict[tuple[str, str], str] = {
    ("rq", "io"): "RQ has no threads or asyncio: a worker runs one job at a time (SimpleWorker in-process, the "
                  "default Worker in a fork per job), so 50 sleeping jobs at once would take 50 worker processes",
    ("arq", "cpu"): "arq runs jobs on one asyncio event loop per process and has no process pool: a CPU-bound job "
                    "blocks its loop",
    ("saq", "cpu"): "SAQ runs jobs on one asyncio event loop per process and has no process pool",
    ("procrastinate", "cpu"): "procrastinate's worker is one asyncio process (sync tasks run in its threads, "
                              "under one GIL) and has no process pool",
}
