"""After sub-millisecond jobs the worker gathers the rest of a burst of finishes into one round trip
and claims more than it can start (the automatic prefetch: the engine's prefetch_per_slot per slot); after a longer
job it does neither (Worker._take_finished, _gather, _capacity). Deterministic: a finish already
waiting in the queue is taken only if the worker waits for the burst."""

from __future__ import annotations

import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.backends.base import Finish
from conveyor.job import JobRecord, JobState
from conveyor.worker.execution import Attempt
from conveyor.worker.worker import Worker


def attempt(job_id: str, running_for: float | None) -> Attempt:
    """An attempt started `running_for` seconds ago (None: prefetched, not started yet). Its end is
    set now, `running_for` after its start, so a pause of the test process cannot lengthen it."""
    record = JobRecord(id=job_id, task="t", queue="default", priority=0, state=JobState.RUNNING, payload="{}",
                       run_at=0.0, enqueued_at=0.0, attempts=1, max_attempts=1, lease_token="x")
    held = Attempt(record)
    if running_for is not None:
        held.ended = time.monotonic()
        held.started = held.ended - running_for
    return held


def finished(held: Attempt) -> tuple[Attempt, Finish]:
    held.done = True
    return held, Finish(held.record.id, "x", JobState.COMPLETED, result="null")


def worker_holding(tmp_path: Path, *attempts: Attempt, prefetch: int | None = None) -> Worker:
    worker = Worker(Conveyor(f"sqlite:///{tmp_path}/jobs.db"), concurrency=8, prefetch=prefetch)
    worker.attempts = {a.record.id: a for a in attempts}
    return worker


def test_after_a_short_job_the_rest_of_the_burst_joins_the_batch(tmp_path: Path) -> None:
    first, second, still_running = attempt("a", 0.0001), attempt("b", 0.0001), attempt("c", 0.0001)
    worker = worker_holding(tmp_path, first, second, still_running)
    batch = [finished(first)]
    worker._done.put(finished(second))
    worker._gather(batch)
    assert [a.record.id for a, _ in batch] == ["a", "b"]


def test_prefetched_jobs_not_started_are_not_part_of_the_burst(tmp_path: Path) -> None:
    alone, unstarted = attempt("a", 0.0001), attempt("b", None)
    worker = worker_holding(tmp_path, alone, unstarted)
    batch = [finished(alone)]
    worker._done.put(finished(attempt("c", 0.0001)))  # taken only if the worker waited
    worker._gather(batch)
    assert [a.record.id for a, _ in batch] == ["a"] and worker._done.qsize() == 1


def test_after_short_jobs_the_worker_claims_the_engines_prefetch_per_slot_more(tmp_path: Path) -> None:
    short, other = attempt("a", 0.0001), attempt("b", 0.0001)
    worker = worker_holding(tmp_path, short, other)
    worker._done.put(finished(short))
    worker._done.put(finished(other))
    assert len(worker._take_finished()) == 2
    assert worker.app.backend.capabilities.prefetch_per_slot == 1  # SQLite: no round trip to hide
    assert worker._capacity(freed=2) == 8 + 8


def test_after_a_longer_job_the_outcome_goes_at_once_and_nothing_is_prefetched(tmp_path: Path) -> None:
    slow, other = attempt("a", 0.030), attempt("b", 0.0001)
    worker = worker_holding(tmp_path, slow, other)
    worker._short_jobs = True
    worker._done.put(finished(slow))
    assert [a.record.id for a, _ in worker._take_finished()] == ["a"]
    worker._done.put(finished(other))
    assert worker._done.qsize() == 1, "a 30 ms job's slot waited for another finish"
    assert worker._capacity(freed=1) == 8 - 2 + 1


def test_an_explicit_prefetch_is_fixed(tmp_path: Path) -> None:
    short = attempt("a", 0.0001)
    worker = worker_holding(tmp_path, short, prefetch=2)
    worker._done.put(finished(short))
    assert len(worker._take_finished()) == 1
    assert worker._capacity(freed=1) == 8 + 2
