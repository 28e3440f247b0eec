"""After starting jobs, a worker about to wait steps aside until a job thread has taken one
(LocalPool.step_aside), so the job does not wait for the loop to let go of the GIL; it never
waits for an attempt that has no thread to go to."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.job import JobRecord, JobState
from conveyor.worker.execution import Attempt
from conveyor.worker.pools import LocalPool

RELEASE = threading.Event()


def attempt(job_id: str) -> Attempt:
    return Attempt(JobRecord(id=job_id, task="hold", queue="default", priority=0, state=JobState.RUNNING,
                             payload='{"args":[],"kwargs":{}}', run_at=0.0, enqueued_at=0.0, attempts=1,
                             max_attempts=1, lease_token="x"))


def test_step_aside_returns_once_a_thread_has_taken_an_attempt_and_never_waits_for_one_without_a_slot(
        tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/jobs.db")
    app.task(name="hold")(lambda: RELEASE.wait(10))
    done = threading.Semaphore(0)
    pool = LocalPool(app, 1, lambda _attempt, _finish: done.release())
    pool.start()
    try:
        first, second = attempt("a"), attempt("b")
        pool.submit(first)
        started = time.monotonic()
        pool.step_aside(10.0)
        assert first.started is not None
        pool.submit(second)  # the one slot is busy: it waits for the slot, not for a thread
        pool.step_aside(10.0)
        assert second.started is None
        assert time.monotonic() - started < 5.0
    finally:
        RELEASE.set()
        assert done.acquire(timeout=10) and done.acquire(timeout=10)
        pool.stop()
        app.close()
