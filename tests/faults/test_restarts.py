"""Engine restarts under load (issue 7, scenario 3), on the server engines: two producer processes
enqueue without pause and two workers drain while the server is killed (SIGKILL for redis-server,
PostgreSQL's immediate shutdown, which is its crash) and started again a second later.

Pass: every enqueue that returned completes (with appendfsync always and everysec alike: a killed
redis-server has already written every acknowledged command to the kernel, and everysec's one
second of unsynced writes is lost only when the machine itself goes down, which a test cannot do),
no job runs twice, producers and workers carry on without a restart of their own within a stated
time (the figures are the slowest over the run's kills). The negative control, Redis without
persistence, must show the checker reporting the loss.
Why not SQLite: it has no server to restart (a killed SQLite process is scenario 1's storm)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor import JobState
from tests.conftest import wait_for
from tests.faults.harness import ROOT, Scenario
from tests.servers import PostgresServer, RedisServer

LONG = os.environ.get("CONVEYOR_FAULTS_LONG") == "1"
CYCLES = 5 if LONG else 1  # kills and restarts in one run
RECOVERY_BOUND = 10.0  # seconds after the server is back by which producers and workers carry on
DOWN_FOR = 1.0  # seconds the server stays down: shorter than the workers' 5 s lease


@dataclass
class Server:
    url: str
    crash: Callable[[], None]
    restart: Callable[[], None]


@contextmanager
def server(kind: str, directory: Path) -> Iterator[Server]:
    if kind == "postgres":
        pg = PostgresServer().start()
        try:
            yield Server(f"{pg.url}?schema=restarts", lambda: pg.stop(kill=True), pg.start)
        finally:
            pg.remove()
        return
    policy = kind.removeprefix("redis-")
    redis = RedisServer(directory, appendonly=policy != "no-persistence",
                        appendfsync=policy if policy != "no-persistence" else "always").start()
    try:
        yield Server(redis.url, lambda: redis.stop(kill=True), redis.start)
    finally:
        redis.stop()


def returned(outputs: list[Path]) -> dict[str, float]:
    """Job id -> when its enqueue returned, over every producer's output so far."""
    ids: dict[str, float] = {}
    for out in outputs:
        if out.exists():
            for line in out.read_text().splitlines():
                job_id, at = line.split()
                if job_id != "!":
                    ids[job_id] = float(at)
    return ids


def idle(scenario: Scenario) -> bool:
    counts = scenario.app.counts()
    return not any(n for queue in counts.values() for state, n in queue.items()
                   if state in (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING))


def kill_and_restart(store: Server, scenario: Scenario, outputs: list[Path]) -> tuple[float, float, float]:
    """One kill and restart under load: when the server was killed, and how long after it was back
    the producers' first enqueue returned and the workers' first job started."""
    store.crash()
    killed_at = time.time()
    time.sleep(DOWN_FOR)  # the outage's length is the scenario's parameter, not a wait for an event
    store.restart()
    back_at = time.time()
    assert wait_for(lambda: max(returned(outputs).values()) > back_at, timeout=RECOVERY_BOUND, interval=0.02)
    producers_back = min(t for t in returned(outputs).values() if t > back_at) - back_at
    assert wait_for(lambda: any(run.started > back_at for run in scenario.ledger.runs()),
                    timeout=RECOVERY_BOUND, interval=0.02)
    workers_back = min(run.started for run in scenario.ledger.runs() if run.started > back_at) - back_at
    assert wait_for(lambda: len([t for t in returned(outputs).values() if t > back_at]) >= 500, timeout=60)
    return killed_at, producers_back, workers_back


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["redis-always", "redis-everysec", "postgres", "redis-no-persistence"])
def test_server_killed_under_load_loses_no_enqueue_that_returned(kind: str, tmp_path: Path,
                                                                  record_property: pytest.RecordProperty) -> None:
    with server(kind, tmp_path / "server") as store:
        scenario = Scenario(store.url, tmp_path)
        stop = tmp_path / "stop"
        outputs = [tmp_path / f"producer-{n}.txt" for n in range(2)]
        producers_back = workers_back = killed_at = 0.0
        with scenario.workers(2, "-c", "4", "--lease", "5", "--heartbeat", "0.5") as workers:
            producers = [subprocess.Popen([sys.executable, "-m", "tests.faults.steady_producer", str(out), str(stop)],
                                          cwd=ROOT, env={**os.environ, **scenario.env}, stderr=subprocess.PIPE)
                         for out in outputs]
            try:
                assert wait_for(lambda: len(returned(outputs)) >= 500 and scenario.ledger.runs(), timeout=60)
                for _ in range(CYCLES):
                    killed_at, producers_took, workers_took = kill_and_restart(store, scenario, outputs)
                    producers_back, workers_back = max(producers_back, producers_took), max(workers_back, workers_took)
            finally:
                stop.touch()
                for producer in producers:
                    _, stderr = producer.communicate(timeout=60)
                    assert producer.returncode == 0, stderr.decode()
            ids = returned(outputs)
            scenario.enqueued = list(ids)
            assert wait_for(lambda: idle(scenario), timeout=120, interval=0.2), scenario.app.counts()
            assert all(process.poll() is None for process in workers.processes), "a worker died"
        verdict = scenario.verdict()
        before_kill = [job_id for job_id in verdict.lost if ids[job_id] <= killed_at]
        summary = (f"{kind}: {CYCLES} kills, {len(ids)} enqueued, producers back {producers_back:.2f}s and "
                   f"workers back {workers_back:.2f}s after the restart; {verdict.summary()}")
        record_property("verdict", summary)
        print(f"\n{summary}")
        if kind == "redis-no-persistence":  # the negative control: the checker must see the loss
            assert len(before_kill) > 0 and verdict.lost == before_kill
            return
        assert verdict.lost == [] and verdict.unexpected == []
        assert verdict.duplicated == {} and verdict.overlapping == []
        assert producers_back < RECOVERY_BOUND and workers_back < RECOVERY_BOUND
        scenario.close()
