#!/usr/bin/env python
"""conveyor against its peers, in one run, on the same local servers: one command, one table.

    python benchmarks/compare.py [--quick] [--jobs N] [--rounds R] [--latency-jobs L]
                                 [--engines redis,sqlite,postgres] [--libraries conveyor,huey,...]
                                 [--docs | --no-docs] [--backlog [N]] [--mix [N]] [--mix-only]

The peers (Celery, RQ, Dramatiq, Huey, arq, SAQ, procrastinate) are installed by the benchmark
itself into venvs of its own (benchmarks/peers/install.py), never as project dependencies. Every
library, conveyor included, is driven through the same adapter interface (benchmarks/peers/) by
subprocesses of its own venv's interpreter, against one redis-server and one PostgreSQL cluster
that this run starts on free loopback ports with private directories and stops at the end. Every
job is the same no-op (peers.jobs.tally), so completion is detected the same way for all.

Per library and round: enqueue N jobs one at a time (timed), drain them with one worker process;
enqueue N in bulk (timed, where the library has a bulk API), drain them with two worker
processes; then L probes one every 5 ms to an idle worker for the latency. Each figure is the
median of the rounds with its min - max range; ratios against the best peer on the same engine are
taken per round, then the median. With --mix, also the realistic mix: N jobs sleeping 10-50 ms
drained by workers at concurrency 50 (threads or asyncio), and N CPU-bound jobs drained by two
processes, against the ideal rate. See benchmarks/README.md ("compare.py").
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    POSTGRES_SETTINGS,
    RedisServer,
    WorkerProcess,
    machine,
    percentile,
    postgres_server,
    scratch_dir,
    warning_lines,
)
from peers import install, jobs
from peers.base import Context
from peers.registry import (
    CPU_PROCESSES,
    ENGINE_LABELS,
    ENGINES,
    IO_CONCURRENCY,
    LIBRARIES,
    MIX,
    MIX_IMPOSSIBLE,
    MIX_STAGES,
    Library,
    MixSetup,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
DOC_PATH = ROOT / "docs" / "benchmarks.md"
CHART_PATH = ROOT / "docs" / "images" / "benchmarks.png"
CONCURRENCY = 8
DONE_POLL = 0.05  # how often the runner reads the done counter
PROCRASTINATE_TEMPLATE = "procrastinate_template"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    short: str = ""  # the per-library tables' column header


METRICS = [
    Metric("enqueue_one", "enqueue one at a time", "jobs/s", True, "enqueue one/s"),
    Metric("enqueue_bulk", "enqueue in bulk", "jobs/s", True, "enqueue bulk/s"),
    Metric("drain_1", "drain, 1 worker process", "jobs/s", True, "drain 1 proc/s"),
    Metric("drain_2", "drain, 2 worker processes", "jobs/s", True, "drain 2 procs/s"),
    Metric("latency_p50", "latency p50 (idle worker)", "ms", False, "p50 ms"),
    Metric("latency_p99", "latency p99 (idle worker)", "ms", False, "p99 ms"),
    Metric("rss", "worker peak RSS (1 process, drain)", "MiB", False, "RSS MiB"),
]
METRIC = {metric.key: metric for metric in METRICS}


# -- processes -----------------------------------------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return pids


def tree_status_mib(pid: int, field_name: str) -> float:
    """The sum of a /proc/<pid>/status field (kB) over a worker's process tree, in MiB."""
    total = 0.0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1]) / 1024
    return total


def tree_peak_rss_mib(pid: int) -> float:
    """VmHWM summed over the tree: the most memory each process held."""
    return tree_status_mib(pid, "VmHWM")


def tree_rss_mib(pid: int) -> float:
    """VmRSS summed over the tree: the memory held now."""
    return tree_status_mib(pid, "VmRSS")


