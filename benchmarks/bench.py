#!/usr/bin/env python
"""Throughput and latency of conveyor on the SQLite engine, next to raw sqlite3 baselines.

    python benchmarks/bench.py [--engine sqlite] [--jobs N] [--rounds 3] [--latency-jobs 300] [--quick]

Each figure is the median of `--rounds` runs, with the min-max range. The raw sqlite3 loops run
in the same rounds, on the same disk, so the ratio columns compare like with like even when the
machine is noisy. See benchmarks/README.md for what every row measures.

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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Job, JobState, Task

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
QUEUE = "bench"
WORKER_CONCURRENCY = 8
LATENCY_INTERVAL = 0.005  # seconds between two jobs sent to the idle worker
COUNTS_POLL = 0.05  # how often the producer asks the store how far the worker got


# -- the app the workers run ---------------------------------------------------------------


def noop() -> None:
    """The unit of work for the throughput rows: nothing, so the figure is conveyor's own cost."""


def started_at() -> float:
    """The latency probe: the wall-clock time at which a worker started running this job."""
    return time.time()


def register(target: Conveyor) -> tuple[Task[[], None], Task[[], float]]:
    """The benchmark's tasks on `target`, under fixed names: this file runs as __main__ on the
    producer side and as `bench` in the workers, so names derived from the module would differ."""
    noop_task = target.task(name="bench.noop", queue=QUEUE, max_retries=0)(noop)
    probe_task = target.task(name="bench.started_at", queue=QUEUE, max_retries=0)(started_at)
    return noop_task, probe_task


app = Conveyor()  # the workers' app: $CONVEYOR_URL, set by the benchmark; opened on first use only
register(app)


# -- results -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the table: a value per round, and optionally the baseline row it is quoted against."""

    key: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    baseline: str | None = None  # key of the baseline figure for the ratio column
    ratios: list[float] = field(default_factory=list)  # per round: value / baseline's value that round

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
        return data


ROWS: list[tuple[str, str, str, str | None]] = [
    # key, label, unit, baseline key
    ("enqueue_one", "enqueue one at a time (task.delay)", "jobs/s", "sqlite_insert"),
    ("enqueue_bulk", "enqueue in bulk (task.map)", "jobs/s", "sqlite_insert"),
    ("process", "processed by 1 worker process (-c 8, no-op)", "jobs/s", "sqlite_claim_delete"),
    ("worker_rss", "worker peak RSS (VmHWM)", "MiB", None),
    ("latency_p50", "enqueue-to-start latency p50 (idle worker)", "ms", None),
    ("latency_p99", "enqueue-to-start latency p99 (idle worker)", "ms", None),
    ("sqlite_insert", "baseline: raw sqlite3 insert, 1 row/txn", "rows/s", None),
    ("sqlite_claim_delete", "baseline: raw sqlite3 claim+delete, 1 row/txn", "rows/s", None),
]


def new_figures() -> dict[str, Figure]:
    return {key: Figure(key, label, unit, baseline=baseline) for key, label, unit, baseline in ROWS}


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


def open_app(url: str) -> tuple[Conveyor, Task[[], None], Task[[], float]]:
    producer = Conveyor(url)
    noop_task, probe_task = register(producer)
    producer.backend  # create the store now, outside every timed section  # noqa: B018
    return producer, noop_task, probe_task


def completed(producer: Conveyor) -> int:
    return producer.counts().get(QUEUE, {}).get(JobState.COMPLETED, 0)


# -- worker processes ----------------------------------------------------------------------


class WorkerProcess:
    """A real `python -m conveyor.cli worker bench:app` process on the benchmark's store."""

    def __init__(self, url: str, log_path: Path) -> None:
        env = dict(os.environ)
        env["CONVEYOR_URL"] = url
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "worker", "bench:app", "-q", QUEUE,
             "-c", str(WORKER_CONCURRENCY), "--log-level", "WARNING"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=self._log)

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
    producer, noop_task, _ = open_app(url)
    try:
        start = time.perf_counter()
        for _ in range(jobs):
            noop_task.delay()
        return jobs / (time.perf_counter() - start)
    finally:
        producer.close()


def bench_enqueue_bulk(url: str, jobs: int) -> float:
    producer, noop_task, _ = open_app(url)
    try:
        calls = [()] * jobs
        start = time.perf_counter()
        noop_task.map(calls)
        return jobs / (time.perf_counter() - start)
    finally:
        producer.close()


@dataclass
class ProcessRun:
    jobs_per_s: float
    peak_rss_mib: float
    startup_s: float  # from Popen to the first claim: interpreter start, imports, opening the store
    warnings: int  # WARNING lines the worker logged while draining (there should be none)


