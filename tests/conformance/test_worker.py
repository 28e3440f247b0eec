"""The worker's promises, on every engine: outcomes, retries, timeouts, cancellation, leases,
crashes and shutdown, with real threads, event loops and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conveyor import ConfigurationError, Conveyor, JobEvent, JobFailed, JobState
from conveyor.job import NewJob
from conveyor.worker import Worker
from tests.conformance import worker_app
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
APP_PATH = "tests.conformance.worker_app:app"


@pytest.fixture
def tapp(engine_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The worker_app's app pointed at this test's store (child processes find it in CONVEYOR_URL)."""
    monkeypatch.setenv("CONVEYOR_URL", engine_url)
    app = worker_app.app
    app.close()
    app.url = engine_url
    app.import_path = APP_PATH
    app.hooks = {name: [] for name in app.hooks}
    yield app
    app.close()


@contextmanager
def running_worker(app: Conveyor, **options: Any) -> Iterator[Worker]:
    worker = Worker(app, **options)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


def spawn_worker(url: str, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "conveyor.cli", "worker", APP_PATH, "--url", url, "--lease", "1",
               "--heartbeat", "0.2", "--log-level", "WARNING", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def state_of(app: Conveyor, job_id: str) -> JobState:
    return app.get_job(job_id).status


@pytest.mark.parametrize("pool", ["thread", "async"])
def test_sync_and_async_tasks_run_side_by_side(tapp: Conveyor, pool: str) -> None:
    jobs = [worker_app.add.delay(i, 1) for i in range(20)] + [worker_app.async_add.delay(i, 2) for i in range(20)]
    with running_worker(tapp, pool=pool, concurrency=4):
        results = [job.result(timeout=10) for job in jobs]
    assert results == [i + 1 for i in range(20)] + [i + 2 for i in range(20)]


def test_failing_job_retries_with_backoff_then_fails_keeping_every_error(tapp: Conveyor) -> None:
    job = worker_app.fail_always.delay("no luck")
    with running_worker(tapp), pytest.raises(JobFailed) as failure:
        job.result(timeout=10)
    assert failure.value.error_type == "ValueError" and "no luck" in failure.value.error_message
    assert "raise ValueError(message)" in failure.value.remote_traceback
    record = job.refresh().record
    assert record.state == JobState.FAILED and record.attempts == 3
    errors = job.errors
    assert [e.attempt for e in errors] == [1, 2, 3]
    assert errors[1].at - errors[0].at >= 0.05  # the fixed 50 ms backoff was waited


def test_flaky_job_succeeds_on_a_later_attempt(tapp: Conveyor) -> None:
    job = worker_app.flaky.delay(2)
    with running_worker(tapp):
        assert job.result(timeout=10) == 3
    assert [e.type for e in job.refresh().errors] == ["ConnectionError", "ConnectionError"]


def test_retry_on_limits_which_errors_retry(tapp: Conveyor) -> None:
    job = worker_app.not_retryable.delay()
    with running_worker(tapp), pytest.raises(JobFailed, match="not worth retrying"):
        job.result(timeout=10)
    assert job.refresh().attempts == 1


def test_raise_retry_reschedules_after_its_delay(tapp: Conveyor) -> None:
    job = worker_app.retry_later.delay(0.3)
    with running_worker(tapp):
        assert job.result(timeout=10) == 2
    first, = job.refresh().errors
    assert job.record.started_at is not None and job.record.started_at - first.at >= 0.25


@pytest.mark.parametrize("enqueued", ["before the worker starts", "while it waits"])
def test_an_idle_worker_runs_a_delayed_job_when_it_falls_due_not_at_its_idle_timeout(
        tapp: Conveyor, enqueued: str) -> None:
    # The worker learns the next due time from its last claim or from a wake-up, and waits only so long.
    delayed = worker_app.add.with_options(delay=0.5)
    job = delayed.delay(1, 1) if enqueued == "before the worker starts" else None
    with running_worker(tapp, idle_timeout=5.0):
        job = job or delayed.delay(1, 1)
        assert job.result(timeout=10) == 2
    record = job.refresh().record
    assert record.started_at is not None and 0 <= record.started_at - record.run_at < 0.5


def test_bound_task_retries_the_celery_way(tapp: Conveyor) -> None:
    job = worker_app.bound_retry.delay(3)
    with running_worker(tapp):
        assert job.result(timeout=10) == 2  # self.request.retries on the third attempt


def test_max_retries_can_be_overridden_per_call(tapp: Conveyor) -> None:
    job = worker_app.fail_always.with_options(max_retries=0).delay("once")
    with running_worker(tapp), pytest.raises(JobFailed):
        job.result(timeout=10)
    assert job.refresh().attempts == 1


def _store_raw(app: Conveyor, task: str, payload: str) -> str:
    job_id = uuid.uuid4().hex
    app.backend.enqueue([NewJob(id=job_id, task=task, queue="default", priority=0, payload=payload,
                                max_attempts=3, timeout=None)])
    return job_id


def test_poison_jobs_fail_on_their_own_and_the_worker_goes_on(tapp: Conveyor) -> None:
    unknown = _store_raw(tapp, "no.such.task", '{"args":[],"kwargs":{}}')
    garbage = _store_raw(tapp, "add", "{garbage, not json")
    wrong_shape = _store_raw(tapp, "add", '["a", "list"]')
    bad_result = worker_app.returns_object.delay()
    healthy = [worker_app.add.delay(i, i) for i in range(10)]
    with running_worker(tapp):
        assert [j.result(timeout=10) for j in healthy] == [i * 2 for i in range(10)]
        wait_for(lambda: all(state_of(tapp, j) == JobState.FAILED for j in (unknown, garbage, wrong_shape)))
        with pytest.raises(JobFailed, match="JSON"):
            bad_result.result(timeout=10)
    unknown_error = tapp.get_job(unknown).errors
    assert [e.type for e in unknown_error] == ["UnknownTask"]  # not retried: no retry can mend it
    assert "no.such.task" in unknown_error[0].message
    assert tapp.get_job(garbage).errors[0].type == "SerializationError"
    assert "not valid JSON" in tapp.get_job(garbage).errors[0].message
    assert tapp.get_job(wrong_shape).errors[0].type == "SerializationError"


def test_thread_job_over_its_timeout_is_stopped(tapp: Conveyor) -> None:
    job = worker_app.spin.with_options(timeout=0.3).delay(30)
    start = time.monotonic()
    with running_worker(tapp), pytest.raises(JobFailed) as failure:
        job.result(timeout=10)
    assert failure.value.error_type == "JobTimeout" and "0.3s" in failure.value.error_message
    assert time.monotonic() - start < 5


def test_async_job_over_its_timeout_is_cancelled(tapp: Conveyor) -> None:
    job = worker_app.async_nap.with_options(timeout=0.2).delay(30)
    with running_worker(tapp, pool="async"), pytest.raises(JobFailed) as failure:
        job.result(timeout=10)
    assert failure.value.error_type == "JobTimeout"


def test_process_job_over_its_timeout_is_killed_and_the_process_replaced(tapp: Conveyor) -> None:
    slow = worker_app.nap.with_options(timeout=0.5).delay(60)
    with running_worker(tapp, pool="process", concurrency=1):
        with pytest.raises(JobFailed) as failure:
            slow.result(timeout=20)
        assert failure.value.error_type == "JobTimeout"
        assert worker_app.add.delay(2, 3).result(timeout=20) == 5


def test_process_job_that_crashes_its_process_fails_alone(tapp: Conveyor) -> None:
    crasher = worker_app.crash.delay()
    with running_worker(tapp, pool="process", concurrency=1):
        with pytest.raises(JobFailed) as failure:
            crasher.result(timeout=30)
        assert worker_app.add.delay(1, 1).result(timeout=20) == 2
    assert failure.value.error_type == "WorkerCrashed" and "exit code 13" in failure.value.error_message
    assert crasher.refresh().attempts == 2  # its retry budget (max_retries=1) was spent on crashes


def test_process_job_past_max_memory_fails_alone_and_its_process_is_replaced(tapp: Conveyor) -> None:
    hog = worker_app.hog.delay(2048)
    with running_worker(tapp, pool="process", concurrency=1, max_memory_mib=400):
        with pytest.raises(JobFailed) as failure:
            hog.result(timeout=30)
        assert worker_app.hog.delay(64).result(timeout=30) == 4  # a fresh process, under the limit
    assert failure.value.error_type == "MemoryError"
    assert "--max-memory limit of 400 MiB" in failure.value.error_message


def test_max_memory_needs_the_process_pool(tapp: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="pool='process'"):
        Worker(tapp, pool="thread", max_memory_mib=100)


@pytest.mark.parametrize(("pool", "task"), [("thread", "until_cancelled"), ("async", "async_until_cancelled"),
                                            ("process", "until_cancelled")])
def test_cancelling_a_running_job_stops_it_and_it_is_never_retried(tapp: Conveyor, tmp_path: Path, pool: str,
                                                                  task: str) -> None:
    marker = tmp_path / "started"
    job = tapp.enqueue(task, [str(marker)])
    with running_worker(tapp, pool=pool, concurrency=1):
        wait_for(marker.exists, timeout=20)
        job.cancel()
        wait_for(lambda: job.status == JobState.CANCELLED, timeout=10)
        assert worker_app.add.delay(1, 2).result(timeout=20) == 3
    assert job.refresh().attempts == 1


def test_cancelled_waiting_job_never_runs(tapp: Conveyor) -> None:
    job = worker_app.add.delay(1, 1).cancel()
    with running_worker(tapp):
        assert worker_app.add.delay(2, 2).result(timeout=10) == 4
    assert job.status == JobState.CANCELLED and job.refresh().attempts == 0


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_prefetched_job_cancelled_before_it_starts_never_runs(tapp: Conveyor, tmp_path: Path, pool: str) -> None:
    ahead = worker_app.nap.delay(1.5)
    marker = tmp_path / "ran"
    behind = worker_app.mark_then_nap.delay(str(marker), 0)
    with running_worker(tapp, pool=pool, concurrency=1, prefetch=1) as worker:
        wait_for(lambda: behind.id in worker.attempts and ahead.status == JobState.RUNNING, timeout=20)
        behind.cancel()
        wait_for(lambda: behind.status == JobState.CANCELLED, timeout=10)  # when its turn came
    assert ahead.status == JobState.COMPLETED and not marker.exists()
    assert "cancelled before it started" in behind.refresh().record.errors[-1].message


@pytest.mark.parametrize("task", ["progress_then_wait", "async_progress_then_wait"])
def test_progress_is_visible_while_the_job_runs(tapp: Conveyor, tmp_path: Path, task: str) -> None:
    """Sync tasks call set_progress; async ones await aset_progress, whose write (and so its hooks)
    runs off the event loop's thread."""
    marker = tmp_path / "go"
    job = getattr(worker_app, task).delay(str(marker))
    seen: list[tuple[float | None, str | None, int]] = []
    tapp.on("progress")(lambda event: seen.append((event.progress, event.message, threading.get_ident())))
    worker_app.LOOP_THREADS.clear()
    with running_worker(tapp):
        assert wait_for(lambda: job.progress == 40, timeout=10)
        assert job.progress_message == "resizing"
        marker.touch()
        assert job.result(timeout=10) == "ok"
    assert [(progress, message) for progress, message, _ in seen] == [(40.0, "resizing")]
    assert seen[0][2] not in worker_app.LOOP_THREADS


def test_worker_announces_itself_its_jobs_and_its_throughput(tapp: Conveyor, tmp_path: Path) -> None:
    marker = tmp_path / "go"
    with running_worker(tapp, concurrency=3) as worker:
        held = worker_app.progress_then_wait.delay(str(marker))
        [info] = wait_for(lambda: [w for w in tapp.workers() if held.id in w.running], timeout=10)
        assert (info.id, info.pid, info.queues, info.concurrency, info.pool) == (
            worker.id, os.getpid(), ("default",), 3, "thread")
        assert info.last_seen == pytest.approx(tapp.backend.now(), abs=5)
        marker.touch()
        held.result(timeout=10)
        assert worker_app.add.delay(1, 2).result(timeout=10) == 3
        with pytest.raises(JobFailed):
            worker_app.fail_always.delay("no").result(timeout=10)
    assert tapp.workers() == []  # a worker that stops says so at once
    totals = [s for s in tapp.stats() if s.queue == "default"]
    assert sum(s.completed for s in totals) == 2 and sum(s.failed for s in totals) == 1
    assert sum(s.retried for s in totals) == 2 and sum(s.started for s in totals) == 5
    assert 0 <= max(s.wait_max for s in totals) < 5


def test_cpu_bound_job_keeps_its_lease_past_the_lease_length(tapp: Conveyor) -> None:
    job = worker_app.spin.delay(3 * tapp.lease_seconds)  # never yields for three lease lengths
    with running_worker(tapp, concurrency=1):
        assert job.result(timeout=30) == "done"
    assert job.refresh().attempts == 1 and job.errors == []


def test_hooks_fire_and_a_failing_hook_does_not_stop_the_worker(tapp: Conveyor) -> None:
    events: list[tuple[str, str]] = []

    @tapp.on("started")
    def broken(event: JobEvent) -> None:
        raise RuntimeError("hook bug")

    for name in ("started", "completed", "retrying", "failed"):
        tapp.on(name)(lambda event, name=name: events.append((name, event.job.task)))  # type: ignore[misc]
    ok, bad = worker_app.add.delay(1, 2), worker_app.fail_always.delay("x")
    with running_worker(tapp):
        assert ok.result(timeout=10) == 3
        with pytest.raises(JobFailed):
            bad.result(timeout=10)
    assert ("completed", "add") in events
    assert events.count(("retrying", "fail_always")) == 2 and events.count(("failed", "fail_always")) == 1
    assert events.count(("started", "fail_always")) == 3


def test_hooks_that_use_the_store_during_a_drain_get_their_own_replies(tapp: Conveyor) -> None:
    # A started hook runs on the worker's main loop, which may have its next call to the store in
    # flight meanwhile (Capabilities.fetch_in_background): the hook's calls must not read its reply.
    @tapp.on("started")
    def echo(event: JobEvent) -> None:
        worker_app.add.with_options(queue="echo").delay(event.job.attempts, 0)

    jobs = worker_app.add.map([(i, 1) for i in range(400)])
    worker = Worker(tapp, burst=True)
    worker.run(install_signals=False)
    assert worker.processed == 400 and [job.result(timeout=1) for job in jobs] == [i + 1 for i in range(400)]
    assert tapp.counts()["echo"] == {JobState.QUEUED: 400}


def test_a_worker_that_fetches_in_the_background_quickens_thread_switches_while_it_drains(tapp: Conveyor) -> None:
    # Draining short jobs, its main loop waits for a reply without the GIL while job threads hold
    # it (see _SwitchInterval); a lone job leaves the interval alone.
    seen: list[float] = []

    @tapp.on("started")
    def note(event: JobEvent) -> None:
        seen.append(sys.getswitchinterval())

    before = sys.getswitchinterval()
    quick = pytest.approx(0.0002) if tapp.backend.capabilities.fetch_in_background else before
    worker_app.add.map([(i, 1) for i in range(200)])
    Worker(tapp, burst=True, concurrency=4).run(install_signals=False)
    assert len(seen) == 200 and quick in seen  # once the first jobs proved short
    assert sys.getswitchinterval() == before
    seen.clear()
    worker_app.add.delay(1, 1)
    Worker(tapp, burst=True, concurrency=4).run(install_signals=False)
    assert seen == [before] and sys.getswitchinterval() == before


def test_a_retry_the_store_turns_into_a_cancel_is_announced_as_cancelled(
        tapp: Conveyor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cancel lands between heartbeats, so the job is still running when it fails: the worker
    # asks for a retry, the store ends the job cancelled, and hooks hear what the store did.
    monkeypatch.setattr(tapp, "heartbeat_interval", 60.0)
    events: list[str] = []
    for name in ("retrying", "cancelled", "failed"):
        tapp.on(name)(lambda event, name=name: events.append(name))  # type: ignore[misc]
    marker, go = tmp_path / "started", tmp_path / "go"
    job = worker_app.fail_when_told.delay(str(marker), str(go))
    with running_worker(tapp, concurrency=1):
        wait_for(marker.exists, timeout=20)
        job.cancel()
        go.touch()
        wait_for(lambda: events, timeout=10)
        assert worker_app.add.delay(1, 2).result(timeout=20) == 3  # the worker carries on
    assert events == ["cancelled"]
    assert job.refresh().status == JobState.CANCELLED and job.attempts == 1


def test_busy_worker_with_frequent_heartbeats_never_reports_a_false_lost_lease(
        tapp: Conveyor, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Jobs finish between the supervisor's snapshot and its heartbeat all the time: their cleared
    # leases must not be taken for leases lost to a rescue.
    monkeypatch.setattr(tapp, "heartbeat_interval", 0.0)
    jobs = worker_app.add.map([(i, i) for i in range(1500)])
    with caplog.at_level("WARNING"), running_worker(tapp, concurrency=8, burst=True) as worker:
        wait_for(lambda: worker.processed == len(jobs), timeout=60)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert all(job.refresh().status == JobState.COMPLETED for job in jobs[::100])


def test_worker_holds_no_more_jobs_than_it_can_start_when_jobs_are_long(tapp: Conveyor) -> None:
    jobs = [worker_app.nap.delay(0.2) for _ in range(8)]
    with running_worker(tapp, concurrency=2) as worker:
        while not all(j.status == JobState.COMPLETED for j in jobs):
            assert tapp.counts()["default"].get(JobState.RUNNING, 0) <= 2
            assert len(worker.attempts) <= 2
            time.sleep(0.02)


@pytest.mark.parametrize("pool", ["thread", "async"])
def test_prefetched_sync_and_async_jobs_never_run_beyond_the_concurrency(tapp: Conveyor, pool: str) -> None:
    worker_app.GAUGE.most = 0
    jobs = [worker_app.gauged.delay(0.02) for _ in range(10)] + [worker_app.async_gauged.delay(0.02)
                                                                 for _ in range(10)]
    with running_worker(tapp, pool=pool, concurrency=2, prefetch=6) as worker:
        wait_for(lambda: all(j.status == JobState.COMPLETED for j in jobs), timeout=20)
        assert worker.processed == 20
    assert worker_app.GAUGE.most == 2


def test_jobs_prefetched_behind_jobs_that_turn_long_go_back_to_the_queue(tapp: Conveyor,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """After short jobs the worker claims more than it can start (the engine's prefetch per slot);
    when the jobs it starts turn out long, the ones waiting behind them go back to the queue, where
    another worker takes them."""
    per_slot = tapp.backend.capabilities.prefetch_per_slot
    with running_worker(tapp, concurrency=2) as busy:
        worker_app.add.map([(i, i) for i in range(20)])
        wait_for(lambda: busy.processed == 20, timeout=10)
        assert busy._short_jobs, "the warm-up jobs were not short enough to turn prefetching on"
        tapp.pause("default")  # the jobs below become claimable together
        naps = [worker_app.nap.delay(3) for _ in range(2)]
        behind = [worker_app.add.delay(1, i) for i in range(2 * per_slot + 2)]
        with caplog.at_level("INFO", logger="conveyor.jobs"):
            tapp.resume("default")
            wait_for(lambda: all(job.status == JobState.RUNNING for job in naps), timeout=10)
            wait_for(lambda: len(busy.attempts) == 2, timeout=2)
        handed_back = [r for r in caplog.records if "handed back" in r.getMessage()]
        assert len(handed_back) == 2 * per_slot, "the claim took the two slots and the prefetch behind them"
        assert all(job.status == JobState.QUEUED for job in behind)
        with running_worker(tapp, concurrency=1):
            assert [job.result(timeout=2) for job in behind] == list(range(1, len(behind) + 1))
        assert all(job.status == JobState.RUNNING for job in naps), "the short jobs waited for the long ones"


def test_paused_queue_is_not_worked_until_resumed(tapp: Conveyor) -> None:
    tapp.pause("default")
    job = worker_app.add.delay(1, 1)
    with running_worker(tapp) as worker:
        time.sleep(0.3)  # a window in which a worker that ignored the pause would take the job
        assert job.status == JobState.QUEUED and not worker.attempts
        tapp.resume("default")
        assert job.result(timeout=10) == 2


def test_burst_worker_leaves_when_no_job_is_due_and_max_jobs_stops_a_worker(tapp: Conveyor) -> None:
    worker_app.add.map([(i, i) for i in range(5)])
    capped = Worker(tapp, max_jobs=3)
    capped.run(install_signals=False)
    assert capped.processed == 3
    burst = Worker(tapp, burst=True)
    burst.run(install_signals=False)
    assert burst.processed == 2
    assert tapp.counts()["default"] == {JobState.COMPLETED: 5}


def test_sigkilled_worker_job_runs_again_elsewhere_after_its_lease(tapp: Conveyor, engine_url: str,
                                                                   tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.mark_then_nap.delay(str(ledger), 0.5)
    victim = spawn_worker(engine_url)
    try:
        wait_for(lambda: ledger.exists() and ledger.read_text(), timeout=20)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    assert job.status == JobState.RUNNING  # nobody finished it: it waits for its lease to expire
    rescuer = spawn_worker(engine_url)
    try:
        assert job.result(timeout=30) == 2
    finally:
        rescuer.terminate()
        rescuer.wait(timeout=30)
    assert job.refresh().errors[0].type == "WorkerLost"
    assert len(ledger.read_text().split()) == 2


def test_job_that_kills_its_worker_every_time_ends_failed(tapp: Conveyor, engine_url: str) -> None:
    job = worker_app.crash.delay()  # os._exit in the thread pool takes the whole worker down
    deaths = 0
    while job.status != JobState.FAILED and deaths < 4:
        worker = spawn_worker(engine_url)
        # each worker rescues the job once its lease expired, takes it, and dies of it
        wait_for(lambda w=worker: w.poll() is not None or job.status == JobState.FAILED, timeout=30)
        deaths += worker.poll() is not None
        worker.terminate()
        worker.wait(timeout=30)
    assert job.status == JobState.FAILED and deaths == 2
    assert job.refresh().attempts == 2  # max_retries=1: two worker deaths, then no more
    assert job.errors[-1].type == "WorkerLost"


def test_sigterm_lets_running_jobs_finish(tapp: Conveyor, engine_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.mark_then_nap.delay(str(ledger), 1.0)
    worker = spawn_worker(engine_url, "--shutdown-timeout", "20")
    wait_for(lambda: ledger.exists() and ledger.read_text(), timeout=20)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert job.status == JobState.COMPLETED and job.refresh().attempts == 1


def test_sigterm_hands_back_jobs_that_outlive_the_shutdown_timeout(tapp: Conveyor, engine_url: str,
                                                                   tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.mark_then_nap.delay(str(ledger), 30)
    waiting = worker_app.add.delay(1, 1)
    worker = spawn_worker(engine_url, "--shutdown-timeout", "0.5", "-c", "1")
    wait_for(lambda: ledger.exists() and ledger.read_text(), timeout=20)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    record = job.refresh().record
    assert record.state == JobState.QUEUED and record.attempts == 0  # handed back, attempt not counted
    assert waiting.status == JobState.QUEUED


def test_second_sigterm_hands_running_jobs_back_at_once(tapp: Conveyor, engine_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = worker_app.mark_then_nap.delay(str(ledger), 60)
    worker = spawn_worker(engine_url, "--shutdown-timeout", "120", "-c", "1", "--log-level", "INFO")
    wait_for(lambda: ledger.exists() and ledger.read_text(), timeout=20)
    worker.send_signal(signal.SIGTERM)
    assert worker.stderr is not None
    for line in worker.stderr:  # two signals sent together reach Python's handler as one
        if b"SIGTERM received" in line:
            break
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)  # not the 120 s shutdown timeout, nor the 60 s job
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"the second SIGTERM did not stop the worker: {worker.stderr.read()!r}") from None
    assert worker.returncode == 0
    assert job.refresh().record.state == JobState.QUEUED


def test_worker_reports_store_it_cannot_open_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "conveyor.cli", "worker", APP_PATH, "--url",
                             f"sqlite:///{tmp_path}/missing/dir/jobs.db"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert os.path.exists(tmp_path) and not (tmp_path / "missing").exists()