class Runner:
    """Everything one run shares: the servers, the venvs' interpreters, the scratch directory."""

    def __init__(self, pythons: dict[str, Path], redis: RedisServer, directory: Path, postgres: Any,
                 progress: Callable[[str], None]) -> None:
        self.pythons = pythons
        self.redis = redis
        self.directory = directory
        self.postgres = postgres
        self.progress = progress
        self.notes: list[str] = []

    def python(self, library: Library) -> str:
        return str(self.pythons[library.venv])

    def driver(self, library: Library, ctx: Context | None, op: str, *options: str, timeout: float = 600) -> Any:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        if ctx is not None:
            env.update(ctx.to_env())
        command = [self.python(library), "-m", "peers.driver", library.module, op, *options]
        done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{library.label}: driver {op} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def worker(self, library: Library, ctx: Context, log: Path) -> WorkerProcess:
        return WorkerProcess(None, log, env=ctx.to_env(),
                             command=[self.python(library), "-m", "peers.driver", library.module, "worker"])

    # -- stores: a fresh one per measurement, removed afterwards --

    @contextlib.contextmanager
    def store(self, library: Library, name: str, concurrency: int = CONCURRENCY,
              options: dict[str, Any] | None = None) -> Iterator[Context]:
        redis_url = self.redis.url()
        try:
            if library.engine == "redis":
                yield Context("redis", redis_url, name, redis_url, concurrency, options)
            elif library.engine == "sqlite":
                path = self.directory / f"{name}.db"
                try:
                    yield Context("sqlite", str(path), name, redis_url, concurrency, options)
                finally:
                    for leftover in self.directory.glob(f"{name}.db*"):
                        leftover.unlink()
            elif library.name == "procrastinate":
                self.postgres.create_database(name, template=PROCRASTINATE_TEMPLATE)
                try:
                    yield Context("postgres", self.postgres.url(name), name, redis_url, concurrency, options)
                finally:
                    self.postgres.drop_database(name)
            else:
                try:
                    yield Context("postgres", self.postgres.url(), name, redis_url, concurrency, options)
                finally:
                    self.postgres.drop_schema(name)
        finally:
            self.redis.flush()  # no worker runs now: the library's keys and the tallies go

    def analyze(self, library: Library, ctx: Context) -> None:
        """PostgreSQL: ANALYZE the backlog before a worker starts on it, for every library, as
        autovacuum would have done to a queue table in use (see benchmarks/README.md, bench.py)."""
        if library.engine != "postgres":
            return
        if library.name == "procrastinate":
            self.postgres.execute("ANALYZE procrastinate_jobs", database=ctx.name)
        else:
            self.postgres.execute(f"ANALYZE {ctx.name}.jobs")

    # -- the measurements --

    def enqueue(self, library: Library, ctx: Context, mode: str, jobs_: int, key: str) -> float | None:
        result = self.driver(library, ctx, "enqueue", "--mode", mode, "--jobs", str(jobs_), "--key", key, "--fill")
        return None if result["seconds"] is None else jobs_ / result["seconds"]

    def drain(self, library: Library, ctx: Context, jobs_: int, key: str, processes: int,
              tag: str) -> tuple[float, float, dict[str, Any]]:
        """Start `processes` worker processes on a backlog of `jobs_` tally jobs; jobs/s while all
        of them ran (from the jobs' own 10 ms buckets) and the first process tree's peak RSS."""
        client = self.redis.client()
        workers = [self.worker(library, ctx, self.directory / f"{tag}-w{number}.log") for number in range(processes)]
        try:
            deadline = time.monotonic() + max(120.0, jobs_ / 20)
            while jobs.read_done(client, key) < jobs_:
                for worker in workers:
                    worker.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{library.label}: {jobs.read_done(client, key)} of {jobs_} jobs done after "
                                       f"{max(120.0, jobs_ / 20):.0f}s; worker log:\n{workers[0].log()}")
                time.sleep(DONE_POLL)
            time.sleep(3 * jobs.FLUSH_DELAY)  # the last flushes of the other processes
            rss = tree_peak_rss_mib(workers[0].process.pid)
            drain = jobs.read_drain(client, key)
            warnings = sum(warning_lines(worker) for worker in workers)  # before SIGTERM: its messages don't count
            first_warning = next((line for worker in workers for line in worker.log().splitlines()
                                  if "WARNING" in line), None)
        finally:
            for worker in workers:
                worker.stop()
            client.close()
        rate, window = drain.rate_all_running()
        info = {"done": drain.done, "processes_seen": len(drain.firsts), "window_s": window, "span_s": drain.span,
                "warnings": warnings}
        if first_warning is not None:
            self.notes.append(f"{library.label} logged {warnings} WARNING lines ({tag}), the first: {first_warning}")
        if drain.done > jobs_:
            self.notes.append(f"{library.label} ran {drain.done - jobs_} of {jobs_} jobs twice ({tag})")
        if processes > 1 and window == 0.0 and len(drain.firsts) == processes:
            self.notes.append(f"{library.label}: the {processes} worker processes overlapped for less than 0.2 s "
                              f"({tag}): the figure is jobs / whole drain, start-up skew included; use more --jobs")
        if len(drain.firsts) < processes:
            self.notes.append(f"{library.label}: only {len(drain.firsts)} of {processes} worker processes ran a job "
                              f"({tag})")
            rate = float("nan")
        return rate, rss, info

    def latency(self, library: Library, ctx: Context, count: int, key: str, tag: str) -> tuple[float, float]:
        with self.worker(library, ctx, self.directory / f"{tag}-latency.log") as worker:
            try:
                result = self.driver(library, ctx, "latency", "--count", str(count), "--key", key, timeout=180)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nworker log:\n{worker.log()}") from None
        latencies = result["latencies_ms"]
        return percentile(latencies, 50), percentile(latencies, 99)

    def backlog(self, library: Library, jobs_: int, every: int) -> dict[str, Any]:
        """A backlog of `jobs_` jobs enqueued (in bulk where the library can) and timed per `every`
        jobs as it grows, then drained by one worker process, timed per `every` jobs as it shrinks
        (from the jobs' 10 ms buckets), with the worker tree's resident memory sampled every 0.5 s."""
        tag = f"backlog_{library.name}_{library.engine}"
        key = f"{tag}:jobs"
        with self.store(library, tag) as ctx:
            chunks = max(1, jobs_ // every)
            result = self.driver(library, ctx, "enqueue", "--mode", "bulk", "--jobs", str(jobs_), "--key", key,
                                 "--chunks", str(chunks), timeout=max(600.0, jobs_ / 100))
            enqueue_rates = [jobs_ / chunks / seconds for seconds in result["chunk_seconds"]]
            self.analyze(library, ctx)
            client = self.redis.client()
            samples: list[tuple[float, int, float]] = []  # time, jobs done, tree RSS MiB
            with self.worker(library, ctx, self.directory / f"{tag}.log") as worker:
                deadline = time.monotonic() + max(300.0, jobs_ / 20)
                while True:
                    done = jobs.read_done(client, key)
                    samples.append((time.time(), done, tree_rss_mib(worker.process.pid)))
                    if done >= jobs_:
                        break
                    worker.check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{library.label}: backlog not drained in time:\n{worker.log()}")
                    time.sleep(0.5)
                time.sleep(3 * jobs.FLUSH_DELAY)
                peak = tree_peak_rss_mib(worker.process.pid)
                drain = jobs.read_drain(client, key)
            client.close()
        marks = [min(drain.firsts), *drain.marks(every)]
        drain_rates = [every / (b - a) if b > a else float("nan") for a, b in itertools.pairwise(marks)]
        return {"jobs": jobs_, "every": every, "enqueue_bulk": result["bulk"], "enqueue_rates": enqueue_rates,
                "drain_rates": drain_rates, "drain_overall": drain.done / drain.span, "peak_rss_mib": peak,
                "rss_samples": [[round(t - samples[0][0], 2), d, round(r, 1)] for t, d, r in samples]}

    def mix(self, library: Library, setup: MixSetup, number: int, jobs_: int) -> dict[str, Any]:
        """The realistic mix, one worker: `jobs_` jobs of the setup's kind enqueued (untimed; the same
        sleeps or the same loop for every library), then the worker started on them: jobs/s while all
        its job processes ran (one process: N / (last finish - first start)), and its tree's peak RSS."""
        tag = f"r{number}_{library.name}_{library.engine}_mix_{setup.variant}".replace("-", "_")
        key = f"{tag}:jobs"
        with self.store(library, tag, setup.concurrency, {"pool": setup.pool}) as ctx:
            self.driver(library, ctx, "mix", "--task", setup.task, "--jobs", str(jobs_), "--key", key)
            self.analyze(library, ctx)
            rate, rss, info = self.drain(library, ctx, jobs_, key, 1, tag)
        label = f"{library.label} {setup.worker}"
        if info["processes_seen"] < setup.job_processes:
            self.notes.append(f"{label}: only {info['processes_seen']} of {setup.job_processes} processes ran a job "
                              f"({tag})")
        elif setup.job_processes > 1 and info["window_s"] == 0.0:
            self.notes.append(f"{label}: its {setup.job_processes} processes ran together for less than 0.2 s ({tag}): "
                              "the figure is jobs / whole drain, start-up skew included; use a larger --mix")
        return {"rate": rate, "rss": rss, "warnings": info["warnings"], "window_s": info["window_s"]}

    def measure(self, library: Library, number: int, settings: Settings) -> dict[str, float | None]:
        tag = f"r{number}_{library.name}_{library.engine}"
        values: dict[str, float | None] = {}
        with self.store(library, f"{tag}_one") as ctx:
            values["enqueue_one"] = self.enqueue(library, ctx, "one", settings.jobs, f"{tag}:one")
            self.analyze(library, ctx)
            values["drain_1"], values["rss"], info = self.drain(library, ctx, settings.jobs, f"{tag}:one", 1,
                                                                f"{tag}_drain1")
            values["warnings"] = info["warnings"]
        with self.store(library, f"{tag}_bulk") as ctx:
            values["enqueue_bulk"] = self.enqueue(library, ctx, "bulk", settings.jobs, f"{tag}:bulk")
            self.analyze(library, ctx)
            values["drain_2"], _, info = self.drain(library, ctx, settings.jobs, f"{tag}:bulk", 2, f"{tag}_drain2")
            values["warnings"] = (values["warnings"] or 0) + info["warnings"]
            values["drain_2_window_s"] = info["window_s"]
        with self.store(library, f"{tag}_latency") as ctx:
            values["latency_p50"], values["latency_p99"] = self.latency(library, ctx, settings.latency_jobs,
                                                                        f"{tag}:latency", tag)
        return values


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Settings:
    jobs: int
    rounds: int
    latency_jobs: int
    quick: bool
    engines: list[str]
    libraries: list[str] | None
    scratch: str | None
    backlog: int = 0  # jobs in the backlog stage (0: no backlog stage)
    backlog_every: int = 100_000
    skip_core: bool = False
    mix: int = 0  # jobs per drain in the realistic mix, for each stage (0: no mix stage)


@dataclass
class Results:
    settings: Settings
    started: str
    machine: dict[str, Any]
    servers: dict[str, Any] = field(default_factory=dict)
    libraries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> label, engine, version, values
    backlogs: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> Runner.backlog's result
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mix: dict[str, Any] = field(default_factory=dict)  # the mix's workload and ideals (mix_workload)
    mixes: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<library key>:<variant>" -> its figures
    backlog_run: str | None = None  # when the backlogs come from another run (--backlog-from): when it began

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "settings": vars(self.settings), "machine": self.machine,
                "servers": self.servers, "libraries": self.libraries, "backlogs": self.backlogs,
                "failures": self.failures, "notes": self.notes,
                "ratios": ratios(self.libraries), "mix": self.mix, "mixes": self.mixes,
                "mix_ratios": mix_ratios(self.mixes), "backlog_run": self.backlog_run}


