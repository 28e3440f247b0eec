"""Fault scenarios on the workers, on every engine: a SIGKILL storm, a graceful drain, a frozen
worker, and kills at chosen points of the worker's loop. Each checks the ledger (ledger.py).

Sizes follow the issue (10,000 jobs of 30 ms, a kill every 2 s for 30 s); CONVEYOR_FAULTS_LONG=1
storms for 5 minutes over 80,000 jobs, and runs the kill-point scenario 20 times per point instead of 5."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import JobState
from tests.conftest import wait_for
from tests.faults.harness import Scenario

LONG = os.environ.get("CONVEYOR_FAULTS_LONG") == "1"
CONCURRENCY = 4  # threads per worker: also the most jobs a worker holds (no prefetch)
STORM_SECONDS, STORM_JOBS = (300, 80_000) if LONG else (30, 10_000)


@pytest.fixture
def scenario(engine_url: str, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(engine_url, tmp_path)
    yield scenario
    scenario.close()


def storm(scenario: Scenario, *, skip_heartbeats: bool) -> tuple[int, dict[int, float]]:
    """10,000 jobs of 30 ms, two workers; one of them SIGKILLed every 2 s for 30 s and restarted."""
    scenario.enqueue(STORM_JOBS, 0.03)
    env = {"CONVEYOR_FAULT_SKIP_HEARTBEATS": "1"} if skip_heartbeats else {}
    with scenario.workers(2, "-c", str(CONCURRENCY), "--lease", "1", "--heartbeat", "0.2", env=env) as workers:
        end = time.monotonic() + STORM_SECONDS
        victim = 0
        # The storm's clock is the point of the scenario: a kill every 2 s, whatever the jobs do.
        while time.monotonic() < end and not scenario.finished():
            time.sleep(2)
            workers.kill(victim)
            workers.start(victim)
            victim = 1 - victim
        scenario.wait_finished(timeout=120)
    return len(workers.kills), workers.kills


@pytest.mark.timeout(STORM_SECONDS * 3 + 240)
def test_sigkill_storm_loses_nothing_and_duplicates_only_what_was_in_flight(
        scenario: Scenario, record_property: pytest.RecordProperty) -> None:
    kills, when = storm(scenario, skip_heartbeats=False)
    verdict = scenario.verdict(when)
    record_property("verdict", verdict.summary())
    print(f"\n{kills} kills: {verdict.summary()}")
    assert kills >= 5
    assert verdict.lost == [] and verdict.unexpected == []
    assert verdict.completed == STORM_JOBS
    assert verdict.overlapping == []
    assert verdict.extra_runs <= kills * CONCURRENCY, "more runs again than the killed workers held"


@pytest.mark.timeout(STORM_SECONDS * 3 + 240)
def test_negative_control_without_lease_renewal_the_checker_sees_the_damage(scenario: Scenario) -> None:
    """Leases not renewed (a test-only switch): they lapse under running jobs, other workers take
    those jobs, and the checker must report overlapping runs. Proves the storm's checks can fail."""
    scenario.enqueue(6, 3.0)  # each job outlives its 1 s lease, and idle slots wait to take it again
    env = {"CONVEYOR_FAULT_SKIP_HEARTBEATS": "1"}
    with scenario.workers(2, "-c", "8", "--lease", "1", "--heartbeat", "0.2", env=env):
        wait_for(lambda: len(scenario.verdict().overlapping) >= 3, timeout=60, interval=0.5)
    verdict = scenario.verdict()
    print(f"\nnegative control: {verdict.summary()}")
    assert verdict.overlapping and verdict.duplicated


