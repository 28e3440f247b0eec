"""The worker gathers a burst of sub-millisecond finishes into one round trip, and never makes the
slot of a longer job wait (Worker._gather). Deterministic: a finish already waiting in the queue is
taken only if the worker waits for the burst."""

from __future__ import annotations

import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.backends.base import Finish
from conveyor.job import JobRecord, JobState
from conveyor.worker.execution import Attempt
from conveyor.worker.worker import Worker


def attempt(job_id: str, ran_for: float | None) -> Attempt:
    record = JobRecord(id=job_id, task="t", queue="default", priority=0, state=JobState.RUNNING, payload="{}",
                       run_at=0.0, enqueued_at=0.0, attempts=1, max_attempts=1, lease_token="x")
    held = Attempt(record)
    held.started = None if ran_for is None else time.monotonic() - ran_for
    return held


def finished(held: Attempt) -> tuple[Attempt, Finish]:
    return held, Finish(held.record.id, "x", JobState.COMPLETED, result="null")


def worker_holding(tmp_path: Path, *attempts: Attempt) -> Worker:
    worker = Worker(Conveyor(f"sqlite:///{tmp_path}/jobs.db"), concurrency=8)
    worker.attempts = {a.record.id: a for a in attempts}
    return worker


def test_after_a_short_job_the_rest_of_the_burst_joins_the_batch(tmp_path: Path) -> None:
    first, second, still_running = attempt("a", 0.0001), attempt("b", 0.0001), attempt("c", 0.0001)
    worker = worker_holding(tmp_path, first, second, still_running)
    worker._done.put(finished(second))
    batch = [finished(first)]
    worker._gather(batch)
    assert [a.record.id for a, _ in batch] == ["a", "b"]


def test_after_a_longer_job_the_outcome_goes_at_once(tmp_path: Path) -> None:
    slow, other = attempt("a", 0.030), attempt("b", 0.0001)
    worker = worker_holding(tmp_path, slow, other)
    worker._done.put(finished(other))
    batch = [finished(slow)]
    worker._gather(batch)
    assert [a.record.id for a, _ in batch] == ["a"], "a 30 ms job's slot waited for another finish"
    assert worker._done.qsize() == 1


def test_with_nothing_else_running_there_is_nothing_to_wait_for(tmp_path: Path) -> None:
    alone, stray = attempt("a", 0.0001), attempt("b", 0.0001)  # `stray` is not held: nothing else runs
    worker = worker_holding(tmp_path, alone)
    worker._done.put(finished(stray))
    batch = [finished(alone)]
    worker._gather(batch)
    assert [a.record.id for a, _ in batch] == ["a"] and worker._done.qsize() == 1