def selected_libraries(settings: Settings) -> list[Library]:
    return [library for library in LIBRARIES if library.engine in settings.engines
            and (settings.libraries is None or library.name in settings.libraries)]


def run(settings: Settings, progress: Callable[[str], None]) -> Results:
    libraries = selected_libraries(settings)
    venvs = sorted({library.venv for library in libraries} - {"project"})
    pythons = {"project": Path(sys.executable), **install.ensure(venvs, log=progress)}
    results = Results(settings, datetime.now(UTC).isoformat(timespec="seconds"), machine())
    for library in libraries:
        if library.venv not in pythons:
            results.failures[library.key] = f"the {library.venv} venv could not be installed"
    libraries = [library for library in libraries if library.key not in results.failures]
    with scratch_dir(settings.scratch) as directory:
        (directory / "redis").mkdir()
        redis = RedisServer(directory / "redis").start()
        try:
            results.servers["redis"] = {"version": redis.version(), "port": redis.port,
                                        "options": "--save '' --appendonly no"}
            with contextlib.ExitStack() as stack:
                postgres = None
                if any(library.engine == "postgres" for library in libraries):
                    if os.geteuid() == 0:
                        directory.chmod(0o711)  # the server runs as `postgres` and must reach its directory
                    postgres = stack.enter_context(postgres_server(directory))
                    results.servers["postgres"] = {"version": postgres.version(), "port": postgres.port,
                                                   "settings": POSTGRES_SETTINGS}
                runner = Runner(pythons, redis, directory, postgres, progress)
                for library in list(libraries):
                    try:
                        version = runner.driver(library, None, "version")["version"]
                        if library.name == "procrastinate":
                            postgres.create_database(PROCRASTINATE_TEMPLATE)
                            runner.driver(library, Context("postgres", postgres.url(PROCRASTINATE_TEMPLATE),
                                                           PROCRASTINATE_TEMPLATE, redis.url()), "setup")
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        results.failures[library.key] = str(exc)
                        libraries.remove(library)
                        continue
                    results.libraries[library.key] = {
                        "name": library.name, "engine": library.engine, "label": library.label,
                        "version": version, "worker": library.worker, "venv": library.venv,
                        "values": {metric.key: [] for metric in METRICS}, "warnings": 0}
                for number in range(1, 0 if settings.skip_core else settings.rounds + 1):
                    for library in list(libraries):
                        progress(f"round {number}/{settings.rounds}: {library.label}")
                        try:
                            values = runner.measure(library, number, settings)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            results.failures[library.key] = f"round {number}: {exc}"
                            libraries.remove(library)
                            progress(f"  {library.label} failed: {str(exc).splitlines()[0]}")
                            continue
                        entry = results.libraries[library.key]
                        for metric in METRICS:
                            entry["values"][metric.key].append(values[metric.key])
                        entry["warnings"] += int(values["warnings"] or 0)
                if settings.mix:
                    run_mix(runner, results, libraries, settings)
                if settings.backlog:
                    for library in list(libraries):
                        progress(f"backlog of {settings.backlog:,}: {library.label}")
                        try:
                            results.backlogs[library.key] = runner.backlog(library, settings.backlog,
                                                                           settings.backlog_every)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            results.failures[library.key] = f"backlog: {exc}"
                            progress(f"  {library.label} failed: {str(exc).splitlines()[0]}")
                results.notes.extend(runner.notes)
        finally:
            redis.stop()
    for key, failure in results.failures.items():  # a library that failed part-way keeps no half-filled figures
        if not failure.startswith(("backlog: ", "mix: ")):
            results.libraries.pop(key, None)
    return results


