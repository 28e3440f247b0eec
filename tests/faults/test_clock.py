"""Clock skew (fault scenario 14), on every engine: worker and producer processes whose wall clock is
90 s ahead of or behind the machine's, with Debian's libfaketime (`apt-get install faketime`).

Only the wall clock is shifted (CLOCK_REALTIME: `time.time()`, what a machine with a wrong clock
gets wrong); CLOCK_MONOTONIC is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1). Two reasons. A skewed
machine's monotonic clock is not skewed: it counts from boot and is never compared between
machines, and conveyor uses it only for local durations. And libfaketime 0.9.10 cannot shift it
under Python: it sets `time.monotonic()` to the faked epoch time, and every wait with a timeout
(`Event.wait`, `Lock.acquire`) then hangs, so a worker could not run at all. With the monotonic
clock untouched one bug remains: libfaketime rewrites the deadline of
`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` as if it were on the faked clock, and Python 3.11's
`time.sleep` (exactly that call) fails with EINVAL. The faked processes therefore load a
`sitecustomize` that makes `time.sleep` wait on an Event, which sleeps just as long.

Pass, as the issue says: no job is rescued while its worker is alive, and a delay or a retry
backoff is measured on the engine's clock (Redis TIME, PostgreSQL clock_timestamp()), whoever's
clock is wrong. The ledger's times come from each job's process, so a skewed worker's runs are moved
back by its skew before they are checked (`normalised`); that they were written 90 s off is checked
too, so the skew is known to have reached the worker.

SQLite has no server clock: each process stamps leases and due times with its own `time.time()`,
so a process whose clock is off writes times that are off by as much, and the tests fail there (they
are marked xfail, strict, with what breaks). Processes on one machine share one kernel clock, so
only a tool like libfaketime can skew one of them: for SQLite the scenario is artificial.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState, current_job
from conveyor.job import JobRecord
from tests.conftest import ENGINES, wait_for
from tests.faults import fault_app
from tests.faults.harness import APP, ROOT, Scenario
from tests.faults.ledger import Run, check

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEWS = [pytest.param(90.0, id="ahead-90s"), pytest.param(-90.0, id="behind-90s")]
LEASE = ("--lease", "1", "--heartbeat", "0.2")
DELAY = 3.0  # the delay a producer asks for, and the retry backoff a worker computes
LATE = 1.5  # how late past its due time a job may start on a busy 2-core machine

SQLITE_SKEW = (
    "SQLite has no server clock: a process stamps leases and due times with its own time.time(), so a "
    "process 90 s behind writes leases that expired 89 s ago (the others rescue its jobs at once), one 90 s "
    "ahead rescues everyone else's jobs at once, and a delay or a backoff stamped by a skewed process "
    "starts 90 s early or late")


def engines_sqlite_failing(reason: str) -> pytest.MarkDecorator:
    """Every engine, the SQLite one expected to fail (strict: a pass there would be news)."""
    params = [pytest.param(engine, marks=pytest.mark.xfail(strict=True, reason=reason)) if engine == "sqlite"
              else engine for engine in ENGINES]
    return pytest.mark.parametrize("engine", params)


# The app of the backoff scenario: its one task fails its first attempt and asks for a retry after
# DELAY seconds, a delay the worker computes (RetryPolicy) and sends to the store.
clock_app = Conveyor(lease_seconds=1.0, heartbeat_interval=0.2)
CLOCK_APP = "tests.faults.test_clock:clock_app"


@clock_app.task(name="backoff", max_retries=1, retry_delay=DELAY, retry_jitter=False)
def backoff(seconds: float) -> int:
    job = current_job()
    run = fault_app.ledger().start(job.id, job.attempt)
    time.sleep(seconds)
    fault_app.ledger().end(run, ok=job.attempt > 1)
    if job.attempt == 1:
        raise ConnectionError("the first attempt fails on purpose")
    return job.attempt


SITECUSTOMIZE = '''\
"""Loaded by processes under libfaketime (tests/faults/test_clock.py): libfaketime 0.9.10 turns the
deadline of clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which time.sleep uses, into garbage
(EINVAL) when the monotonic clock is not faked. An Event's wait sleeps as long without that call."""
import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = _sleep
'''


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("faketime-shim")
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory


def skewed(skew: float, shim: Path) -> dict[str, str]:
    """The environment of a process whose wall clock is `skew` seconds off (and nothing else is)."""
    assert Path(LIBFAKETIME).exists(), "libfaketime is missing: apt-get install faketime (as root)"
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"{skew:+g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": str(shim)}


@pytest.fixture
def scenario(engine_url: str, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(engine_url, tmp_path)
    clock_app.close()
    clock_app.url = engine_url
    yield scenario
    clock_app.close()
    scenario.close()


class Worker:
    """One worker process, its clock shifted by `skew` seconds; its stderr goes to a file."""

    def __init__(self, scenario: Scenario, directory: Path, *options: str, skew: float = 0.0,
                 shim: Path | None = None, app: str = APP) -> None:
        self.skew = skew
        env = {**os.environ, **scenario.env, **(skewed(skew, shim) if skew and shim else {})}
        self.log = directory / f"worker-{time.monotonic_ns()}.err"
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor.cli", "worker", app, "--log-level", "WARNING", *options],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def stderr(self) -> str:
        return self.log.read_text()


@contextmanager
def workers(*started: Worker) -> Iterator[tuple[Worker, ...]]:
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def normalised(runs: list[Run], skews: dict[int, float]) -> list[Run]:
    """The ledger's runs on the machine's clock: each skewed process's times moved back by its skew."""
    def fix(at: float | None, skew: float) -> float | None:
        return None if at is None else at - skew
    return [dataclasses.replace(run, started=run.started - skews.get(run.pid, 0.0),
                                ended=fix(run.ended, skews.get(run.pid, 0.0))) for run in runs]


def wrote_skewed(runs: list[Run], pid: int, skew: float, since: float) -> bool:
    """Whether every run of process `pid` was stamped `skew` seconds off the machine's clock."""
    mine = [run for run in runs if run.pid == pid]
    return bool(mine) and all(since + skew <= run.started <= time.time() + skew for run in mine)


# -- the tool ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", SKEWS)
def test_faketime_shifts_the_wall_clock_only(skew: float, shim: Path) -> None:
    """What the other tests rely on: under libfaketime as configured here, time.time() is `skew` off,
    the monotonic clock is the machine's (one clock for every process), and time.sleep sleeps."""
    probe = ("import json, time; wall, mono = time.time(), time.monotonic(); time.sleep(0.2); "
             "print(json.dumps([wall, mono, time.monotonic() - mono]))")
    wall_before, mono_before = time.time(), time.monotonic()
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **skewed(skew, shim)}, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    wall_after, mono_after = time.time(), time.monotonic()
    wall, mono, slept = json.loads(out)
    assert wall_before + skew <= wall <= wall_after + skew, f"time.time() is off by {wall - wall_after:+.1f}s"
    assert mono_before <= mono <= mono_after, "time.monotonic() is the machine's"
    assert 0.2 <= slept < 1.0


# -- leases -----------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
@engines_sqlite_failing(SQLITE_SKEW)
@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_worker_keeps_its_leases_and_rescues_no_live_worker(
        scenario: Scenario, skew: float, shim: Path, tmp_path: Path) -> None:
    """A worker 90 s off beside a normal one, jobs of 2.5 s on leases of 1 s renewed every 0.2 s: with
    leases on the engine's clock no job is rescued while its worker is alive, and each runs once."""
    since = time.time()
    ids = scenario.enqueue(8, 2.5)
    with workers(Worker(scenario, tmp_path, "-c", "2", *LEASE),
                 Worker(scenario, tmp_path, "-c", "2", *LEASE, skew=skew, shim=shim)) as (normal, off):
        scenario.wait_finished(timeout=120)
    raw = scenario.ledger.runs()
    runs = normalised(raw, {off.pid: skew})
    verdict = check(ids, scenario.states(), runs)
    records = [scenario.app.get_job(i).record for i in ids]
    lost = sum(1 for record in records for error in record.errors if error.type == "WorkerLost")
    refused = (normal.stderr() + off.stderr()).count("no longer holds its lease")
    print(f"\nskew {skew:+g}s: {verdict.summary()}; {lost} WorkerLost rescues, {refused} refused writes; runs by "
          f"the normal worker {sum(r.pid == normal.pid for r in runs)}, by the skewed one "
          f"{sum(r.pid == off.pid for r in runs)}")
    assert lost == 0, f"{lost} jobs rescued from a live worker"
    assert verdict.lost == [] and verdict.unexpected == []
    assert verdict.duplicated == {} and verdict.overlapping == [] and verdict.finished_twice == []
    assert all(record.attempts == 1 for record in records)
    assert refused == 0
    assert {run.pid for run in runs} == {normal.pid, off.pid}, "both workers ran jobs"
    assert wrote_skewed(raw, off.pid, skew, since), "the skewed worker's clock was off"


# -- delays and backoffs ----------------------------------------------------------------------------

PRODUCER = """
import json, os, sys, time
from tests.faults.fault_app import app, work
app.backend  # opened before the clock is read
before = time.time()
job = work.with_options(delay=float(sys.argv[1])).delay(0.0)
print(json.dumps({"id": job.id, "before": before, "after": time.time()}))
app.close()
"""


def started_after(scenario: Scenario, job_id: str, since: tuple[float, float], skews: dict[int, float],
                  attempt: int = 1) -> tuple[float, float]:
    """Wait for the attempt's run; how long after `since` (a window on the machine's clock) it
    started, at least and at most."""
    def runs() -> list[Run]:
        return [r for r in normalised(scenario.ledger.runs(), skews) if r.job_id == job_id and r.attempt == attempt]
    started = wait_for(runs, timeout=DELAY + 15, interval=0.05)[0].started
    return started - since[1], started - since[0]


def engine_wait(scenario: Scenario, job_id: str) -> float:
    """The wait from enqueue to start as the store recorded it (on the engine's clock)."""
    def started() -> JobRecord | None:
        record = scenario.app.get_job(job_id).record
        return record if record is not None and record.started_at is not None else None
    record = wait_for(started, timeout=10)
    assert record is not None and record.started_at is not None
    return record.started_at - record.enqueued_at


@pytest.mark.timeout(120)
@engines_sqlite_failing(SQLITE_SKEW)
@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_producers_delay_runs_on_the_engine_clock(
        scenario: Scenario, skew: float, shim: Path, tmp_path: Path) -> None:
    """A producer 90 s off enqueues with delay=3; a normal worker starts the job 3 s later (not 93 s
    later, not at once)."""
    with workers(Worker(scenario, tmp_path, "-c", "2")):
        out = subprocess.run([sys.executable, "-c", PRODUCER, str(DELAY)], cwd=ROOT, check=True, capture_output=True,
                             text=True, timeout=60, env={**os.environ, **scenario.env, **skewed(skew, shim)}).stdout
        produced = json.loads(out)
        scenario.enqueued.append(produced["id"])
        enqueued = (produced["before"] - skew, produced["after"] - skew)  # on the machine's clock
        assert enqueued[0] <= time.time() <= enqueued[1] + 60, "the producer's clock was off"
        low, high = started_after(scenario, produced["id"], enqueued, {})
        print(f"\nproducer {skew:+g}s, delay {DELAY:g}s: started {low:.2f}-{high:.2f}s after the enqueue")
        assert high >= DELAY and low <= DELAY + LATE
        assert DELAY <= engine_wait(scenario, produced["id"]) <= DELAY + LATE


@pytest.mark.timeout(120)
@engines_sqlite_failing(SQLITE_SKEW)
@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_worker_waits_out_a_delay_on_the_engine_clock(
        scenario: Scenario, skew: float, shim: Path, tmp_path: Path) -> None:
    """A normal producer enqueues with delay=3; the only worker is 90 s off and starts it 3 s later."""
    since = time.time()
    with workers(Worker(scenario, tmp_path, "-c", "2", skew=skew, shim=shim)) as (off,):
        warm = scenario.enqueue(1, 0.0)[0]  # the worker is up once it has run this one
        wait_for(lambda: scenario.app.get_job(warm).status == JobState.COMPLETED, timeout=60)
        assert wrote_skewed(scenario.ledger.runs(), off.pid, skew, since), "the worker's clock was off"
        before = time.time()
        job = fault_app.work.with_options(delay=DELAY).delay(0.0)
        after = time.time()
        scenario.enqueued.append(job.id)
        low, high = started_after(scenario, job.id, (before, after), {off.pid: skew})
        print(f"\nworker {skew:+g}s, delay {DELAY:g}s: started {low:.2f}-{high:.2f}s after the enqueue")
        assert high >= DELAY and low <= DELAY + LATE
        assert DELAY <= engine_wait(scenario, job.id) <= DELAY + LATE


@pytest.mark.timeout(120)
@engines_sqlite_failing(SQLITE_SKEW)
@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_workers_retry_backoff_runs_on_the_engine_clock(
        scenario: Scenario, skew: float, shim: Path, tmp_path: Path) -> None:
    """A worker 90 s off fails two jobs' first attempts and asks for a retry in 3 s (the task's
    RetryPolicy); it is stopped meanwhile, and a normal worker runs the retries 3 s after the failures."""
    since = time.time()
    ids = [backoff.delay(1.0).id for _ in range(2)]
    scenario.enqueued += ids
    off = Worker(scenario, tmp_path, "-c", "2", "--shutdown-timeout", "20", *LEASE, skew=skew, shim=shim,
                 app=CLOCK_APP)
    with workers(off):
        wait_for(lambda: len(scenario.ledger.runs()) == 2, timeout=60)
        off.process.send_signal(signal.SIGTERM)  # it records both failures, then exits
        with workers(Worker(scenario, tmp_path, "-c", "2", *LEASE, app=CLOCK_APP)) as (normal,):
            assert off.process.wait(timeout=30) == 0
            scenario.wait_finished(timeout=DELAY + 15)
    runs = normalised(scenario.ledger.runs(), {off.pid: skew})
    assert wrote_skewed(scenario.ledger.runs(), off.pid, skew, since), "the worker's clock was off"
    gaps = []
    for job_id in ids:
        first, second = sorted((r for r in runs if r.job_id == job_id), key=lambda r: r.attempt)
        assert first.pid == off.pid and second.pid == normal.pid and first.ended is not None
        gaps.append(second.started - first.ended)
    print(f"\nworker {skew:+g}s, backoff {DELAY:g}s: retries started {', '.join(f'{g:.2f}' for g in gaps)}s "
          "after the failures")
    assert all(DELAY <= gap <= DELAY + LATE for gap in gaps)
    assert [scenario.app.get_job(i).record.attempts for i in ids] == [2, 2]