def bench_process(directory: Path, jobs: int) -> ProcessRun:
    """N no-op jobs waiting, then one worker: jobs / (last finish - first claim), from the store's
    own timestamps, so neither the worker's start-up nor the producer's polling rate counts."""
    url = store_url(directory)
    producer, noop_task, _ = open_app(url)
    try:
        noop_task.map([()] * jobs)
        with WorkerProcess(url, directory / "worker.log") as worker:
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


def bench_latency(directory: Path, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of (time the task started) - (time just before .delay()), one job every
    5 ms to a worker that is already running and idle."""
    url = store_url(directory)
    producer, _, probe_task = open_app(url)
    try:
        with WorkerProcess(url, directory / "latency-worker.log") as worker:
            warmup = probe_task.delay()
            wait_until(lambda: warmup.status == JobState.COMPLETED, worker, timeout=60, what="the worker to start")
            time.sleep(0.2)  # let it settle back into its idle wait
            sent: list[tuple[float, Job[float]]] = []
            next_send = time.perf_counter()
            for _ in range(count):
                delay = next_send - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_send += LATENCY_INTERVAL
                enqueued = time.time()
                sent.append((enqueued, probe_task.delay()))
            latencies = [(job.result(timeout=60) - enqueued) * 1000 for enqueued, job in sent]
        return percentile(latencies, 50), percentile(latencies, 99)
    finally:
        producer.close()


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
            processed = bench_process(directory, settings.jobs)
            record("process", processed.jobs_per_s)
            record("worker_rss", processed.peak_rss_mib)
            startups.append(processed.startup_s)
            warnings += processed.warnings
        with scratch_dir(settings.scratch) as directory:
            p50, p99 = bench_latency(directory, settings.latency_jobs)
            record("latency_p50", p50)
            record("latency_p99", p99)
        for figure in figures.values():
            if figure.baseline is not None:
                figure.ratios.append(figure.values[-1] / figures[figure.baseline].values[-1])
    return figures, {"worker_startup_s": statistics.median(startups), "worker_warnings": warnings}


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


def fmt(value: float, unit: str) -> str:
    if unit in {"ms", "MiB"}:
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def table_rows(figures: dict[str, Figure]) -> list[list[str]]:
    rows = []
    for figure in figures.values():
        spread = f"{fmt(min(figure.values), figure.unit)} - {fmt(max(figure.values), figure.unit)}"
        if figure.baseline is not None:
            ratio = f"{statistics.median(figure.ratios):.2f}x"
            ratio_spread = f"{min(figure.ratios):.2f} - {max(figure.ratios):.2f}"
            against = figures[figure.baseline].label.removeprefix("baseline: raw sqlite3 ")
        else:
            ratio = ratio_spread = against = ""
        rows.append([figure.label, fmt(figure.median, figure.unit), spread, figure.unit, ratio, ratio_spread,
                     against])
    return rows


HEADERS = ["figure", "median", "min - max", "unit", "ratio", "ratio min - max", "ratio against"]


def print_report(figures: dict[str, Figure], info: dict[str, Any], settings: Settings,
                 extras: dict[str, Any], *, plain: bool = False) -> None:
    title = (f"conveyor {settings.engine} benchmark: {settings.jobs:,} jobs, {settings.rounds} round(s), "
             f"{settings.latency_jobs} latency jobs")
    notes = [
        f"machine: {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), "
        f"{info['implementation']} {info['python']}, SQLite {info['sqlite']}, {info['platform']}",
        "median of rounds (min - max); ratio = conveyor / raw sqlite3 baseline in the same round",
        f"worker start-up, Popen to first claim (not counted above): {extras['worker_startup_s']:.2f}s; "
        f"WARNING lines in the throughput workers' logs: {extras['worker_warnings']}",
    ]
    rows = table_rows(figures)
    try:
        if plain:
            raise ImportError("plain output asked for")
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(c.rjust(w) if 0 < i < 6 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        for line in notes:
            print(line)
        return
    table = Table(title=title, title_justify="left")
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="right" if 0 < index < 6 else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(width=max(150, shutil.get_terminal_size().columns))
    console.print(table)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", choices=["sqlite"], default="sqlite", help="store to benchmark")
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
    settings = Settings(engine=args.engine, jobs=args.jobs, rounds=args.rounds, latency_jobs=args.latency_jobs,
                        quick=args.quick, scratch=args.dir)
    info = machine()
    started = datetime.now(UTC)
    figures, extras = run(settings, lambda message: print(message, file=sys.stderr, flush=True))
    print_report(figures, info, settings, extras, plain=args.plain)
    json_path: Path = args.json_path or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "started": started.isoformat(timespec="seconds"), "settings": vars(settings), "machine": info,
        "worker": {"concurrency": WORKER_CONCURRENCY, "pool": "thread"}, "extras": extras,
        "figures": {key: figure.to_json() for key, figure in figures.items()},
    }, indent=2) + "\n")
    print(f"results written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