def mix_workload(jobs_: int) -> dict[str, Any]:
    """The mix's jobs and the ideal rates they allow: 50 at once / the mean sleep; 2 processes / the
    CPU time of one CPU-bound job, measured here, once, in this process (the same interpreter as the
    peers' venvs, which install.py makes from it)."""
    sleeps = jobs.sleep_durations(jobs_)
    mean_sleep = statistics.fmean(sleeps)
    cpu_s = jobs.cpu_seconds(jobs.CPU_LOOPS)
    return {"jobs": jobs_, "seed": jobs.MIX_SEED, "sleep_range_s": list(jobs.SLEEP_RANGE), "mean_sleep_s": mean_sleep,
            "io_concurrency": IO_CONCURRENCY, "cpu_loops": jobs.CPU_LOOPS, "cpu_s": cpu_s,
            "cpu_processes": CPU_PROCESSES,
            "ideal": {"io": IO_CONCURRENCY / mean_sleep, "cpu": CPU_PROCESSES / cpu_s}}


def run_mix(runner: Runner, results: Results, libraries: list[Library], settings: Settings) -> None:
    """The realistic mix, after the core table: per round, per library, each of its MIX setups."""
    results.mix = mix_workload(settings.mix)
    results.mix["impossible"] = [
        {"name": library.name, "engine": library.engine, "stage": stage, "reason": MIX_IMPOSSIBLE[library.name, stage]}
        for library in libraries for stage in MIX_STAGES if (library.name, stage) in MIX_IMPOSSIBLE]
    runner.progress(f"mix: {settings.mix:,} jobs per stage; mean sleep {results.mix['mean_sleep_s'] * 1000:.1f} ms, "
                    f"CPU per job {results.mix['cpu_s'] * 1000:.2f} ms")
    setups = [(library, setup) for library in libraries for setup in MIX.get(library.name, [])]
    for library, setup in setups:
        results.mixes[f"{library.key}:{setup.variant}"] = {
            "name": library.name, "engine": library.engine, "label": library.label,
            "version": results.libraries[library.key]["version"], "stage": setup.stage, "variant": setup.variant,
            "worker": setup.worker, "concurrency": setup.concurrency, "values": [], "rss": [], "warnings": 0}
    for number in range(1, settings.rounds + 1):
        for library, setup in list(setups):
            key = f"{library.key}:{setup.variant}"
            runner.progress(f"mix round {number}/{settings.rounds}: {library.label} {setup.stage} {setup.worker}")
            try:
                figures = runner.mix(library, setup, number, settings.mix)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results.failures[key] = f"mix: round {number}: {exc}"
                results.mixes.pop(key, None)  # no half-filled figures, as for the core table
                setups.remove((library, setup))
                runner.progress(f"  {library.label} {setup.variant} failed: {str(exc).splitlines()[0]}")
                continue
            entry = results.mixes[key]
            entry["values"].append(figures["rate"])
            entry["rss"].append(figures["rss"])
            entry["warnings"] += int(figures["warnings"] or 0)


# -- figures, ratios, tables ---------------------------------------------------------------------


def clean(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and v == v]  # drops None and NaN


def summary(values: list[float | None]) -> tuple[float, float, float] | None:
    kept = clean(values)
    if not kept:
        return None
    return statistics.median(kept), min(kept), max(kept)


def best_peer(libraries: dict[str, dict[str, Any]], engine: str, metric: Metric) -> str | None:
    """The peer on `engine` with the best median for `metric` (None: no peer has a figure)."""
    candidates = []
    for key, entry in libraries.items():
        if entry["engine"] == engine and entry["name"] != "conveyor":
            figures = summary(entry["values"][metric.key])
            if figures is not None:
                candidates.append((figures[0], key))
    if not candidates:
        return None
    return (max if metric.higher_is_better else min)(candidates)[1]