@pytest.mark.timeout(120)
def test_graceful_drain_finishes_running_jobs_or_hands_them_back(scenario: Scenario) -> None:
    short = scenario.enqueue(4, 1.0)
    with scenario.workers(1, "-c", "4", "--shutdown-timeout", "10") as workers:
        wait_for(lambda: len(scenario.ledger.runs()) == 4, timeout=30)
        workers.processes[0].send_signal(signal.SIGTERM)
        assert workers.processes[0].wait(timeout=30) == 0
    assert all(run.ok for run in scenario.ledger.runs()), "each finished within the shutdown timeout"
    long = scenario.enqueue(4, 3.0)
    with scenario.workers(1, "-c", "4", "--shutdown-timeout", "0.3") as workers:
        wait_for(lambda: len(scenario.ledger.runs()) == 8, timeout=30)
        first = workers.processes[0]
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        stopped_at = time.time()
        assert {scenario.app.get_job(i).status for i in long} == {JobState.QUEUED}, "handed back, not lost"
        workers.start()
        scenario.wait_finished(timeout=60)
    verdict = scenario.verdict({first.pid: stopped_at})
    assert verdict.lost == [] and verdict.overlapping == [] and verdict.finished_twice == []
    assert set(verdict.duplicated) == set(long) and set(short).isdisjoint(verdict.duplicated)
    assert all(scenario.app.get_job(i).record.attempts == 1 for i in long), "a hand-back costs no attempt"


@pytest.mark.timeout(120)
def test_frozen_worker_is_rescued_and_its_late_writes_refused(scenario: Scenario) -> None:
    held = scenario.enqueue(2, 2.0)
    with scenario.workers(1, "-c", "2", "--lease", "1", "--heartbeat", "0.2") as workers:
        wait_for(lambda: len(scenario.ledger.runs()) == 2, timeout=30)
        frozen = workers.processes[0]
        frozen.send_signal(signal.SIGSTOP)
        stopped = time.time()
        rescuer = workers.start()
        wait_for(lambda: all(scenario.app.get_job(i).status == JobState.COMPLETED for i in held), timeout=30)
        rescued = [run for run in scenario.ledger.runs() if run.pid == rescuer.pid]
        assert len(rescued) == 2 and all(run.started - stopped < 1 + 0.25 + 1.5 for run in rescued), \
            "rescued within the lease, the rescue interval and a start-up"
        frozen.send_signal(signal.SIGCONT)
        wait_for(lambda: all(run.ended for run in scenario.ledger.runs()), timeout=30)
    refused = workers.stderr().count("not recorded: this worker no longer holds its lease")
    verdict = scenario.verdict()
    assert refused == 2, "each write of the frozen worker after it woke was refused"
    assert {earlier.job_id for earlier, _ in verdict.overlapping} == set(held), \
        "runs overlap only where the refused write shows it"
    assert all(scenario.app.get_job(i).result(timeout=1) == 2 for i in held), "the rescuer's outcome stands"


KILL_RUNS = 20 if LONG else 5


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("point", "fail_first"), [("after_claim", False), ("before_finish", False),
                                                   ("before_finish", True), ("before_heartbeat", False)],
                         ids=["after-claim", "before-finish", "before-finish-of-a-retry", "during-heartbeat"])
def test_a_worker_killed_at_any_point_loses_nothing(scenario: Scenario, point: str, fail_first: bool) -> None:
    """os._exit at a chosen point of the worker's loop (a test-only switch), KILL_RUNS times; a
    healthy worker then finishes the jobs. `before-finish-of-a-retry` kills between an attempt
    failing and its retry being recorded: the retry is scheduled by that one store write."""
    seconds = 0.6 if point == "before_heartbeat" else 0.05
    deaths: dict[int, float] = {}
    for _ in range(KILL_RUNS):
        scenario.enqueue(3, seconds, fail_first=fail_first)
        env = {"CONVEYOR_FAULT_KILL_AT": point}
        with scenario.workers(1, "-c", "3", "--lease", "0.5", "--heartbeat", "0.1", env=env) as killers:
            assert killers.wait_death(0) == 137, "the worker died at the point"
        deaths.update(killers.kills)
        with scenario.workers(1, "-c", "3", "--lease", "0.5", "--heartbeat", "0.1"):
            scenario.wait_finished(timeout=60)
    verdict = scenario.verdict(deaths)
    states = scenario.states()
    assert verdict.lost == [] and verdict.unexpected == []
    assert set(states.values()) == {JobState.COMPLETED}
    per_job = {job_id: n for job_id, n in verdict.duplicated.items()}
    allowed = 3 if fail_first else 2  # a failed first attempt is a run of its own
    assert max(per_job.values(), default=1) <= allowed
    assert verdict.overlapping == []
