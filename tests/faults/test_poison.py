"""Poison jobs (issue 7, scenario 5), on every engine: jobs that kill their process, segfault, spin
forever, allocate without end, carry a payload that is garbage in the store, or name a task that
does not exist, mixed among 1,000 healthy jobs on one process-pool worker.

Each poison job ends failed with an error that says why, after exactly its attempt budget (a job
that crashes its process spends one attempt per crash: `POISON_ATTEMPTS`); the worker lives on and
every healthy job completes once. The garbage payloads are written into the store behind the
engine's back, so their bytes are the engine's own: this is why the test knows each engine's layout."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import JobState
from tests.conftest import wait_for
from tests.faults import fault_app
from tests.faults.harness import Scenario
from tests.faults.ledger import check

HEALTHY = 1000
PER_KIND = 2
GARBAGE = {"not JSON": b'{"args": [1, 2', "JSON of the wrong shape": b'[["x"], 7]',
           "a foreign envelope": b'{"body": "gASVAAAAAAAAAACMBHRleHSULg==", '
                                 b'"content-type": "application/x-python-serialize"}',
           "not UTF-8": b"\xff\xfe\x00garbage"}


@pytest.fixture
def scenario(engine_url: str, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(engine_url, tmp_path)
    yield scenario
    scenario.close()


@pytest.mark.timeout(300)
def test_poison_jobs_fail_alone_with_a_reason_and_healthy_jobs_all_complete(scenario: Scenario) -> None:
    app = scenario.app
    app.pause("default")  # everything is in the store, garbage included, before the worker claims any of it
    poison: dict[str, list[str]] = {}
    makers: dict[str, Callable[[], str]] = {
        "die": lambda: fault_app.die.delay().id,
        "segfault": lambda: fault_app.segfault.delay().id,
        "spin": lambda: fault_app.spin.delay().id,
        "hog": lambda: fault_app.hog.delay().id,
        "unknown task": lambda: app.enqueue("no.such.task", [1]).id,
    }
    makers |= {f"garbage: {name}": (lambda: fault_app.work.delay(0.0).id) for name in GARBAGE}
    healthy: list[str] = []
    for _ in range(PER_KIND):  # poison spread through the healthy jobs, not bunched at one end
        for kind, make in makers.items():
            healthy += scenario.enqueue(HEALTHY // (2 * PER_KIND * len(makers)), 0.0)
            poison.setdefault(kind, []).append(make())
    healthy += scenario.enqueue(HEALTHY - len(healthy), 0.0)
    scenario.enqueued += [job_id for ids in poison.values() for job_id in ids]
    for name, payload in GARBAGE.items():
        for job_id in poison[f"garbage: {name}"]:
            scenario.write_payload(job_id, payload)

    with scenario.workers(1, "--pool", "process", "-c", "2", "--max-memory", "200") as workers:
        app.resume("default")
        scenario.wait_finished(timeout=180)
        assert workers.processes[0].poll() is None, "the worker died"

    verdict = check(healthy, scenario.states(), [r for r in scenario.ledger.runs() if r.job_id in set(healthy)])
    print(f"\n{verdict.summary()}")
    assert verdict.completed == HEALTHY and verdict.lost == [] and verdict.duplicated == {}

    runs = Counter(run.job_id for run in scenario.ledger.runs())
    expected_error = {
        "die": ("WorkerCrashed", "exit code 70"),
        "segfault": ("WorkerCrashed", "killed by signal SIGSEGV"),
        "spin": ("JobTimeout", "0.5"),
        "hog": ("MemoryError", "--max-memory limit of 200 MiB"),
        "unknown task": ("UnknownTask", "no.such.task"),
    } | {f"garbage: {name}": ("SerializationError", "stored arguments") for name in GARBAGE}
    for kind, ids in poison.items():
        error_type, words = expected_error[kind]
        budget = fault_app.POISON_ATTEMPTS if kind in ("die", "segfault", "spin", "hog") else 1
        for job_id in ids:
            job = app.get_job(job_id)
            assert job.status == JobState.FAILED, (kind, job.errors)
            assert job.attempts == budget, (kind, job.errors)
            assert runs[job_id] == (budget if budget > 1 else 0), kind  # garbage and unknown never start
            assert [e.type for e in job.errors] == [error_type] * budget, (kind, job.errors)
            assert words in job.errors[-1].message, (kind, job.errors[-1].message)


@pytest.mark.timeout(120)
def test_a_job_that_kills_its_thread_pool_worker_fails_after_its_attempt_budget_of_deaths(
        scenario: Scenario) -> None:
    """In the thread pool the job's crash is the worker's: each death is noticed by the lease
    expiring, and the rescue counts it as the attempt it interrupted."""
    poison = fault_app.die.delay().id
    scenario.enqueued.append(poison)
    healthy = scenario.enqueue(20, 0.0)
    deaths = 0
    with scenario.workers(1, "-c", "1", "--lease", "1", "--heartbeat", "0.2") as workers:
        def restarted_or_finished() -> bool:
            nonlocal deaths
            if workers.processes[0].poll() is not None:
                deaths += 1
                workers.start(0)
            return scenario.finished()
        assert wait_for(restarted_or_finished, timeout=90, interval=0.05)
    job = scenario.app.get_job(poison)
    assert deaths == fault_app.POISON_ATTEMPTS
    assert job.status == JobState.FAILED and job.attempts == fault_app.POISON_ATTEMPTS
    assert [e.type for e in job.errors] == ["WorkerLost"] * fault_app.POISON_ATTEMPTS
    assert "stopped renewing its lease" in job.errors[-1].message
    assert all(state == JobState.COMPLETED for job_id, state in scenario.states().items() if job_id in healthy)