def ratios(libraries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per engine and metric: conveyor / the best peer, per round (same run, same round), then the
    median and range of those ratios. Above 1 is better for rates, below 1 for latency and memory."""
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        own = libraries.get(f"conveyor-{engine}")
        if own is None:
            continue
        for metric in METRICS:
            peer = best_peer(libraries, engine, metric)
            if peer is None:
                continue
            pairs = zip(own["values"][metric.key], libraries[peer]["values"][metric.key], strict=True)
            per_round = clean([a / b if a is not None and b else None for a, b in pairs])
            if per_round:
                out.setdefault(engine, {})[metric.key] = {
                    "peer": peer, "peer_label": libraries[peer]["label"], "ratios": per_round,
                    "median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
    return out


def mix_ratios(mixes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per engine and stage, for each of conveyor's workers: conveyor / the peer worker with the best
    median jobs/s in that stage, per round, then the median and range (above 1: conveyor is faster)."""
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        for stage in MIX_STAGES:
            entries = {key: e for key, e in mixes.items() if e["engine"] == engine and e["stage"] == stage}
            peers = [(figures[0], key) for key, e in entries.items()
                     if e["name"] != "conveyor" and (figures := summary(e["values"])) is not None]
            if not peers:
                continue
            peer = max(peers)[1]
            for own in entries.values():
                if own["name"] != "conveyor":
                    continue
                pairs = zip(own["values"], entries[peer]["values"], strict=True)
                per_round = clean([a / b if a is not None and b else None for a, b in pairs])
                if per_round:
                    out.setdefault(engine, {}).setdefault(stage, {})[own["variant"]] = {
                        "peer": peer, "peer_label": f"{entries[peer]['label']} {entries[peer]['worker']}",
                        "ratios": per_round, "median": statistics.median(per_round), "min": min(per_round),
                        "max": max(per_round)}
    return out


def fmt(value: float, unit: str) -> str:
    if unit in {"ms", "MiB"}:
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def cell(values: list[float | None], unit: str, *, no_value: str = "-") -> str:
    figures = summary(values)
    if figures is None:
        return no_value
    median, low, high = figures
    if len(clean(values)) == 1 or low == high:
        return fmt(median, unit)
    return f"{fmt(median, unit)} ({fmt(low, unit)}-{fmt(high, unit)})"


def table(results: Results, engine: str) -> tuple[list[str], list[list[str]]]:
    headers = ["library", *(m.short for m in METRICS)]
    rows = []
    for entry in results.libraries.values():
        if entry["engine"] != engine or not any(clean(values) for values in entry["values"].values()):
            continue
        row = [f"{entry['name']} {entry['version']}"]
        for metric in METRICS:
            no_value = "no bulk API" if metric.key == "enqueue_bulk" else "n/a"
            row.append(cell(entry["values"][metric.key], metric.unit, no_value=no_value))
        rows.append(row)
    return headers, rows


def ratio_table(results: Results) -> tuple[list[str], list[list[str]]]:
    headers = ["engine", "figure", "conveyor", "best peer", "peer", "conveyor / peer (range)"]
    rows = []
    for engine, by_metric in ratios(results.libraries).items():
        own = results.libraries[f"conveyor-{engine}"]
        for metric in METRICS:
            ratio = by_metric.get(metric.key)
            if ratio is None:
                continue
            peer = results.libraries[ratio["peer"]]
            spread = "" if ratio["min"] == ratio["max"] else f" ({ratio['min']:.2f}-{ratio['max']:.2f})"
            rows.append([ENGINE_LABELS[engine], f"{metric.label}, {metric.unit}",
                         cell(own["values"][metric.key], metric.unit), peer["name"],
                         cell(peer["values"][metric.key], metric.unit), f"{ratio['median']:.2f}x{spread}"])
    return headers, rows


def backlog_table(results: Results) -> tuple[list[str], list[list[str]]]:
    """Per library: first, worst, last chunk and worst/first, for enqueue and drain; peak RSS and
    RSS at 10% and at the end of the drain (flat means no growth with the backlog)."""
    headers = ["library", "phase", "first", "min", "last", "min / first", "overall", "RSS MiB 10% / end / peak"]
    rows = []
    for key, backlog in results.backlogs.items():
        entry = results.libraries.get(key, {"label": key, "version": ""})
        name = f"{entry['label']} {entry['version']}".strip()
        for phase, rates in (("enqueue " + ("bulk" if backlog["enqueue_bulk"] else "one"), backlog["enqueue_rates"]),
                             ("drain", backlog["drain_rates"])):
            kept = clean(rates)
            if not kept:
                continue
            overall = (f"{backlog['drain_overall']:,.0f}" if phase == "drain"
                       else f"{len(rates) / sum(1 / r for r in kept):,.0f}")
            memory = ""
            if phase == "drain":
                samples = backlog["rss_samples"]
                early = next((s[2] for s in samples if s[1] >= backlog["jobs"] * 0.1), samples[0][2])
                memory = f"{early:,.0f} / {samples[-1][2]:,.0f} / {backlog['peak_rss_mib']:,.0f}"
            rows.append([name, phase, f"{kept[0]:,.0f}", f"{min(kept):,.0f}", f"{kept[-1]:,.0f}",
                         f"{min(kept) / kept[0]:.2f}", overall, memory])
    return headers, rows


def mix_table(results: Results) -> tuple[list[str], list[list[str]]]:
    """Per engine, stage and worker: jobs/s (median, range), the ideal, the median's share of it,
    peak RSS; for conveyor's workers also the per-round ratio against the stage's best peer."""
    headers = ["engine", "stage", "library", "worker", "jobs/s", "ideal", "of ideal", "RSS MiB", "vs best peer"]
    rows = []
    by_ratio = mix_ratios(results.mixes)
    order = {engine: number for number, engine in enumerate(ENGINES)}
    entries = sorted(results.mixes.values(), key=lambda e: (MIX_STAGES.index(e["stage"]), order[e["engine"]]))
    for entry in entries:
        figures = summary(entry["values"])
        if figures is None:
            continue
        ideal = results.mix["ideal"][entry["stage"]]
        ratio = by_ratio.get(entry["engine"], {}).get(entry["stage"], {}).get(entry["variant"])
        versus = ""
        if entry["name"] == "conveyor" and ratio is not None:
            spread = "" if ratio["min"] == ratio["max"] else f" ({ratio['min']:.2f}-{ratio['max']:.2f})"
            versus = f"{ratio['median']:.2f}x{spread} {results.mixes[ratio['peer']]['name']}"
        rows.append([ENGINE_LABELS[entry["engine"]], entry["stage"], f"{entry['name']} {entry['version']}",
                     entry["worker"], cell(entry["values"], "jobs/s"), f"{ideal:,.0f}", f"{figures[0] / ideal:.0%}",
                     cell(entry["rss"], "MiB"), versus])
    return headers, rows


def mix_heading(results: Results) -> str:
    m = results.mix
    return (f"realistic mix, {m['jobs']:,} jobs per drain: I/O-bound = sleep {m['sleep_range_s'][0] * 1000:.0f}-"
            f"{m['sleep_range_s'][1] * 1000:.0f} ms (seed {m['seed']}, mean {m['mean_sleep_s'] * 1000:.1f} ms), "
            f"{m['io_concurrency']} at once, ideal {m['io_concurrency']} / mean sleep; CPU-bound = a pure-Python "
            f"loop of {m['cpu_loops']:,} turns ({m['cpu_s'] * 1000:.2f} ms of CPU here), {m['cpu_processes']} "
            f"processes, ideal {m['cpu_processes']} / that")


def mix_impossible_lines(results: Results) -> list[str]:
    return [f"{item['name']} ({ENGINE_LABELS[item['engine']]}), {item['stage']}: not measured: {item['reason']}"
            for item in results.mix.get("impossible", [])]


def text_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Columns before `left` are text (left-aligned), the others figures."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i < left else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths, strict=True))).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    aligns = ["---" if index < left else "--:" for index in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def title(results: Results) -> str:
    s = results.settings
    if s.skip_core:
        return f"conveyor vs peers, {s.rounds} round(s): " + ("the mix" if s.mix else "") + \
            (" and " if s.mix and s.backlog else "") + ("the backlog" if s.backlog else "") + " only"
    return (f"conveyor vs peers: {s.jobs:,} no-op jobs per drain, {s.rounds} round(s), {s.latency_jobs} latency "
            f"probes; median (min-max)")


def versions_line(results: Results) -> str:
    m = results.machine
    parts = [f"{m['cpus']} CPUs ({m['cpu_model'] or 'unknown model'})", f"{m['implementation']} {m['python']}",
             f"redis-server {results.servers['redis']['version']} ({results.servers['redis']['options']})"]
    if "postgres" in results.servers:
        settings = ", ".join(f"{k}={v}" for k, v in results.servers["postgres"]["settings"].items())
        parts.append(f"PostgreSQL {results.servers['postgres']['version']} ({settings})")
    parts.append(f"SQLite {m['sqlite']}")
    parts.append(m["platform"])
    return ", ".join(parts)


def print_report(results: Results) -> None:
    print(title(results))
    for engine in results.settings.engines:
        headers, rows = table(results, engine)
        if rows:
            print(f"\n{ENGINE_LABELS[engine]}")
            print(text_table(headers, rows))
    headers, rows = ratio_table(results)
    if rows:
        print("\nconveyor against the best peer on the same engine (per-round ratios; above 1 is better for jobs/s, "
              "below 1 for ms and MiB)")
        print(text_table(headers, rows, left=2))
    headers, rows = mix_table(results)
    if rows:
        print(f"\n{mix_heading(results)}; median (min-max), 'of ideal' = median / ideal")
        print(text_table(headers, rows, left=4))
        for line in mix_impossible_lines(results):
            print(f"  {line}")
    headers, rows = backlog_table(results)
    if rows:
        print(f"\nbacklog of {results.settings.backlog:,} jobs, one worker process: jobs/s per "
              f"{results.settings.backlog_every:,} jobs as it grows (enqueue) and shrinks (drain); worker RSS")
        print(text_table(headers, rows, left=2))
    print(f"\nmachine: {versions_line(results)}")
    for entry in [*results.libraries.values(), *results.mixes.values()]:
        if entry["warnings"]:
            print(f"note: {entry['label']} {entry.get('worker', '')} logged {entry['warnings']} WARNING lines while "
                  "draining".replace("  ", " "))
    for note in results.notes:
        print(f"note: {note}")
    for key, failure in results.failures.items():
        print(f"FAILED {key}: {failure.splitlines()[0] if failure else ''}")


# -- the chart and the doc -----------------------------------------------------------------------


def write_chart(json_path: Path, png_path: Path, pythons: dict[str, Path]) -> bool:
    """The PNG, drawn by matplotlib in the peers venv (matplotlib is not a project dependency)."""
    python = pythons.get("peers") or install.ensure(["peers"]).get("peers")
    if python is None:
        return False
    png_path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(python), "-m", "peers.chart", str(json_path), str(png_path)], cwd=HERE,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"chart failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return False
    return True


