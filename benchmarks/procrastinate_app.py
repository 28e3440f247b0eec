"""procrastinate, the peer the PostgreSQL rows are quoted against: its tasks, and the app its worker runs.

The benchmark starts `python -m procrastinate --app procrastinate_app.app --log-level warning worker
-q bench -c 8` with $BENCH_PROCRASTINATE_URL pointing at a fresh database (made from a template
holding procrastinate's schema) on the benchmark's own PostgreSQL server. The producer builds its
own instance with `make_app`. The tasks are coroutine functions: procrastinate's worker is asyncio,
and its docs keep `concurrency` for asynchronous jobs (a sync task runs in a thread per job).

procrastinate keeps no results, so the latency probe records its start itself: one row in
`bench_probe_starts` (created by the benchmark), written through procrastinate's own connector
after the time is read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import procrastinate

QUEUE = "bench"
PROBE_TABLE = "bench_probe_starts"
PROBE_TABLE_DDL = f"CREATE TABLE {PROBE_TABLE} (job_id bigint PRIMARY KEY, started double precision NOT NULL)"


async def noop() -> None:
    """The job of the enqueue and throughput rows: nothing."""


async def started_at(context: procrastinate.JobContext) -> None:
    """The latency probe: the wall-clock time at which the worker started running this job."""
    started = time.time()
    await context.app.connector.execute_query_async(
        f"INSERT INTO {PROBE_TABLE} (job_id, started) VALUES (%(job_id)s, %(started)s)",  # type: ignore[arg-type]
        job_id=context.job.id, started=started)


@dataclass
class ProcrastinateApp:
    app: procrastinate.App
    noop: Any
    probe: Any


def make_app(conninfo: str) -> ProcrastinateApp:
    """An App on `conninfo` with psycopg 3 (procrastinate's default connector), not opened yet."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    return ProcrastinateApp(app, app.task(name="noop", queue=QUEUE)(noop),
                            app.task(name="started_at", queue=QUEUE, pass_context=True)(started_at))


# The worker's instance (the CLI opens it). None on the producer side, which has no $BENCH_PROCRASTINATE_URL.
app = make_app(os.environ["BENCH_PROCRASTINATE_URL"]).app if "BENCH_PROCRASTINATE_URL" in os.environ else None
