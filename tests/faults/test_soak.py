"""Soak (issue 7, scenario 7), on every engine: steady load on one worker for 90 s (ten minutes
with CONVEYOR_FAULTS_LONG=1): 200 jobs/s in batches of 10 every 50 ms, a tenth of them failing
once and retried, a tenth reporting progress, each returning 1 KiB; results kept 5 s.

Pass, comparing the run after its first fifth (the warm-up) with the warm-up's end:
- the worker's resident memory grows by less than 10 % and less than 20 MiB;
- the jobs stored stay within what the retention allows (jobs/s x (retention + two prune
  intervals) + a second's backlog), and the store's bytes stop growing (SQLite's file, the
  namespace's keys on Redis; PostgreSQL's table once autovacuum has had its minute, so there only
  in the long run);
- the p99 start latency of the last fifth is no worse than after the warm-up (within 2x or 10 ms:
  the machine is shared and noisy)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import wait_for
from tests.faults import soak_app
from tests.faults.harness import ROOT

LONG = os.environ.get("CONVEYOR_FAULTS_LONG") == "1"
SECONDS = 600.0 if LONG else 90.0
RATE = 200  # jobs/s
BATCH = 10
KINDS = ["fail_once", "progress"] + ["ok"] * 8
PRUNE_INTERVAL = max(1.0, soak_app.RETENTION / 2)  # the worker's, for this retention


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # bytes
    jobs: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)  # bytes of the store

    def after(self, values: list[int], start: float) -> list[int]:
        return [value for at, value in zip(self.at, values, strict=True) if at >= start]

    def at_or_before(self, values: list[int], moment: float) -> int:
        return [value for at, value in zip(self.at, values, strict=True) if at <= moment][-1]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def store_size(app: Conveyor) -> int:
    backend: Any = app.backend
    url = app.url or ""
    if url.startswith("sqlite"):
        path = Path(backend.path)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    if url.startswith("redis"):
        client = backend._client
        keys = list(client.scan_iter(match=f"{backend.keys.prefix}:*", count=1000))
        return sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
    rows = backend._query("SELECT pg_total_relation_size('{schema}.jobs') AS size")
    return int(rows[0]["size"])


def idle(app: Conveyor) -> bool:
    waiting = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING)
    return not any(n for queue in app.counts().values() for state, n in queue.items() if state in waiting)


def produce(app: Conveyor, stop: threading.Event) -> None:
    task = app.get_task("soak")
    sent = 0
    next_batch = time.monotonic()
    while not stop.is_set():
        now = time.time()
        task.map([(now, KINDS[(sent + n) % len(KINDS)]) for n in range(BATCH)])
        sent += BATCH
        next_batch += BATCH / RATE
        stop.wait(max(0.0, next_batch - time.monotonic()))  # the load's pace is the scenario


@pytest.mark.timeout(SECONDS + 180)
def test_steady_load_keeps_memory_store_and_latency_flat(engine_url: str, tmp_path: Path,
                                                          record_property: pytest.RecordProperty) -> None:
    app = soak_app.app
    app.close()
    app.url = engine_url
    log = tmp_path / "latency.txt"
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.faults.soak_app:app", "-c", "4",
         "--log-level", "WARNING"],
        cwd=ROOT, env={**os.environ, "CONVEYOR_URL": engine_url, "CONVEYOR_SOAK_LOG": str(log)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(app, stop), daemon=True)
    samples = Samples()
    try:
        started = time.time()
        producer.start()
        while time.time() - started < SECONDS:
            samples.at.append(time.time() - started)
            samples.rss.append(rss(worker.pid))
            counts = app.counts()
            samples.jobs.append(sum(n for queue in counts.values() for n in queue.values()))
            samples.size.append(store_size(app))
            time.sleep(1.0)  # the sampling clock
        stop.set()
        producer.join(timeout=30)
        assert wait_for(lambda: idle(app), timeout=60), app.counts()
        assert worker.poll() is None, "the worker died"
        final = app.counts().get("default", {})
    finally:
        stop.set()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
        app.close()
    warm = SECONDS / 5
    latencies = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    after_warm = [latency for at, latency in latencies if warm <= at - started < 2 * warm]
    at_end = [latency for at, latency in latencies if at - started >= SECONDS - warm]
    p99_warm, p99_end = (statistics.quantiles(values, n=100)[98] for values in (after_warm, at_end))
    rss_warm = samples.at_or_before(samples.rss, warm)
    rss_growth = max(samples.after(samples.rss, warm)) - rss_warm
    jobs_bound = RATE * (soak_app.RETENTION + 2 * PRUNE_INTERVAL + 1)
    size_warm = max(s for at, s in zip(samples.at, samples.size, strict=True) if at <= warm)
    size_end = max(samples.after(samples.size, SECONDS - warm))
    summary = (f"{len(latencies)} jobs in {SECONDS:.0f}s; worker RSS {rss_warm / 2**20:.1f} MiB after warm-up, "
               f"+{rss_growth / 2**20:.1f} MiB after; jobs stored at most {max(samples.jobs)} "
               f"(bound {jobs_bound:.0f}); "
               f"store {size_warm / 2**20:.1f} MiB at warm-up, {size_end / 2**20:.1f} MiB at the end; "
               f"p99 start latency {p99_warm * 1000:.1f} ms after warm-up, {p99_end * 1000:.1f} ms at the end")
    record_property("soak", summary)
    print(f"\n{summary}")
    assert len(latencies) >= 0.9 * RATE * SECONDS, "the worker fell behind the load"
    assert rss_growth < 0.10 * rss_warm and rss_growth < 20 * 2**20, "worker memory kept growing"
    assert max(samples.after(samples.jobs, warm)) <= jobs_bound, "finished jobs outlived their retention"
    if not engine_url.startswith("postgresql") or LONG:
        assert size_end <= 1.25 * size_warm, "the store kept growing"
    assert p99_end <= max(2 * p99_warm, p99_warm + 0.010), "start latency grew over the run"
    assert JobState.FAILED not in final, "a job failed: " + stderr.decode()[-2000:]