def write_doc(results: Results, doc_path: Path, chart_path: Path | None, json_path: Path) -> None:
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    chart = os.path.relpath(chart_path, doc_path.parent) if chart_path is not None else None
    doc_path.write_text(render_doc(results, chart, os.path.relpath(json_path, ROOT)))


def render_doc(results: Results, chart: str | None, json_name: str) -> str:
    """docs/benchmarks.md: generated by benchmarks/compare.py from one run's results; edit the
    generator, not the file."""
    s = results.settings
    lines = [
        "# Benchmarks: conveyor and its peers",
        "",
        f"<!-- generated by benchmarks/compare.py from {json_name}; do not edit by hand -->",
        "",
        f"Measured {results.started[:16].replace('T', ' ')} UTC with `python benchmarks/compare.py"
        + (" --quick" if s.quick else "") + "`"
        + (" (a quick smoke run: too few jobs and rounds for the figures to mean much)" if s.quick else "") + ".",
        "Every library ran in the same run as conveyor, against the same local servers, on the same machine: "
        "quote the ratios, which move much less between machines than the absolute figures.",
        "",
        f"- **Machine:** {versions_line(results)}.",
        "- **Versions:** " + ", ".join(f"{e['name']} {e['version']}" for e in unique_versions(results)) + ".",
        f"- **Workload:** {s.jobs:,} no-op jobs per drain; {s.latency_jobs} latency probes one every 5 ms; "
        f"median of {s.rounds} round(s), min-max in brackets. Each worker process runs 8 jobs at a time "
        "(threads or asyncio, as the library does it) unless said otherwise below.",
        "",
    ]
    if chart is not None:
        lines += [f"![conveyor and its peers]({chart})", ""]
    headers, rows = ratio_table(results)
    if rows:
        lines += ["## conveyor against the best peer on each engine", "",
                  "The ratio is taken within each round (conveyor / that peer, measured minutes apart against the "
                  "same server), then the median and range of the rounds' ratios. Above 1 is better for jobs/s, "
                  "below 1 for latency and memory.", "", markdown_table(headers, rows, left=2), ""]
    for engine in s.engines:
        headers, rows = table(results, engine)
        if rows:
            lines += [f"## {ENGINE_LABELS[engine]}", "", "jobs/s for the enqueue and drain columns; "
                      "latency in ms; the worker's peak RSS in MiB.", "", markdown_table(headers, rows), ""]
    headers, rows = mix_table(results)
    if rows:
        m = results.mix
        lines += ["## A realistic mix", "",
                  f"{m['jobs']:,} jobs per drain, enqueued first, then one worker started on them (the same jobs for "
                  f"every library). **I/O-bound:** each job sleeps {m['sleep_range_s'][0] * 1000:.0f}-"
                  f"{m['sleep_range_s'][1] * 1000:.0f} ms (drawn with a fixed seed, {m['seed']}: the same durations "
                  f"in the same order for all; mean {m['mean_sleep_s'] * 1000:.1f} ms), like sending an email: a "
                  "blocking `time.sleep` on threads, an awaited `asyncio.sleep` on asyncio, "
                  f"{m['io_concurrency']} jobs at once. Ideal: {m['io_concurrency']} / the mean sleep. "
                  f"**CPU-bound:** each job runs a pure-Python loop of {m['cpu_loops']:,} turns, "
                  f"{m['cpu_s'] * 1000:.2f} ms of CPU when measured once in the benchmark's own process, on "
                  f"{m['cpu_processes']} worker processes (the machine's cores); ideal: {m['cpu_processes']} / that "
                  "CPU time, which no worker reaches exactly (its parent process, the store's server and the "
                  "benchmark share the same cores). jobs/s = N / (last finish - first start) for one process, and "
                  "the rate while all job processes ran for several (as for the 2-process drain). 'vs best peer': "
                  "conveyor / the fastest peer worker of that stage on that engine, per round, then the median.",
                  "", markdown_table(headers, rows, left=4), ""]
        impossible = mix_impossible_lines(results)
        if impossible:
            lines += [*(f"- {line}" for line in impossible), ""]
    headers, rows = backlog_table(results)
    if rows:
        lines += [f"## A backlog of {s.backlog:,} jobs", "",
                  f"Enqueued in chunks of {s.backlog_every:,} (in bulk where the library has a bulk API), each chunk "
                  "timed as the backlog grows; then drained by one worker process, timed per "
                  f"{s.backlog_every:,} jobs as it shrinks (from the jobs' own 10 ms buckets). jobs/s; 'min / first' "
                  "near 1 means no degradation. The worker tree's resident memory (VmRSS) is sampled every 0.5 s: "
                  "at 10% of the drain, at its end, and its peak (VmHWM); flat means it does not grow with the "
                  "backlog. One run, not a median."
                  + (f" Measured in a run of its own (`--backlog-only`), begun "
                     f"{results.backlog_run[:16].replace('T', ' ')} UTC on the same machine."
                     if results.backlog_run else ""),
                  "", markdown_table(headers, rows, left=2), ""]
    lines += ["## The workers", "", "| library | engine | one worker process |", "|---|---|---|"]
    lines += [f"| {e['name']} | {ENGINE_LABELS[e['engine']]} | {e['worker']} |" for e in results.libraries.values()]
    lines += ["", "## How it is measured", "", *METHOD, ""]
    extra = [f"- {note}" for note in results.notes]
    extra += [f"- {e['label']} {e.get('worker', '')} logged {e['warnings']} WARNING lines while draining."
              .replace("  ", " ") for e in [*results.libraries.values(), *results.mixes.values()] if e["warnings"]]
    extra += [f"- {key} failed and has no figures: {failure.splitlines()[0]}"
              for key, failure in results.failures.items()]
    if extra:
        lines += ["## Notes on this run", "", *extra, ""]
    return "\n".join(lines)


