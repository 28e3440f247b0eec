#!/usr/bin/env python
"""Throughput and latency of conveyor on the SQLite, Redis and PostgreSQL engines, next to raw baselines and peers.

    python benchmarks/bench.py [--engine sqlite|redis|postgres|all] [--jobs N] [--rounds 3] [--latency-jobs 300]
                               [--quick]

Each figure is the median of `--rounds` runs, with the min-max range. The raw loops (sqlite3 on the
same disk; redis-py + hiredis on the same redis-server; psycopg 3 on the same PostgreSQL server)
and, for Redis and PostgreSQL, the peer (Huey; procrastinate) run in the same rounds, so the ratio
columns compare like with like even when the machine is noisy. The Redis and PostgreSQL runs start
their own server on a free loopback port with a private directory and stop exactly that process at
the end. See benchmarks/README.md for what every row measures.

This file is also the module the worker processes import (`bench:app`): the worker side reads
the store's URL from $CONVEYOR_URL, which the benchmark sets for every worker it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from counting import count_one, first_start_key, last_finish_key, tally

from conveyor import Conveyor, JobState, Task

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
QUEUE = "bench"
WORKER_CONCURRENCY = 8
LATENCY_INTERVAL = 0.005  # seconds between two jobs sent to the idle worker
COUNTS_POLL = 0.05  # how often the producer asks the store how far the worker got
PIPELINE = 100  # commands per round trip in the pipelined redis-py baselines


# -- the app the workers run ---------------------------------------------------------------


def noop() -> None:
    """The unit of work for the throughput rows: nothing, so the figure is conveyor's own cost."""


def started_at() -> float:
    """The latency probe: the wall-clock time at which a worker started running this job."""
    return time.time()


class Tasks(NamedTuple):
    noop: Task[[], None]
    probe: Task[[], float]
    count: Task[[str, int], None]  # counting.count_one: one Redis INCR per job (the Redis run only)
    tally: Task[[str, int], None]  # counting.tally: counted in the worker's memory (the Redis run only)


def register(target: Conveyor) -> Tasks:
    """The benchmark's tasks on `target`, under fixed names: this file runs as __main__ on the
    producer side and as `bench` in the workers, so names derived from the module would differ."""
    return Tasks(target.task(name="bench.noop", queue=QUEUE, max_retries=0)(noop),
                 target.task(name="bench.started_at", queue=QUEUE, max_retries=0)(started_at),
                 target.task(name="bench.count", queue=QUEUE, max_retries=0)(count_one),
                 target.task(name="bench.tally", queue=QUEUE, max_retries=0)(tally))


app = Conveyor()  # the workers' app: $CONVEYOR_URL, set by the benchmark; opened on first use only
register(app)


# -- results -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the table: a value per round, and optionally the baseline (and peer) rows it is quoted against."""

    key: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    baseline: str | None = None  # key of the baseline figure for the ratio column
    ratios: list[float] = field(default_factory=list)  # per round: value / baseline's value that round
    peer: str | None = None  # key of the peer's figure for the "vs huey" column
    peer_ratios: list[float] = field(default_factory=list)  # per round: value / peer's value that round

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label, "unit": self.unit, "median": self.median,
                                "min": min(self.values), "max": max(self.values), "values": self.values}
        if self.baseline is not None:
            data["baseline"] = self.baseline
            data["ratio_median"] = statistics.median(self.ratios)
            data["ratio_min"] = min(self.ratios)
            data["ratio_max"] = max(self.ratios)
            data["ratios"] = self.ratios
        if self.peer is not None:
            data["peer"] = self.peer
            data["peer_ratio_median"] = statistics.median(self.peer_ratios)
            data["peer_ratio_min"] = min(self.peer_ratios)
            data["peer_ratio_max"] = max(self.peer_ratios)
            data["peer_ratios"] = self.peer_ratios
        return data


Row = tuple[str, str, str, str | None, str | None]  # key, label, unit, baseline key, peer key

SQLITE_ROWS: list[Row] = [
    ("enqueue_one", "enqueue one at a time (task.delay)", "jobs/s", "sqlite_insert", None),
    ("enqueue_bulk", "enqueue in bulk (task.map)", "jobs/s", "sqlite_insert", None),
    ("process", "processed by 1 worker process (-c 8, no-op)", "jobs/s", "sqlite_claim_delete", None),
    ("worker_rss", "worker peak RSS (VmHWM)", "MiB", None, None),
    ("latency_p50", "enqueue-to-start latency p50 (idle worker)", "ms", None, None),
    ("latency_p99", "enqueue-to-start latency p99 (idle worker)", "ms", None, None),
    ("sqlite_insert", "baseline: raw sqlite3 insert, 1 row/txn", "rows/s", None, None),
    ("sqlite_claim_delete", "baseline: raw sqlite3 claim+delete, 1 row/txn", "rows/s", None, None),
]

REDIS_ROWS: list[Row] = [
    ("enqueue_one", "enqueue one at a time (task.delay)", "jobs/s", "redis_lpush", "huey_enqueue_one"),
    ("enqueue_bulk", "enqueue in bulk (task.map)", "jobs/s", "redis_lpush_pipelined", None),
    ("process", "processed by 1 worker process (-c 8, no-op)", "jobs/s", "redis_rpop", None),
    ("process_incr", "processed by 1 worker process (-c 8, 1 INCR/job)", "jobs/s", "redis_rpop", "huey_process"),
    ("process_tally", "processed by 1 worker process (-c 8, no-op counted in process)", "jobs/s", "redis_rpop",
     "huey_process_tally"),
    ("worker_rss", "worker peak RSS (VmHWM)", "MiB", None, "huey_rss"),
    ("latency_p50", "enqueue-to-start latency p50 (idle worker)", "ms", None, "huey_latency_p50"),
    ("latency_p99", "enqueue-to-start latency p99 (idle worker)", "ms", None, "huey_latency_p99"),
    ("huey_enqueue_one", "peer: huey enqueue one at a time (task())", "jobs/s", "redis_lpush", None),
    ("huey_process", "peer: huey processed by 1 consumer (-w 8 -k thread, 1 INCR/job)", "jobs/s", "redis_rpop",
     None),
    ("huey_process_tally", "peer: huey processed by 1 consumer (-w 8 -k thread, no-op counted in process)",
     "jobs/s", "redis_rpop", None),
    ("huey_rss", "peer: huey consumer peak RSS (VmHWM)", "MiB", None, None),
    ("huey_latency_p50", "peer: huey enqueue-to-start latency p50 (idle consumer)", "ms", None, None),
    ("huey_latency_p99", "peer: huey enqueue-to-start latency p99 (idle consumer)", "ms", None, None),
    ("redis_lpush", "baseline: raw redis-py LPUSH, 1 per round trip", "ops/s", None, None),
    ("redis_rpop", "baseline: raw redis-py RPOP, 1 per round trip", "ops/s", None, None),
    ("redis_lpush_pipelined", f"baseline: raw redis-py LPUSH, {PIPELINE} per round trip", "ops/s", None, None),
    ("redis_rpop_pipelined", f"baseline: raw redis-py RPOP, {PIPELINE} per round trip", "ops/s", None, None),
]