def unique_versions(results: Results) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in results.libraries.values():
        seen.setdefault(entry["name"], entry)
    return list(seen.values())


METHOD = [
    "- **One command, one run.** `python benchmarks/compare.py` installs the peers into venvs of its own "
    "(`benchmarks/peers/install.py`; never project dependencies), starts one redis-server and one PostgreSQL "
    "cluster on free loopback ports with private directories, measures every library in turn, round after "
    "round, and stops both servers at the end.",
    "- **Same interface for all.** Each library has an adapter in `benchmarks/peers/` (enqueue one, enqueue in "
    "bulk, one worker process, a latency probe), run by `peers.driver` in the library's own interpreter. "
    "Enqueue rates are timed inside that process around the library's calls only (after connecting).",
    "- **Same job, same completion detection.** Every library runs the same job body, `peers.jobs.tally`: it "
    "counts in the worker process's memory and a thread flushes the counts to the benchmark's redis-server "
    "every 5 ms in one pipeline (total, jobs finished per 10 ms, each process's first start and last finish). "
    "The runner polls the total every 50 ms. A job is thus as near a no-op as a job timed from outside can be "
    "(no round trip per job), so the drain figure is each library's own cost.",
    "- **Drain, 1 worker process:** N jobs enqueued one at a time (that is the 'enqueue one' figure), then one "
    "worker process started: N / (last job's finish - first job's start), as the jobs recorded them.",
    "- **Drain, 2 worker processes:** N jobs enqueued in bulk (or one at a time: 'no bulk API'), then two worker "
    "processes started at once: the jobs finished while both processes were running (from the last process's "
    "first start to the first process's last finish, counted from the 10 ms buckets) / that window, so neither "
    "process's start-up counts.",
    "- **Latency:** a worker started and warmed up with one probe, then L probes one every 5 ms; each reads "
    "`time.time()` when it starts and stores it in Redis; latency = that minus `time.time()` read just before "
    "the enqueue call.",
    "- **Memory:** the peak resident memory (VmHWM) of the worker's process tree at the end of the "
    "one-process drain.",
    "- **PostgreSQL:** every measurement has a fresh schema (conveyor) or a fresh database copied from a template "
    "holding procrastinate's schema; the backlog is ANALYZEd before the worker starts, for both, as autovacuum "
    "would have done to a queue table in use. The server runs with fsync=off and full_page_writes=off (a "
    "benchmark's server; synchronous_commit stays on). **Redis:** FLUSHALL between measurements. **SQLite:** a "
    "fresh file per measurement, in the scratch directory.",
    "- Delivery guarantees differ: Huey and RQ's SimpleWorker do less per job by design (Huey is at-most-once); "
    "conveyor, Dramatiq, SAQ, Celery (acks late off by default: at-most-once per message) and procrastinate "
    "differ in what they keep. The figures measure cost, not guarantees.",
]