POSTGRES_ROWS: list[Row] = [
    ("enqueue_one", "enqueue one at a time (task.delay)", "jobs/s", "pg_insert", "procrastinate_enqueue_one"),
    ("enqueue_bulk", "enqueue in bulk (task.map)", "jobs/s", "pg_insert", None),
    ("process", "processed by 1 worker process (-c 8, no-op)", "jobs/s", "pg_claim_delete", "procrastinate_process"),
    ("worker_rss", "worker peak RSS (VmHWM)", "MiB", None, "procrastinate_rss"),
    ("latency_p50", "enqueue-to-start latency p50 (idle worker)", "ms", None, "procrastinate_latency_p50"),
    ("latency_p99", "enqueue-to-start latency p99 (idle worker)", "ms", None, "procrastinate_latency_p99"),
    ("procrastinate_enqueue_one", "peer: procrastinate enqueue one at a time (defer)", "jobs/s", "pg_insert", None),
    ("procrastinate_process", "peer: procrastinate processed by 1 worker (-c 8, async no-op)", "jobs/s",
     "pg_claim_delete", None),
    ("procrastinate_rss", "peer: procrastinate worker peak RSS (VmHWM)", "MiB", None, None),
    ("procrastinate_latency_p50", "peer: procrastinate enqueue-to-start latency p50 (idle worker)", "ms", None, None),
    ("procrastinate_latency_p99", "peer: procrastinate enqueue-to-start latency p99 (idle worker)", "ms", None, None),
    ("pg_insert", "baseline: raw psycopg INSERT, 1 row per round trip", "rows/s", None, None),
    ("pg_claim_delete", "baseline: raw psycopg claim (DELETE ... SKIP LOCKED), 1 row per round trip", "rows/s",
     None, None),
]

ENGINE_ROWS = {"sqlite": SQLITE_ROWS, "redis": REDIS_ROWS, "postgres": POSTGRES_ROWS}
PEERS = {"redis": "huey", "postgres": "procrastinate"}  # the peer each engine's rows are quoted against
BASELINE_PREFIXES = ("baseline: raw sqlite3 ", "baseline: raw redis-py ", "baseline: raw psycopg ", "peer: huey ",
                     "peer: procrastinate ")


def new_figures(engine: str = "sqlite", *, with_peer: bool = False) -> dict[str, Figure]:
    rows = ENGINE_ROWS[engine]
    if not with_peer:
        rows = [(key, label, unit, baseline, None) for key, label, unit, baseline, _ in rows
                if not key.startswith(("huey_", "procrastinate_"))]
    return {key: Figure(key, label, unit, baseline=baseline, peer=peer) for key, label, unit, baseline, peer in rows}


# -- helpers -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.contextmanager
def scratch_dir(parent: str | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=parent)).resolve()  # workers run elsewhere
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def store_url(directory: Path, name: str = "jobs.db") -> str:
    return f"sqlite:///{directory / name}"  # an absolute path gives sqlite:////...


def open_app(url: str) -> tuple[Conveyor, Tasks]:
    producer = Conveyor(url)
    tasks = register(producer)
    producer.backend  # create the store now, outside every timed section  # noqa: B018
    return producer, tasks


def completed(producer: Conveyor) -> int:
    return producer.counts().get(QUEUE, {}).get(JobState.COMPLETED, 0)


# -- worker processes ----------------------------------------------------------------------


class WorkerProcess:
    """A real `python -m conveyor.cli worker bench:app` process on the benchmark's store, or, given
    `command`, another library's worker (Huey's consumer) started the same way."""

    def __init__(self, url: str | None, log_path: Path, *, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        if url is not None:
            full_env["CONVEYOR_URL"] = url
        full_env.update(env or {})
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), full_env.get("PYTHONPATH")) if p)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.time()
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "conveyor.cli", "worker", "bench:app", "-q", QUEUE,
                        "-c", str(WORKER_CONCURRENCY), "--log-level", "WARNING"],
            cwd=HERE, env=full_env, stdout=subprocess.DEVNULL, stderr=self._log)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited early with code {self.process.returncode}:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the worker has used so far (Linux only)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(condition: Callable[[], bool], worker: WorkerProcess, timeout: float, what: str,
               interval: float = COUNTS_POLL) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; worker log:\n{worker.log()}")
        time.sleep(interval)


# -- the measurements ----------------------------------------------------------------------


def bench_enqueue_one(url: str, jobs: int) -> float:
    producer, tasks = open_app(url)
    try:
        start = time.perf_counter()
        for _ in range(jobs):
            tasks.noop.delay()
        return jobs / (time.perf_counter() - start)
    finally:
        producer.close()


def bench_enqueue_bulk(url: str, jobs: int) -> float:
    producer, tasks = open_app(url)
    try:
        calls = [()] * jobs
        start = time.perf_counter()
        tasks.noop.map(calls)
        return jobs / (time.perf_counter() - start)
    finally:
        producer.close()


@dataclass
class ProcessRun:
    jobs_per_s: float
    peak_rss_mib: float
    startup_s: float  # from Popen to the first claim: interpreter start, imports, opening the store
    warnings: int  # WARNING lines the worker logged while draining (there should be none)


def bench_process(url: str, log_path: Path, jobs: int, *, before_worker: Callable[[], object] | None = None
                  ) -> ProcessRun:
    """N no-op jobs waiting, then one worker: jobs / (last finish - first claim), from the store's
    own timestamps, so neither the worker's start-up nor the producer's polling rate counts.
    `before_worker` runs once the jobs are in (PostgreSQL: ANALYZE the backlog)."""
    producer, tasks = open_app(url)
    try:
        tasks.noop.map([()] * jobs)
        if before_worker is not None:
            before_worker()
        with WorkerProcess(url, log_path) as worker:
            wait_until(lambda: completed(producer) >= jobs, worker, timeout=max(120.0, jobs / 20),
                       what=f"{jobs} jobs to complete")
            rss = worker.peak_rss_mib()
        warnings = worker.log().count(" WARNING ")
        records = [job.record for job in producer.jobs(state=JobState.COMPLETED, queue=QUEUE, limit=jobs)]
        first_start = min(r.started_at for r in records if r.started_at is not None)
        last_finish = max(r.finished_at for r in records if r.finished_at is not None)
        return ProcessRun(jobs / (last_finish - first_start), rss, first_start - worker.started, warnings)
    finally:
        producer.close()


def bench_latency(url: str, log_path: Path, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of (time the task started) - (time just before .delay()), one job every
    5 ms to a worker that is already running and idle."""
    producer, tasks = open_app(url)
    try:
        with WorkerProcess(url, log_path) as worker:
            warmup = tasks.probe.delay()
            wait_until(lambda: warmup.status == JobState.COMPLETED, worker, timeout=60, what="the worker to start")
            time.sleep(0.2)  # let it settle back into its idle wait
            latencies = send_probes(count, tasks.probe.delay, lambda job: job.result(timeout=60))
        return percentile(latencies, 50), percentile(latencies, 99)
    finally:
        producer.close()


def send_probes(count: int, send: Callable[[], Any], result: Callable[[Any], float]) -> list[float]:
    """`count` probe jobs, one every 5 ms; each one's start time minus the time just before it was
    sent, in ms. The results are collected after all are sent."""
    sent: list[tuple[float, Any]] = []
    next_send = time.perf_counter()
    for _ in range(count):
        delay = next_send - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        next_send += LATENCY_INTERVAL
        enqueued = time.time()
        sent.append((enqueued, send()))
    return [(result(handle) - enqueued) * 1000 for enqueued, handle in sent]


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")
    return conn


BASELINE_PAYLOAD = '{"args":[],"kwargs":{}}'  # what conveyor stores for a no-op job


def bench_sqlite_insert(directory: Path, rows: int) -> float:
    """The floor under enqueue-one: one INSERT per BEGIN IMMEDIATE ... COMMIT, nothing else."""
    conn = raw_connection(directory / "baseline-insert.db")
    try:
        start = time.perf_counter()
        for _ in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO q (payload) VALUES (?)", (BASELINE_PAYLOAD,))
            conn.execute("COMMIT")
        return rows / (time.perf_counter() - start)
    finally:
        conn.close()


def bench_sqlite_claim_delete(directory: Path, rows: int) -> float:
    """The floor under a worker: per transaction, take the oldest row and delete it."""
    conn = raw_connection(directory / "baseline-claim.db")
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO q (payload) VALUES (?)", [(BASELINE_PAYLOAD,)] * rows)
        conn.execute("COMMIT")
        start = time.perf_counter()
        for _ in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT id, payload FROM q ORDER BY id LIMIT 1").fetchone()
            conn.execute("DELETE FROM q WHERE id = ?", (row[0],))
            conn.execute("COMMIT")
        return rows / (time.perf_counter() - start)
    finally:
        conn.close()


# -- Redis: the server, the raw loops, the counted drains, the peer --------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the benchmark's own: a free loopback port, a private directory, no
    persistence (`--save '' --appendonly no`, as in shared/BENCHMARKS.md). `stop` ends exactly
    the process `start` began."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, namespace: str | None = None) -> str:
        return f"redis://127.0.0.1:{self.port}/0" + (f"?namespace={namespace}" if namespace else "")

    def start(self) -> RedisServer:
        import redis

        log = self.directory / "redis.log"
        for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
            self.port = free_port()
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 20
            try:
                while self.process.poll() is None and time.monotonic() < deadline:
                    try:
                        client.ping()
                        return self
                    except redis.ConnectionError:
                        time.sleep(0.02)
            finally:
                client.close()
            self.stop()
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start: {text}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def version(self) -> str:
        client = self.client()
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def flush(self) -> None:
        """An empty server between measurements (no worker is running then)."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()


def _redis_payload(size: int = 200) -> bytes:
    base = {"id": "0" * 32, "task": "bench.noop", "queue": QUEUE, "args": [], "kwargs": {}, "pad": ""}
    base["pad"] = "x" * (size - len(json.dumps(base, separators=(",", ":"))))
    return json.dumps(base, separators=(",", ":")).encode()


REDIS_BASELINE_PAYLOAD = _redis_payload()  # one 200-byte JSON job, as in shared/BENCHMARKS.md


def bench_redis_raw(server: RedisServer, ops: int) -> dict[str, float]:
    """The floor under each verb: a plain redis-py (+ hiredis) loop, one LPUSH or RPOP per round
    trip, then `PIPELINE` per round trip (a non-transactional pipeline)."""
    client = server.client()
    key = "baseline:q"
    figures: dict[str, float] = {}
    try:
        client.ping()  # connect outside the timed sections
        start = time.perf_counter()
        for _ in range(ops):
            client.lpush(key, REDIS_BASELINE_PAYLOAD)
        figures["redis_lpush"] = ops / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(ops):
            client.rpop(key)
        figures["redis_rpop"] = ops / (time.perf_counter() - start)
        batches = max(1, ops // PIPELINE)
        start = time.perf_counter()
        for _ in range(batches):
            pipe = client.pipeline(transaction=False)
            for _ in range(PIPELINE):
                pipe.lpush(key, REDIS_BASELINE_PAYLOAD)
            pipe.execute()
        figures["redis_lpush_pipelined"] = batches * PIPELINE / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(batches):
            pipe = client.pipeline(transaction=False)
            for _ in range(PIPELINE):
                pipe.rpop(key)
            pipe.execute()
        figures["redis_rpop_pipelined"] = batches * PIPELINE / (time.perf_counter() - start)
        if client.llen(key) != 0:
            raise RuntimeError("the RPOP baseline did not drain its list")
        return figures
    finally:
        client.delete(key)
        client.close()


def counted_drain(server: RedisServer, key: str, jobs: int, worker: WorkerProcess) -> float:
    """jobs/s of a drain of `jobs` counting.count_one jobs: from the first job's start to the last
    one's finish, as the jobs themselves recorded them in Redis."""
    client = server.client()
    try:
        wait_until(lambda: client.exists(last_finish_key(key)) == 1, worker, timeout=max(120.0, jobs / 20),
                   what=f"{jobs} jobs to complete")
        if int(client.get(key) or 0) != jobs:
            raise RuntimeError(f"{key}: {client.get(key)} jobs counted, expected {jobs}")
        first = float(client.get(first_start_key(key)))
        last = float(client.get(last_finish_key(key)))
        return jobs / (last - first)
    finally:
        client.close()


def bench_process_incr(server: RedisServer, namespace: str, log_path: Path, jobs: int, *,
                       in_process: bool = False) -> ProcessRun:
    """As `bench_process`, but the drain is timed by the jobs (the way Huey's is), not by
    conveyor's store: each job does one INCR, or with `in_process` counts in the worker's memory."""
    url = server.url(namespace)
    producer, tasks = open_app(url)
    key = f"count:{namespace}"
    try:
        (tasks.tally if in_process else tasks.count).map([(key, jobs)] * jobs)
        with WorkerProcess(url, log_path, env={"BENCH_REDIS_URL": server.url()}) as worker:
            jobs_per_s = counted_drain(server, key, jobs, worker)
            rss = worker.peak_rss_mib()
        return ProcessRun(jobs_per_s, rss, float("nan"), worker.log().count(" WARNING "))
    finally:
        producer.close()


def huey_available() -> bool:
    try:
        import huey_app  # noqa: F401
    except ImportError:
        return False
    return True


def huey_version() -> str:
    from importlib.metadata import version

    return version("huey")


def huey_consumer(server: RedisServer, name: str, log_path: Path) -> WorkerProcess:
    """One Huey consumer process: 8 worker threads, WARNING logging (Huey logs every task at INFO
    by default; conveyor's worker runs with --log-level WARNING)."""
    return WorkerProcess(
        None, log_path, env={"BENCH_REDIS_URL": server.url(), "BENCH_HUEY_NAME": name},
        command=[sys.executable, "-m", "huey.bin.huey_consumer", "huey_app.huey", "-w", str(WORKER_CONCURRENCY),
                 "-k", "thread", "-q"])


def bench_huey_enqueue_one(server: RedisServer, name: str, jobs: int) -> float:
    from huey_app import make_huey

    peer = make_huey(server.url(), name)
    try:
        peer.huey.storage.conn.ping()  # connect outside the timed section
        start = time.perf_counter()
        for _ in range(jobs):
            peer.noop()
        return jobs / (time.perf_counter() - start)
    finally:
        peer.huey.storage.pool.disconnect()


def bench_huey_process(server: RedisServer, name: str, log_path: Path, jobs: int, *,
                       in_process: bool = False) -> ProcessRun:
    from huey_app import make_huey

    peer = make_huey(server.url(), name)
    key = f"count:{name}"
    task = peer.tally if in_process else peer.count
    try:
        for _ in range(jobs):  # Huey has no bulk enqueue
            task(key, jobs)
        with huey_consumer(server, name, log_path) as consumer:
            jobs_per_s = counted_drain(server, key, jobs, consumer)
            rss = consumer.peak_rss_mib()
        return ProcessRun(jobs_per_s, rss, float("nan"), consumer.log().count(" WARNING "))
    finally:
        peer.huey.storage.pool.disconnect()


def bench_huey_latency(server: RedisServer, name: str, log_path: Path, count: int) -> tuple[float, float]:
    from huey_app import make_huey

    peer = make_huey(server.url(), name)
    try:
        with huey_consumer(server, name, log_path) as consumer:
            warmup = peer.probe()
            wait_until(lambda: warmup.get(preserve=True) is not None, consumer, timeout=60,
                       what="the consumer to start")
            time.sleep(0.2)  # let it settle back into its idle wait
            latencies = send_probes(count, peer.probe, lambda result: result.get(blocking=True, timeout=60))
        return percentile(latencies, 50), percentile(latencies, 99)
    finally:
        peer.huey.storage.pool.disconnect()


# -- PostgreSQL: the server, the raw loops, the peer ----------------------------------------------


def postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql): no /usr/lib/postgresql/*/bin")
    return found[-1].parent


POSTGRES_USER = "conveyor"  # the cluster's superuser (initdb -U), trust authentication on loopback
POSTGRES_DB = "bench"  # conveyor's schemas and the raw loops' tables
POSTGRES_SETTINGS = {"fsync": "off", "full_page_writes": "off"}  # a benchmark's server: see postgres_notes


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


class PostgresServer:
    """A PostgreSQL cluster of the benchmark's own: `initdb` into a private directory, a free
    loopback port, trust authentication for the `conveyor` role, fsync off. As root it runs as
    the `postgres` system user (the server refuses to run as root), so its directory is handed
    to that user. `stop` ends exactly the postmaster `start` began; `remove` also deletes the directory."""

    def __init__(self, parent: Path) -> None:
        self.bindir = postgres_bindir()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.moved = False  # True when `parent` was out of the postgres user's reach
        self.directory = self._private_dir(parent)
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"

    def _private_dir(self, parent: Path) -> Path:
        directory = Path(tempfile.mkdtemp(prefix="conveyor-bench-pg-", dir=parent))
        if self.user is None:
            return directory
        shutil.chown(directory, self.user, self.user)
        if subprocess.run(["test", "-w", str(directory)], user=self.user).returncode == 0:
            return directory
        # A parent the postgres user cannot traverse (pytest's tmp_path is 0700): the system temp dir.
        shutil.rmtree(directory, ignore_errors=True)
        self.moved = True
        directory = Path(tempfile.mkdtemp(prefix="conveyor-bench-pg-"))
        shutil.chown(directory, self.user, self.user)
        return directory

    def url(self, database: str = POSTGRES_DB, schema: str | None = None) -> str:
        return (f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"
                + (f"?schema={schema}" if schema else ""))

    def start(self) -> PostgresServer:
        import psycopg

        try:
            subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust",
                            "--no-sync", "-E", "UTF8"], check=True, capture_output=True, user=self.user)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from None
        settings = [f"{name}={value}" for name, value in POSTGRES_SETTINGS.items()]
        for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}",
                     *(arg for setting in settings for arg in ("-c", setting))],
                    stdout=subprocess.DEVNULL, stderr=log, user=self.user)
            deadline = time.monotonic() + 30
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    psycopg.connect(self.url("postgres"), connect_timeout=1).close()
                except psycopg.OperationalError:
                    time.sleep(0.05)
                    continue
                self.execute(f"CREATE DATABASE {POSTGRES_DB}", database="postgres")
                return self
            self.stop()
        text = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {text}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our postmaster; immediate (SIGQUIT), then SIGKILL, if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10)):
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                pass
        self.process.kill()
        self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def connect(self, database: str = POSTGRES_DB) -> Any:
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)

    def execute(self, statement: str, database: str = POSTGRES_DB) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def version(self) -> str:
        return str(self.execute("SHOW server_version")[0][0])

    def drop_schema(self, schema: str) -> None:
        """Between measurements (no worker runs then): no leftover table for autovacuum to work on."""
        self.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def create_database(self, name: str, template: str | None = None) -> None:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""), database="postgres")

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database="postgres")


@contextlib.contextmanager
def postgres_server(parent: Path) -> Iterator[PostgresServer]:
    """A started server, stopped and removed on the way out, also on errors and on SIGTERM."""
    server = PostgresServer(parent)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_system_exit) if in_main_thread else None
    try:
        yield server.start()
    finally:
        server.remove()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


POSTGRES_BASELINE_PAYLOAD = REDIS_BASELINE_PAYLOAD.decode()  # one 200-byte JSON job


def bench_postgres_raw(server: PostgresServer, rows: int) -> dict[str, float]:
    """The floor under each verb: psycopg 3 on one connection in autocommit, one statement per
    round trip: INSERT one 200-byte row; then claim rows one at a time the way a SKIP LOCKED
    queue does, deleting each."""
    table = "baseline_q"
    figures: dict[str, float] = {}
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)")
        insert = f"INSERT INTO {table} (payload) VALUES (%s)"
        start = time.perf_counter()
        for _ in range(rows):
            cur.execute(insert, (POSTGRES_BASELINE_PAYLOAD,))
        figures["pg_insert"] = rows / (time.perf_counter() - start)
        claim = (f"DELETE FROM {table} WHERE id = (SELECT id FROM {table} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                 "RETURNING id, payload")
        start = time.perf_counter()
        for _ in range(rows):
            cur.execute(claim)
            if cur.fetchone() is None:
                raise RuntimeError("the claim baseline found its table empty too early")
        figures["pg_claim_delete"] = rows / (time.perf_counter() - start)
        cur.execute(f"SELECT count(*) FROM {table}")
        left = cur.fetchone()
        if left is None or left[0] != 0:
            raise RuntimeError("the claim baseline did not drain its table")
        cur.execute(f"DROP TABLE {table}")
    return figures


def procrastinate_available() -> bool:
    try:
        import procrastinate_app  # noqa: F401
    except ImportError:
        return False
    return True


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


PROCRASTINATE_TEMPLATE = "procrastinate_template"


def prepare_procrastinate(server: PostgresServer) -> None:
    """A template database holding procrastinate's schema (applied by procrastinate itself) and
    the probe table; every procrastinate measurement gets a fresh copy of it."""
    from procrastinate_app import PROBE_TABLE_DDL, make_app

    server.create_database(PROCRASTINATE_TEMPLATE)
    peer = make_app(server.url(PROCRASTINATE_TEMPLATE))
    with peer.app.open():
        peer.app.schema_manager.apply_schema()
    server.execute(PROBE_TABLE_DDL, database=PROCRASTINATE_TEMPLATE)


@contextlib.contextmanager
def procrastinate_database(server: PostgresServer, name: str) -> Iterator[str]:
    """A fresh database with procrastinate's schema, dropped afterwards; yields its name."""
    server.create_database(name, template=PROCRASTINATE_TEMPLATE)
    try:
        yield name
    finally:
        server.drop_database(name)


def procrastinate_worker(url: str, log_path: Path) -> WorkerProcess:
    """One procrastinate worker process: concurrency 8 (asyncio), WARNING logging (its CLI logs
    at INFO by default; conveyor's worker runs with --log-level WARNING)."""
    return WorkerProcess(
        None, log_path, env={"BENCH_PROCRASTINATE_URL": url},
        command=[sys.executable, "-m", "procrastinate", "--app", "procrastinate_app.app", "--log-level", "warning",
                 "worker", "-q", QUEUE, "-c", str(WORKER_CONCURRENCY)])


def warning_lines(worker: WorkerProcess) -> int:
    return sum("WARNING" in line for line in worker.log().splitlines())


def bench_procrastinate_enqueue_one(url: str, jobs: int) -> float:
    from procrastinate_app import make_app

    peer = make_app(url)
    with peer.app.open():  # the sync API: a psycopg pool, opened (and connected) here, outside the timing
        start = time.perf_counter()
        for _ in range(jobs):
            peer.noop.defer()
        return jobs / (time.perf_counter() - start)


def store_span(conn: Any, query: str) -> float:
    """Seconds between the first start and the last finish, as a query on the store returns them."""
    row = conn.execute(query).fetchone()
    if row is None or row[0] is None or row[1] is None:
        raise RuntimeError(f"no start or finish recorded: {query}")
    return float(row[1] - row[0])


def bench_procrastinate_process(server: PostgresServer, database: str, log_path: Path, jobs: int) -> ProcessRun:
    """As `bench_process`: N no-op jobs waiting, then one worker; completion by a count of the
    finished rows every 50 ms, the span from the store's own timestamps (procrastinate_events)."""
    from procrastinate_app import make_app

    peer = make_app(server.url(database))
    with peer.app.open():
        for first in range(0, jobs, 1000):
            peer.noop.batch_defer(*({} for _ in range(min(1000, jobs - first))))
    server.execute("ANALYZE procrastinate_jobs", database=database)  # as for conveyor: see run_postgres
    with server.connect(database) as conn:
        def finished() -> bool:
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()
            return row is not None and row[0] >= jobs

        with procrastinate_worker(server.url(database), log_path) as worker:
            wait_until(finished, worker, timeout=max(120.0, jobs / 20), what=f"{jobs} procrastinate jobs to complete")
            rss = worker.peak_rss_mib()
        span = store_span(conn, "SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'started')), extract("
                                "epoch FROM max(at) FILTER (WHERE type = 'succeeded')) FROM procrastinate_events")
    return ProcessRun(jobs / span, rss, float("nan"), warning_lines(worker))


def bench_procrastinate_latency(server: PostgresServer, database: str, log_path: Path,
                                count: int) -> tuple[float, float]:
    """As `bench_latency`: a worker warmed up with one probe, then `count` probes one every 5 ms;
    each records time.time() at its start in a row the producer reads afterwards."""
    from procrastinate_app import PROBE_TABLE, make_app

    peer = make_app(server.url(database))
    starts: dict[int, float] = {}
    with peer.app.open(), server.connect(database) as conn, procrastinate_worker(server.url(database),
                                                                                   log_path) as worker:
        def recorded(expected: int) -> bool:
            starts.update(conn.execute(f"SELECT job_id, started FROM {PROBE_TABLE}").fetchall())
            return len(starts) >= expected

        peer.probe.defer()
        wait_until(lambda: recorded(1), worker, timeout=60, what="the procrastinate worker to start")
        time.sleep(0.2)  # let it settle back into its idle wait

        def start_of(job_id: int) -> float:
            if job_id not in starts:
                wait_until(lambda: recorded(count + 1), worker, timeout=60, what=f"{count} probes to start")
            return starts[job_id]

        latencies = send_probes(count, peer.probe.defer, start_of)
    return percentile(latencies, 50), percentile(latencies, 99)


# -- the run -------------------------------------------------------------------------------


@dataclass
class Settings:
    engine: str
    jobs: int
    rounds: int
    latency_jobs: int
    quick: bool
    scratch: str | None


def run(settings: Settings, progress: Callable[[str], None]) -> tuple[dict[str, Figure], dict[str, Any]]:
    if settings.engine == "redis":
        return run_redis(settings, progress)
    if settings.engine == "postgres":
        return run_postgres(settings, progress)
    figures = new_figures()
    startups: list[float] = []
    warnings = 0

    def record(key: str, value: float) -> None:
        figures[key].values.append(value)

    for number in range(1, settings.rounds + 1):
        progress(f"round {number}/{settings.rounds}")
        with scratch_dir(settings.scratch) as directory:
            record("sqlite_insert", bench_sqlite_insert(directory, settings.jobs))
            record("enqueue_one", bench_enqueue_one(store_url(directory, "one.db"), settings.jobs))
            record("enqueue_bulk", bench_enqueue_bulk(store_url(directory, "bulk.db"), settings.jobs))
            record("sqlite_claim_delete", bench_sqlite_claim_delete(directory, settings.jobs))
        with scratch_dir(settings.scratch) as directory:
            processed = bench_process(store_url(directory), directory / "worker.log", settings.jobs)
            record("process", processed.jobs_per_s)
            record("worker_rss", processed.peak_rss_mib)
            startups.append(processed.startup_s)
            warnings += processed.warnings
        with scratch_dir(settings.scratch) as directory:
            p50, p99 = bench_latency(store_url(directory), directory / "latency-worker.log", settings.latency_jobs)
            record("latency_p50", p50)
            record("latency_p99", p99)
        add_ratios(figures)
    return figures, {"worker_startup_s": statistics.median(startups), "worker_warnings": warnings}


def add_ratios(figures: dict[str, Figure]) -> None:
    """This round's ratios, once every figure has this round's value."""
    for figure in figures.values():
        if figure.baseline is not None:
            figure.ratios.append(figure.values[-1] / figures[figure.baseline].values[-1])
        if figure.peer is not None:
            figure.peer_ratios.append(figure.values[-1] / figures[figure.peer].values[-1])


def run_redis(settings: Settings, progress: Callable[[str], None]) -> tuple[dict[str, Figure], dict[str, Any]]:
    with_peer = huey_available()
    figures = new_figures("redis", with_peer=with_peer)
    startups: list[float] = []
    warnings = 0
    huey_warnings = 0

    def record(key: str, value: float) -> None:
        figures[key].values.append(value)

    with scratch_dir(settings.scratch) as directory:
        (directory / "redis").mkdir()
        server = RedisServer(directory / "redis").start()
        try:
            extras: dict[str, Any] = {"redis_server": server.version(), "redis_port": server.port,
                                      "huey": huey_version() if with_peer else None}
            for number in range(1, settings.rounds + 1):
                progress(f"round {number}/{settings.rounds}")
                tag = f"r{number}"
                for key, value in bench_redis_raw(server, settings.jobs).items():
                    record(key, value)
                record("enqueue_one", bench_enqueue_one(server.url(f"{tag}-one"), settings.jobs))
                record("enqueue_bulk", bench_enqueue_bulk(server.url(f"{tag}-bulk"), settings.jobs))
                server.flush()
                processed = bench_process(server.url(f"{tag}-process"), directory / "worker.log", settings.jobs)
                record("process", processed.jobs_per_s)
                record("worker_rss", processed.peak_rss_mib)
                startups.append(processed.startup_s)
                warnings += processed.warnings
                server.flush()
                counted = bench_process_incr(server, f"{tag}-incr", directory / "incr-worker.log", settings.jobs)
                record("process_incr", counted.jobs_per_s)
                server.flush()
                tallied = bench_process_incr(server, f"{tag}-tally", directory / "tally-worker.log", settings.jobs,
                                             in_process=True)
                record("process_tally", tallied.jobs_per_s)
                warnings += tallied.warnings
                warnings += counted.warnings
                server.flush()
                p50, p99 = bench_latency(server.url(f"{tag}-latency"), directory / "latency-worker.log",
                                         settings.latency_jobs)
                record("latency_p50", p50)
                record("latency_p99", p99)
                server.flush()
                if with_peer:
                    record("huey_enqueue_one", bench_huey_enqueue_one(server, f"{tag}_one", settings.jobs))
                    server.flush()
                    peer = bench_huey_process(server, f"{tag}_process", directory / "huey.log", settings.jobs)
                    record("huey_process", peer.jobs_per_s)
                    record("huey_rss", peer.peak_rss_mib)
                    huey_warnings += peer.warnings
                    server.flush()
                    peer = bench_huey_process(server, f"{tag}_tally", directory / "huey-tally.log", settings.jobs,
                                              in_process=True)
                    record("huey_process_tally", peer.jobs_per_s)
                    huey_warnings += peer.warnings
                    server.flush()
                    p50, p99 = bench_huey_latency(server, f"{tag}_latency", directory / "huey-latency.log",
                                                  settings.latency_jobs)
                    record("huey_latency_p50", p50)
                    record("huey_latency_p99", p99)
                    server.flush()
                add_ratios(figures)
        finally:
            server.stop()
    extras.update({"worker_startup_s": statistics.median(startups), "worker_warnings": warnings,
                   "huey_warnings": huey_warnings if with_peer else None})
    return figures, extras


def run_postgres(settings: Settings, progress: Callable[[str], None]) -> tuple[dict[str, Figure], dict[str, Any]]:
    with_peer = procrastinate_available()
    figures = new_figures("postgres", with_peer=with_peer)
    startups: list[float] = []
    warnings = 0
    peer_warnings = 0

    def record(key: str, value: float) -> None:
        figures[key].values.append(value)

    with scratch_dir(settings.scratch) as directory:
        if os.geteuid() == 0:
            directory.chmod(0o711)  # the server runs as `postgres` and must reach its directory inside
        with postgres_server(directory) as server:
            extras: dict[str, Any] = {
                "postgres_server": server.version(), "postgres_port": server.port,
                "postgres_dir": str(server.directory), "postgres_dir_moved": server.moved,
                "postgres_settings": POSTGRES_SETTINGS, "psycopg": package_version("psycopg"),
                "procrastinate": package_version("procrastinate") if with_peer else None}
            if with_peer:
                prepare_procrastinate(server)
            for number in range(1, settings.rounds + 1):
                progress(f"round {number}/{settings.rounds}")
                tag = f"r{number}"
                for key, value in bench_postgres_raw(server, settings.jobs).items():
                    record(key, value)
                record("enqueue_one", bench_enqueue_one(server.url(schema=f"{tag}_one"), settings.jobs))
                server.drop_schema(f"{tag}_one")
                record("enqueue_bulk", bench_enqueue_bulk(server.url(schema=f"{tag}_bulk"), settings.jobs))
                server.drop_schema(f"{tag}_bulk")
                # The backlog is ANALYZEd before a worker starts on it, for both libraries, as autovacuum
                # would have done to a queue table in use: on a table filled a moment ago with no statistics
                # the planner picks poor plans (procrastinate's claim took 2.7 ms at 10,000 jobs waiting).
                processed = bench_process(server.url(schema=f"{tag}_process"), directory / "worker.log",
                                          settings.jobs,
                                          before_worker=lambda tag=tag: server.execute(f"ANALYZE {tag}_process.jobs"))
                record("process", processed.jobs_per_s)
                record("worker_rss", processed.peak_rss_mib)
                startups.append(processed.startup_s)
                warnings += processed.warnings
                server.drop_schema(f"{tag}_process")
                p50, p99 = bench_latency(server.url(schema=f"{tag}_latency"), directory / "latency-worker.log",
                                         settings.latency_jobs)
                record("latency_p50", p50)
                record("latency_p99", p99)
                server.drop_schema(f"{tag}_latency")
                if with_peer:
                    with procrastinate_database(server, f"{tag}_procrastinate_one") as database:
                        record("procrastinate_enqueue_one",
                               bench_procrastinate_enqueue_one(server.url(database), settings.jobs))
                    with procrastinate_database(server, f"{tag}_procrastinate_process") as database:
                        peer = bench_procrastinate_process(server, database, directory / "procrastinate.log",
                                                           settings.jobs)
                    record("procrastinate_process", peer.jobs_per_s)
                    record("procrastinate_rss", peer.peak_rss_mib)
                    peer_warnings += peer.warnings
                    with procrastinate_database(server, f"{tag}_procrastinate_latency") as database:
                        p50, p99 = bench_procrastinate_latency(server, database,
                                                               directory / "procrastinate-latency.log",
                                                               settings.latency_jobs)
                    record("procrastinate_latency_p50", p50)
                    record("procrastinate_latency_p99", p99)
                add_ratios(figures)
    extras.update({"worker_startup_s": statistics.median(startups), "worker_warnings": warnings,
                   "procrastinate_warnings": peer_warnings if with_peer else None})
    return figures, extras


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform()}


def redis_py_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        hiredis = f"hiredis {version('hiredis')}"
    except PackageNotFoundError:
        hiredis = "no hiredis"
    return f"redis-py {version('redis')} + {hiredis}"


def fmt(value: float, unit: str) -> str:
    if unit in {"ms", "MiB"}:
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def spread(values: list[float], unit: str | None = None) -> str:
    if unit is None:
        return f"{min(values):.2f} - {max(values):.2f}"
    return f"{fmt(min(values), unit)} - {fmt(max(values), unit)}"


def table_rows(figures: dict[str, Figure], *, peer_columns: bool = False) -> list[list[str]]:
    rows = []
    for figure in figures.values():
        if figure.baseline is not None:
            ratio = f"{statistics.median(figure.ratios):.2f}x"
            ratio_spread = spread(figure.ratios)
            against = figures[figure.baseline].label
            for prefix in BASELINE_PREFIXES:
                against = against.removeprefix(prefix)
        else:
            ratio = ratio_spread = against = ""
        row = [figure.label, fmt(figure.median, figure.unit), spread(figure.values, figure.unit), figure.unit, ratio,
               ratio_spread, against]
        if peer_columns:
            if figure.peer is not None:
                row += [f"{statistics.median(figure.peer_ratios):.2f}x", spread(figure.peer_ratios)]
            else:
                row += ["", ""]
        rows.append(row)
    return rows


HEADERS = ["figure", "median", "min - max", "unit", "ratio", "ratio min - max", "ratio against"]


def peer_headers(engine: str) -> list[str]:
    peer = PEERS.get(engine, "peer")
    return [f"vs {peer}", f"vs {peer} min - max"]


def report_notes(figures: dict[str, Figure], info: dict[str, Any], settings: Settings,
                 extras: dict[str, Any]) -> list[str]:
    if settings.engine == "sqlite":
        return [
            f"machine: {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), "
            f"{info['implementation']} {info['python']}, SQLite {info['sqlite']}, {info['platform']}",
            "median of rounds (min - max); ratio = conveyor / raw sqlite3 baseline in the same round",
            f"worker start-up, Popen to first claim (not counted above): {extras['worker_startup_s']:.2f}s; "
            f"WARNING lines in the throughput workers' logs: {extras['worker_warnings']}",
        ]
    if settings.engine == "postgres":
        return postgres_notes(figures, info, extras)
    with_peer = "huey_process" in figures
    notes = [
        f"machine: {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), "
        f"{info['implementation']} {info['python']}, redis-server {extras['redis_server']} on loopback "
        f"(--save '' --appendonly no), {redis_py_versions()}"
        + (f", Huey {extras['huey']}" if with_peer else "") + f", {info['platform']}",
        "median of rounds (min - max); ratio = figure / raw redis-py baseline in the same round"
        + ("; vs huey = conveyor / Huey in the same round (for latency and RSS, below 1 is better)"
           if with_peer else ""),
        "completion: the no-op row is timed by conveyor's store (first started_at to last finished_at); "
        "the '1 INCR/job' rows (conveyor and Huey alike) by the jobs: each does one Redis INCR, the one "
        "taking the counter to 1 records its start, the one taking it to N its finish",
        f"worker start-up, Popen to first claim (not counted above): {extras['worker_startup_s']:.2f}s; "
        f"WARNING lines in the throughput workers' logs: {extras['worker_warnings']}"
        + (f"; in Huey's: {extras['huey_warnings']}" if with_peer else ""),
    ]
    if not with_peer:
        notes.append("peer rows skipped: huey is not importable (pip install 'conveyor[bench]' or pip install huey)")
    return notes


def postgres_notes(figures: dict[str, Figure], info: dict[str, Any], extras: dict[str, Any]) -> list[str]:
    with_peer = "procrastinate_process" in figures
    settings = ", ".join(f"{name}={value}" for name, value in extras["postgres_settings"].items())
    notes = [
        f"machine: {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), "
        f"{info['implementation']} {info['python']}, PostgreSQL {extras['postgres_server']} on loopback "
        f"(a cluster of the benchmark's own, {settings}: fine for a benchmark, not for data you keep; "
        f"synchronous_commit on), psycopg {extras['psycopg']}"
        + (f", procrastinate {extras['procrastinate']}" if with_peer else "") + f", {info['platform']}",
        "median of rounds (min - max); ratio = figure / raw psycopg baseline in the same round (one connection, "
        "autocommit)" + ("; vs procrastinate = conveyor / procrastinate in the same round (for latency and RSS, "
                         "below 1 is better)" if with_peer else ""),
        ("completion: both libraries' drains are detected alike, by a count of finished rows in their own job "
         "table every 50 ms, and timed by the store: first start to last finish as the server recorded them "
         "(conveyor: jobs.started_at / finished_at; procrastinate: its 'started' / 'succeeded' events); the backlog "
         "is ANALYZEd before the worker starts, for both"
         if with_peer else
         "completion: the drain is detected by a count of completed rows every 50 ms (app.counts()) and timed by "
         "the store: first started_at to last finished_at as the server recorded them; the backlog is ANALYZEd "
         "before the worker starts"),
        ("latency: each probe reads time.time() when it starts (conveyor returns it as the job's result; "
         "procrastinate keeps no results, so its probe INSERTs it into a table afterwards) minus time.time() "
         "just before .delay() / .defer()" if with_peer else
         "latency: each probe returns time.time() read when it starts, minus time.time() just before .delay()"),
        f"worker start-up, Popen to first claim (not counted above): {extras['worker_startup_s']:.2f}s; "
        f"WARNING lines in the throughput workers' logs: {extras['worker_warnings']}"
        + (f"; in procrastinate's: {extras['procrastinate_warnings']}" if with_peer else ""),
    ]
    if extras.get("postgres_dir_moved"):
        notes.append(f"the PostgreSQL cluster ran in {extras['postgres_dir']}: the postgres user cannot reach --dir")
    if not with_peer:
        notes.append("peer rows skipped: procrastinate is not importable (pip install procrastinate)")
    return notes


def print_report(figures: dict[str, Figure], info: dict[str, Any], settings: Settings,
                 extras: dict[str, Any], *, plain: bool = False) -> None:
    title = (f"conveyor {settings.engine} benchmark: {settings.jobs:,} jobs, {settings.rounds} round(s), "
             f"{settings.latency_jobs} latency jobs")
    notes = report_notes(figures, info, settings, extras)
    peer_columns = any(figure.peer is not None for figure in figures.values())
    headers = HEADERS + peer_headers(settings.engine) if peer_columns else HEADERS
    right = {index for index in range(1, len(headers)) if index != 6}  # all but the labels
    rows = table_rows(figures, peer_columns=peer_columns)
    try:
        if plain:
            raise ImportError("plain output asked for")
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        for line in notes:
            print(line)
        return
    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if settings.engine == "postgres":  # long labels: as wide as the table needs
        width = sum(max(len(h), *(len(r[i]) for r in rows)) + 3 for i, h in enumerate(headers)) + 1
    else:
        width = 150 if not peer_columns else 190
    console = Console(width=max(width, shutil.get_terminal_size().columns))
    console.print(table)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", choices=["sqlite", "redis", "postgres", "all"], default="sqlite",
                        help="store to benchmark (all: sqlite, then redis, then postgres)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per throughput measurement (default 10000)")
    parser.add_argument("--rounds", type=int, default=None, help="runs per figure; the median is shown (default 3)")
    parser.add_argument("--latency-jobs", type=int, default=None, help="jobs sent for the latency figures "
                        "(default 300)")
    parser.add_argument("--quick", action="store_true", help="300 jobs, 1 round, 50 latency jobs: a smoke run")
    parser.add_argument("--json", dest="json_path", type=Path, default=None,
                        help="where to write the results (default benchmarks/results/<timestamp>.json)")
    parser.add_argument("--plain", action="store_true", help="plain text table instead of rich's")
    parser.add_argument("--dir", default=None, help="where to put the scratch stores (default: the system temp dir)")
    args = parser.parse_args(argv)
    quick = {"jobs": 300, "rounds": 1, "latency_jobs": 50}
    full = {"jobs": 10_000, "rounds": 3, "latency_jobs": 300}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("jobs", "rounds", "latency_jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engines = ["sqlite", "redis", "postgres"] if args.engine == "all" else [args.engine]
    info = machine()
    started = datetime.now(UTC)
    results: dict[str, dict[str, Any]] = {}
    for engine in engines:
        settings = Settings(engine=engine, jobs=args.jobs, rounds=args.rounds, latency_jobs=args.latency_jobs,
                            quick=args.quick, scratch=args.dir)
        prefix = f"{engine}: " if len(engines) > 1 else ""
        figures, extras = run(settings, lambda message, p=prefix: print(p + message, file=sys.stderr, flush=True))
        print_report(figures, info, settings, extras, plain=args.plain)
        worker = {"concurrency": WORKER_CONCURRENCY, "pool": "thread"}
        results[engine] = {"settings": vars(settings), "worker": worker, "extras": extras,
                           "figures": {key: figure.to_json() for key, figure in figures.items()}}
    json_path: Path = args.json_path or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "machine": info}
    if len(engines) == 1:  # one engine: the layout of the SQLite-only versions of this file
        only = results[engines[0]]
        document.update({"settings": only["settings"], "machine": info, "worker": only["worker"],
                         "extras": only["extras"], "figures": only["figures"]})
    else:
        document["engines"] = results
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