# -- the command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per drain (default 20000)")
    parser.add_argument("--rounds", type=int, default=None, help="runs of every figure (default 3)")
    parser.add_argument("--latency-jobs", type=int, default=None, help="probes for the latency (default 300)")
    parser.add_argument("--quick", action="store_true", help="1000 jobs, 1 round, 50 probes: a smoke run")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: redis,sqlite,postgres")
    parser.add_argument("--libraries", default=None, help="comma-separated names (default: all); conveyor is "
                        "needed for the ratios")
    parser.add_argument("--json", dest="json_path", type=Path, default=None,
                        help="results file (default benchmarks/results/compare-<timestamp>.json)")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--docs", dest="docs", action="store_true", default=None,
                      help="write docs/benchmarks.md and docs/images/benchmarks.png (the default without --quick)")
    docs.add_argument("--no-docs", dest="docs", action="store_false",
                      help="write the chart and the doc next to the JSON instead (the default with --quick)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="measure nothing: print, chart and document an earlier run's results file")
    parser.add_argument("--backlog-from", type=Path, default=None,
                        help="with --from-json: take the backlog stage from this other results file (a "
                        "--backlog-only run) and write the merged results next to the first")
    parser.add_argument("--backlog", type=int, nargs="?", const=1_000_000, default=0, metavar="N",
                        help="also the backlog stage: N jobs (default 1,000,000; --quick: 20,000) enqueued, then "
                        "drained by one worker process, timed per --backlog-every jobs")
    parser.add_argument("--backlog-every", type=int, default=None,
                        help="jobs per backlog figure (default 100,000, or N/10 if smaller)")
    parser.add_argument("--backlog-only", action="store_true", help="skip the core table (only the backlog stage)")
    parser.add_argument("--mix", type=int, nargs="?", const=5_000, default=0, metavar="N",
                        help="also the realistic mix: N jobs sleeping 10-50 ms at concurrency 50 (threads, asyncio) "
                        "and N CPU-bound jobs on 2 processes (default 5,000; --quick: 300)")
    parser.add_argument("--mix-only", action="store_true", help="skip the core table (the mix stage only)")
    parser.add_argument("--dir", default=None, help="where the scratch stores and servers go (default: system temp)")
    args = parser.parse_args(argv)
    defaults = {"jobs": 1000, "rounds": 1, "latency_jobs": 50} if args.quick else \
        {"jobs": 20_000, "rounds": 3, "latency_jobs": 300}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.docs is None:
        args.docs = not args.quick
    if args.backlog and args.quick and args.backlog == 1_000_000:
        args.backlog = 20_000
    if args.backlog_only and not args.backlog:
        args.backlog = 20_000 if args.quick else 1_000_000
    if args.backlog_every is None:  # after --backlog-only has set the backlog
        args.backlog_every = min(100_000, max(1, args.backlog // 10))
    if args.mix_only and not args.mix:
        args.mix = 5_000
    if args.mix and args.quick and args.mix == 5_000:
        args.mix = 300
    if args.mix < 0:
        parser.error("--mix must be at least 1")
    args.engines = [engine.strip() for engine in args.engines.split(",") if engine.strip()]
    if not args.engines or set(args.engines) - set(ENGINES):
        parser.error(f"--engines: choose from {', '.join(ENGINES)}")
    if args.libraries is not None:
        args.libraries = [name.strip() for name in args.libraries.split(",") if name.strip()]
    if args.backlog_from is not None and args.from_json is None:
        parser.error("--backlog-from goes with --from-json")
    return args


def load(path: Path) -> Results:
    data = json.loads(path.read_text())
    results = Results(Settings(**data["settings"]), data["started"], data["machine"], data["servers"],
                      data["libraries"], data.get("backlogs", {}), data["failures"], data["notes"],
                      data.get("mix", {}), data.get("mixes", {}), data.get("backlog_run"))
    return results


def add_backlog(results: Results, other: Results) -> None:
    """Take the backlog stage of `other` (a --backlog-only run) into `results`: a million-job backlog
    per library is too slow to run for every peer in the same run as the core table."""
    results.backlogs = other.backlogs
    results.settings.backlog, results.settings.backlog_every = other.settings.backlog, other.settings.backlog_every
    results.failures.update({k: v for k, v in other.failures.items() if v.startswith("backlog: ")})
    results.backlog_run = other.started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    if args.from_json is not None:
        results = load(args.from_json)
        json_path = args.from_json.resolve()
        if args.backlog_from is not None:
            add_backlog(results, load(args.backlog_from))
            json_path = json_path.with_name(f"{json_path.stem}-with-backlog.json")
            json_path.write_text(json.dumps(results.to_json(), indent=2) + "\n")
    else:
        settings = Settings(jobs=args.jobs, rounds=args.rounds, latency_jobs=args.latency_jobs, quick=args.quick,
                            engines=args.engines, libraries=args.libraries, scratch=args.dir, backlog=args.backlog,
                            backlog_every=args.backlog_every, skip_core=args.backlog_only or args.mix_only,
                            mix=args.mix)
        results = run(settings, lambda message: print(message, file=sys.stderr, flush=True))
        stamp = results.started.replace("-", "").replace(":", "").replace("+0000", "Z")
        json_path = (args.json_path or RESULTS_DIR / f"compare-{stamp}.json").resolve()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results.to_json(), indent=2) + "\n")
    print_report(results)
    if args.docs:
        chart_path, doc_path = CHART_PATH, DOC_PATH
    else:
        chart_path, doc_path = json_path.with_suffix(".png"), json_path.with_suffix(".md")
    pythons = {name: install.python_of(name) for name in install.VENVS if install.is_current(name)}
    has_core = any(clean(values) for entry in results.libraries.values() for values in entry["values"].values())
    drawn = has_core and write_chart(json_path, chart_path, pythons)
    write_doc(results, doc_path, chart_path if drawn else None, json_path)
    print(f"results: {json_path}\ndoc: {doc_path}" + (f"\nchart: {chart_path}" if drawn else "")
          + f"\ntook {time.monotonic() - began:.0f}s")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
