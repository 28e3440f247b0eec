"""The storage contract, verb by verb, on every engine."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from conveyor import Conveyor
from conveyor.backends import Backend, Claim, Finish, Lease, MinuteStats, WorkerInfo
from conveyor.backends.base import FetchReply
from conveyor.errors import InvalidTransition, JobNotFound
from conveyor.job import TRANSITIONS, AttemptError, JobRecord, JobState, NewJob
from tests.conftest import wait_for


def new_job(task: str = "t", *, queue: str = "default", priority: int = 0, delay: float = 0.0,
            job_id: str | None = None, max_attempts: int = 3, payload: str = '{"args":[],"kwargs":{}}') -> NewJob:
    return NewJob(id=job_id or uuid.uuid4().hex, task=task, queue=queue, priority=priority, payload=payload,
                  max_attempts=max_attempts, timeout=None, delay=delay)


def fetch(backend: Backend, limit: int = 10, queues: tuple[str, ...] = ("default",), lease: float = 30.0) -> list:
    return backend.fetch(list(queues), limit, worker_id="w1", lease_seconds=lease)


def error(attempt: int = 1) -> AttemptError:
    return AttemptError(attempt, "ValueError", "boom", "Traceback...", time.time())


@pytest.fixture
def backend(app: Conveyor) -> Backend:
    return app.backend


def test_enqueue_stores_the_job_queued(backend: Backend) -> None:
    [record] = backend.enqueue([new_job("mod.task", queue="emails", priority=5)])
    stored = backend.get(record.id)
    assert stored is not None
    assert (stored.task, stored.queue, stored.priority, stored.state) == ("mod.task", "emails", 5, JobState.QUEUED)
    assert stored.attempts == 0 and stored.max_attempts == 3 and record.created


def test_fetch_takes_higher_priority_first_then_fifo(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job(priority=p) for p in (0, 5, 0, 10, 5)])]
    claimed = [r.id for r in fetch(backend, limit=5)]
    assert claimed == [ids[3], ids[1], ids[4], ids[0], ids[2]]


def test_fifo_holds_across_separate_enqueues(backend: Backend) -> None:
    ids = [backend.enqueue([new_job()])[0].id for _ in range(20)]
    claimed = [r.id for batch in (fetch(backend, 7), fetch(backend, 7), fetch(backend, 7)) for r in batch]
    assert claimed == ids


def test_fetch_claims_with_a_lease_and_counts_the_attempt(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [record] = fetch(backend, lease=30)
    assert record.state == JobState.RUNNING and record.attempts == 1
    assert record.lease_token and record.lease_expires_at is not None
    assert record.lease_expires_at == pytest.approx(backend.now() + 30, abs=2)
    assert fetch(backend) == []


def test_fetch_respects_limit_and_queues(backend: Backend) -> None:
    backend.enqueue([new_job(queue="a") for _ in range(3)] + [new_job(queue="b") for _ in range(3)])
    assert len(fetch(backend, limit=2, queues=("a",))) == 2
    assert {r.queue for r in fetch(backend, limit=10, queues=("a", "b"))} == {"a", "b"}
    assert fetch(backend, queues=("c",)) == []


def test_fetch_over_several_queues_orders_by_priority_across_them(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job(queue="a", priority=1), new_job(queue="b", priority=9),
                                          new_job(queue="a", priority=5), new_job(queue="b", priority=1)])]
    claimed = [r.id for batch in (fetch(backend, 1, ("a", "b")), fetch(backend, 2, ("b", "a", "a")),
                                  fetch(backend, 5, ("a", "b"))) for r in batch]
    assert claimed == [ids[1], ids[2], ids[0], ids[3]]


def test_delayed_job_is_scheduled_until_due(backend: Backend) -> None:
    [record] = backend.enqueue([new_job(delay=0.5)])
    assert record.state == JobState.SCHEDULED
    assert fetch(backend) == []
    claimed = wait_for(lambda: fetch(backend), timeout=5)
    assert claimed[0].id == record.id
    assert backend.now() >= record.run_at


def test_due_time_orders_equal_priorities(backend: Backend) -> None:
    later = backend.enqueue([new_job(delay=0.2)])[0]
    sooner = backend.enqueue([new_job(delay=0.1)])[0]
    wait_for(lambda: backend.now() > later.run_at + 0.01, timeout=5)
    assert [r.id for r in fetch(backend)] == [sooner.id, later.id]


def test_unique_id_returns_the_existing_job(backend: Backend) -> None:
    first = backend.enqueue([new_job(job_id="welcome-42")])[0]
    again = backend.enqueue([new_job("other", job_id="welcome-42")])[0]
    assert again.id == first.id and again.task == "t" and not again.created
    [running] = fetch(backend)
    assert backend.enqueue([new_job(job_id="welcome-42")])[0].state == JobState.RUNNING
    backend.finish([Finish(running.id, running.lease_token or "", JobState.COMPLETED, result="1")])
    # a finished id stays reserved until its record is pruned
    kept = backend.enqueue([new_job(job_id="welcome-42")])[0]
    assert kept.state == JobState.COMPLETED and not kept.created
    assert len(backend.list_jobs()) == 1


def test_a_batch_reports_each_taken_id_in_its_own_place(backend: Backend) -> None:
    backend.enqueue([new_job(job_id="taken-1"), new_job(job_id="taken-2")])
    records = backend.enqueue([new_job("other", job_id=job_id) for job_id in ("new-1", "taken-2", "new-2", "taken-1")])
    assert [(r.id, r.task, r.created) for r in records] == [
        ("new-1", "other", True), ("taken-2", "t", False), ("new-2", "other", True), ("taken-1", "t", False)]


def test_duplicate_ids_in_one_batch_make_one_job(backend: Backend) -> None:
    records = backend.enqueue([new_job(job_id="x"), new_job(job_id="x"), new_job(job_id="y")])
    assert [r.id for r in records] == ["x", "x", "y"]
    assert len(backend.list_jobs()) == 2


def test_a_batch_of_thousands_lands_whole_each_job_in_its_state_and_order(backend: Backend) -> None:
    # Large enough that an engine gathering a batch's writes per key must split them (Redis: Lua's
    # unpack takes at most 8,000 values).
    jobs = [new_job(delay=3600.0 if i % 5 == 0 else 0.0) for i in range(5000)]
    backend.enqueue(jobs)
    queued = [job.id for job in jobs if not job.delay]
    assert backend.counts()["default"] == {JobState.QUEUED: 4000, JobState.SCHEDULED: 1000}
    assert len(backend.list_jobs(state=JobState.SCHEDULED, limit=5000)) == 1000
    assert [r.id for r in backend.list_jobs(state=JobState.QUEUED, limit=5000)] == queued[::-1]  # newest first
    assert [r.id for r in fetch(backend, limit=4000)] == queued


def _fetch_all(url: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    app = Conveyor(url)
    got: list[str] = []
    while batch := app.backend.fetch(["default"], 5, worker_id=str(uuid.uuid4()), lease_seconds=60):
        got.extend(r.id for r in batch)
    out.put(got)
    app.close()


def test_concurrent_fetchers_in_processes_never_share_a_job(app: Conveyor) -> None:
    ids = {r.id for r in app.backend.enqueue([new_job() for _ in range(600)])}
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_fetch_all, args=(app.url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [job_id for _ in procs for job_id in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert len(claimed) == len(set(claimed)) == 600
    assert set(claimed) == ids


def test_heartbeat_extends_held_leases_and_reports_lost_ones(backend: Backend) -> None:
    backend.enqueue([new_job(), new_job()])
    first, second = fetch(backend, lease=30)
    before = first.lease_expires_at or 0
    reply = backend.heartbeat([Lease(first.id, first.lease_token or ""), Lease(second.id, "stale")], 60)
    assert reply.lost == {second.id} and not reply.cancel_requested
    record = backend.get(first.id)
    assert record is not None and (record.lease_expires_at or 0) > before + 20


@pytest.mark.parametrize("result", ['{"ok":1}', "null"])
def test_finish_completed_stores_the_result(backend: Backend, result: str) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    assert backend.finish([Finish(job.id, job.lease_token or "", JobState.COMPLETED, result=result)]) == [
        JobState.COMPLETED]
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.COMPLETED
    assert record.result == result and record.finished_at is not None
    assert record.lease_token is None
    [listed] = backend.list_jobs(state=JobState.COMPLETED)
    assert listed.result == result


def test_a_job_run_again_keeps_no_result_of_its_last_run(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=2)])
    [job] = fetch(backend)
    backend.finish([Finish(job.id, job.lease_token or "", JobState.COMPLETED, result='{"ok":1}')])
    backend.retry_now(job.id)
    [again] = fetch(backend)
    assert again.result is None
    backend.finish([Finish(again.id, again.lease_token or "", JobState.FAILED, error=error())])
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.FAILED and record.result is None


def test_finish_and_fetch_records_outcomes_then_refills_the_slots(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job() for _ in range(3)])]
    [first] = fetch(backend, 1)
    done = Finish(first.id, first.lease_token or "", JobState.COMPLETED, result="1")
    stale = Finish("never-held", "token", JobState.COMPLETED, result="1")
    applied, claimed = backend.finish_and_fetch([done, stale], ["default"], 2, worker_id="w1", lease_seconds=30)
    assert applied == [JobState.COMPLETED, None]
    assert [r.id for r in claimed] == ids[1:] and {r.state for r in claimed} == {JobState.RUNNING}
    stored = backend.get(first.id)
    assert stored is not None and stored.state == JobState.COMPLETED and stored.result == "1"
    assert backend.finish_and_fetch([], ["default"], 0, worker_id="w1", lease_seconds=30) == ([], [])


def test_send_finish_and_fetch_does_the_same_its_reply_read_in_two_steps(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job(priority=i % 2) for i in range(5)])]
    [first] = fetch(backend, 1)  # the first of priority 1
    done = Finish(first.id, first.lease_token or "", JobState.COMPLETED, result="1")
    stale = Finish("never-held", "token", JobState.COMPLETED, result="1")
    reply = backend.send_finish_and_fetch([done, stale], ["default"], 3, worker_id="w1", lease_seconds=30)
    # a second call sent once the first reply is in, before its jobs are read (as the worker does)
    assert reply.wait() == ([JobState.COMPLETED, None], 3)
    following = backend.send_finish_and_fetch([], ["default"], 3, worker_id="w1", lease_seconds=30)
    claimed = reply.records()
    assert [r.id for r in claimed] == [ids[3], ids[0], ids[2]] and {r.state for r in claimed} == {JobState.RUNNING}
    assert following.wait() == ([], 1) and [r.id for r in following.records()] == [ids[4]]
    stored = backend.get(first.id)
    assert stored is not None and stored.state == JobState.COMPLETED and stored.result == "1"


def test_finish_is_refused_without_the_lease(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    assert backend.finish([Finish(job.id, "not-the-token", JobState.COMPLETED, result="1")]) == [None]
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.RUNNING


def test_retry_schedules_the_next_attempt_and_keeps_every_error(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=3)])
    [job] = fetch(backend)
    backend.finish([Finish(job.id, job.lease_token or "", JobState.SCHEDULED, error=error(1), delay=0.3)])
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.SCHEDULED
    assert record.run_at == pytest.approx(backend.now() + 0.3, abs=0.25)
    assert fetch(backend) == []
    [again] = wait_for(lambda: fetch(backend), timeout=5)
    assert again.attempts == 2
    backend.finish([Finish(again.id, again.lease_token or "", JobState.FAILED, error=error(2))])
    final = backend.get(job.id)
    assert final is not None and final.state == JobState.FAILED
    assert [(e.attempt, e.type, e.message) for e in final.errors] == [(1, "ValueError", "boom"),
                                                                       (2, "ValueError", "boom")]


def test_retry_without_delay_is_queued_at_once(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    assert backend.finish([Finish(job.id, job.lease_token or "", JobState.SCHEDULED, error=error(), delay=0)]) == [
        JobState.QUEUED]
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.QUEUED
    assert fetch(backend)[0].attempts == 2


def test_release_hands_a_job_back_without_counting_the_attempt(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    backend.finish([Finish(job.id, job.lease_token or "", JobState.QUEUED, release=True)])
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.QUEUED and record.attempts == 0


def test_expired_lease_is_rescued_as_an_attempt(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=3)])
    [job] = fetch(backend, lease=0.2)
    rescued = wait_for(backend.rescue_expired, timeout=5)
    assert [(r.id, r.state) for r in rescued] == [(job.id, JobState.QUEUED)]
    assert rescued[0].errors[-1].type == "WorkerLost"
    # the stalled worker's late report changes nothing
    assert backend.finish([Finish(job.id, job.lease_token or "", JobState.COMPLETED, result="1")]) == [None]
    [again] = fetch(backend)
    assert again.attempts == 2 and again.lease_token != job.lease_token


def test_rescue_fails_a_job_that_used_every_attempt(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=1)])
    fetch(backend, lease=0.2)
    [rescued] = wait_for(backend.rescue_expired, timeout=5)
    assert rescued.state == JobState.FAILED and rescued.errors[-1].type == "WorkerLost"
    assert fetch(backend) == []


def test_live_leases_are_not_rescued(backend: Backend) -> None:
    backend.enqueue([new_job()])
    fetch(backend, lease=30)
    assert backend.rescue_expired() == []


def test_cancel_waiting_jobs_at_once(backend: Backend) -> None:
    queued, delayed = backend.enqueue([new_job(), new_job(delay=60)])
    assert backend.cancel(queued.id).state == JobState.CANCELLED
    assert backend.cancel(delayed.id).state == JobState.CANCELLED
    assert fetch(backend) == []
    with pytest.raises(InvalidTransition, match="cancelled"):
        backend.cancel(queued.id)
    with pytest.raises(JobNotFound):
        backend.cancel("missing")


def test_cancel_running_job_reaches_its_worker_through_the_heartbeat(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    assert backend.cancel(job.id).state == JobState.RUNNING
    reply = backend.heartbeat([Lease(job.id, job.lease_token or "")], 30)
    assert reply.cancel_requested == {job.id}


@pytest.mark.parametrize("outcome", ["retry", "hand back"])
def test_cancel_requested_while_running_wins_over_a_retry(backend: Backend, outcome: str) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    backend.cancel(job.id)
    finish = (Finish(job.id, job.lease_token or "", JobState.SCHEDULED, error=error(), delay=0.0)
              if outcome == "retry" else Finish(job.id, job.lease_token or "", JobState.QUEUED, release=True))
    assert backend.finish([finish]) == [JobState.CANCELLED]  # the worker announces what the store did
    record = backend.get(job.id)
    assert record is not None and record.state == JobState.CANCELLED and record.finished_at is not None
    assert fetch(backend) == []


def test_cancel_sticks_when_the_worker_dies(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=5)])
    [job] = fetch(backend, lease=0.2)
    backend.cancel(job.id)
    [rescued] = wait_for(backend.rescue_expired, timeout=5)
    assert rescued.state == JobState.CANCELLED


def test_retry_now_gives_a_failed_job_its_full_budget_again_every_time(backend: Backend) -> None:
    backend.enqueue([new_job(max_attempts=2)])
    for round_ in (1, 2, 3):
        [job] = fetch(backend)
        backend.finish([Finish(job.id, job.lease_token or "", JobState.FAILED, error=error())])
        again = backend.retry_now(job.id)
        assert again.state == JobState.QUEUED and (again.attempts, again.max_attempts) == (0, 2)
        assert len(again.errors) == round_
    [claimed] = fetch(backend)
    assert claimed.attempts == 1
    with pytest.raises(InvalidTransition, match="running"):
        backend.retry_now(job.id)


def test_retry_now_runs_a_delayed_job_now(backend: Backend) -> None:
    [job] = backend.enqueue([new_job(delay=3600)])
    assert backend.retry_now(job.id).state == JobState.QUEUED
    assert [r.id for r in fetch(backend)] == [job.id]


def test_progress_is_stored_only_under_the_lease(backend: Backend) -> None:
    backend.enqueue([new_job()])
    [job] = fetch(backend)
    assert backend.set_progress(Lease(job.id, job.lease_token or ""), 40, "resizing")
    assert not backend.set_progress(Lease(job.id, "stale"), 90, "nope")
    record = backend.get(job.id)
    assert record is not None and (record.progress, record.progress_message) == (40, "resizing")


def test_paused_queue_is_not_fetched_until_resumed(backend: Backend) -> None:
    backend.enqueue([new_job(queue="a"), new_job(queue="b")])
    backend.pause("a")
    assert backend.paused() == {"a"}
    assert [r.queue for r in fetch(backend, queues=("a", "b"))] == ["b"]
    backend.resume("a")
    assert [r.queue for r in fetch(backend, queues=("a", "b"))] == ["a"]


def test_list_filters_and_paginates_newest_first(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job("x" if i % 2 else "y", queue="q") for i in range(10)])]
    page1 = backend.list_jobs(queue="q", limit=4)
    page2 = backend.list_jobs(queue="q", limit=4, offset=4)
    assert [r.id for r in page1 + page2] == ids[::-1][:8]
    assert {r.task for r in backend.list_jobs(task="x")} == {"x"}
    assert len(backend.list_jobs(task="x")) == 5
    fetch(backend, 3, queues=("q",))
    assert len(backend.list_jobs(state=JobState.RUNNING)) == 3


def test_list_of_every_state_is_newest_first_across_states(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job() for _ in range(7)])]
    first, _ = fetch(backend, 2)  # the two oldest run; the first completes
    backend.finish([Finish(first.id, first.lease_token or "", JobState.COMPLETED, result="1")])
    backend.cancel(ids[4])
    backend.enqueue([new_job(delay=60)])  # the newest, scheduled
    listed = [r.id for r in backend.list_jobs(limit=3)] + [r.id for r in backend.list_jobs(limit=10, offset=3)]
    assert listed[1:] == ids[::-1] and len(set(listed)) == 8
    assert [r.state for r in backend.list_jobs(limit=1, offset=7)] == [JobState.COMPLETED]


def test_list_of_running_jobs_is_newest_first(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job() for _ in range(5)])]
    fetch(backend, 2)
    fetch(backend, 2)  # a later claim of older-than-newest jobs: the listing follows enqueue order
    running = [r.id for r in backend.list_jobs(state=JobState.RUNNING, limit=3)]
    running += [r.id for r in backend.list_jobs(state=JobState.RUNNING, limit=3, offset=3)]
    assert running == ids[3::-1]


def test_list_searches_ids_task_names_and_arguments_ignoring_case(backend: Backend) -> None:
    invoice = backend.enqueue([new_job("billing.send_invoice", job_id="invoice-1",
                                       payload='{"args":["ann@example.com"],"kwargs":{}}')])[0]
    welcome = backend.enqueue([new_job("emails.welcome", payload='{"args":["Bob@Example.com"],"kwargs":{}}')])[0]
    assert [r.id for r in backend.list_jobs(search="invoice")] == [invoice.id]
    assert [r.id for r in backend.list_jobs(search="WELCOME")] == [welcome.id]
    assert [r.id for r in backend.list_jobs(search="bob@example")] == [welcome.id]
    assert [r.id for r in backend.list_jobs(search="example.com", limit=1, offset=1)] == [invoice.id]
    assert backend.list_jobs(search="%") == [] and backend.list_jobs(search="ann_example") == []
    assert backend.list_jobs(search="invoice", state=JobState.RUNNING) == []


def test_delete_removes_a_waiting_or_finished_job_never_a_running_one(backend: Backend) -> None:
    ids = [r.id for r in backend.enqueue([new_job(), new_job(), new_job(), new_job(delay=60)])]
    running, done = fetch(backend, 2)
    backend.finish([Finish(done.id, done.lease_token or "", JobState.COMPLETED, result="1")])
    for job_id in (done.id, ids[2], ids[3]):
        assert backend.delete(job_id).id == job_id
        assert backend.get(job_id) is None
    with pytest.raises(InvalidTransition, match="running"):
        backend.delete(running.id)
    with pytest.raises(JobNotFound):
        backend.delete("no-such-job")
    assert [r.id for r in backend.list_jobs()] == [running.id]
    assert backend.counts() == {"default": {JobState.RUNNING: 1}}
    assert backend.enqueue([new_job(job_id=ids[2])])[0].created  # a deleted id can be used again


def worker_info(worker_id: str, **changes: object) -> WorkerInfo:
    info = WorkerInfo(id=worker_id, hostname="host-a", pid=4242, queues=("default", "emails"), concurrency=8,
                      pool="thread", started_at=1_700_000_000.5)
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


def test_workers_announce_themselves_until_they_leave(backend: Backend) -> None:
    backend.report_worker(worker_info("w1", running=("j1",)), [], ttl=30)
    backend.report_worker(worker_info("w2"), [], ttl=30)
    clock = backend.report_worker(worker_info("w1", running=("j2", "j3"), processed=7), [], ttl=30)
    assert clock == pytest.approx(backend.now(), abs=2)
    w1, w2 = backend.workers()
    assert dataclasses.replace(w1, last_seen=0.0) == worker_info("w1", running=("j2", "j3"), processed=7)
    assert w1.last_seen == pytest.approx(clock, abs=0.5) and w2.id == "w2"
    backend.remove_worker("w2")
    assert [w.id for w in backend.workers()] == ["w1"]


def test_worker_that_stops_reporting_is_forgotten_after_its_ttl(backend: Backend) -> None:
    backend.report_worker(worker_info("silent"), [], ttl=0.2)
    backend.report_worker(worker_info("alive"), [], ttl=30)
    assert wait_for(lambda: [w.id for w in backend.workers()] == ["alive"], timeout=5)


def test_stats_add_up_per_minute_and_queue(backend: Backend) -> None:
    now = backend.now()
    minute = now - now % 60
    backend.report_worker(worker_info("w1"), [
        MinuteStats(minute, "a", completed=2, started=3, wait_total=0.25, wait_max=0.125),
        MinuteStats(minute - 60, "a", failed=1, started=1, wait_total=2.0, wait_max=2.0)], ttl=30)
    backend.report_worker(worker_info("w2"), [
        MinuteStats(minute, "a", completed=1, retried=1, started=1, wait_total=0.5, wait_max=0.5),
        MinuteStats(minute, "b", completed=4)], ttl=30)
    backend.report_worker(worker_info("w2"), [MinuteStats(minute - 3 * 86400, "a", completed=9)], ttl=30)
    stats = backend.stats(since=minute - 86400)
    assert [(s.minute, s.queue) for s in stats] == [(minute - 60, "a"), (minute, "a"), (minute, "b")]
    assert stats[1] == MinuteStats(minute, "a", completed=3, failed=0, retried=1, started=4, wait_total=0.75,
                                   wait_max=0.5)
    assert stats[0].failed == 1 and stats[2].completed == 4
    assert [(s.minute, s.queue) for s in backend.stats(since=minute)] == [(minute, "a"), (minute, "b")]
    assert all(s.minute > minute - 86400 for s in backend.stats(since=0))  # older than retention: gone


def test_counts_by_queue_and_state(backend: Backend) -> None:
    backend.enqueue([new_job(queue="a"), new_job(queue="a"), new_job(queue="b", delay=60)])
    fetch(backend, 1, queues=("a",))
    counts = backend.counts()
    assert counts["a"] == {JobState.QUEUED: 1, JobState.RUNNING: 1}
    assert counts["b"] == {JobState.SCHEDULED: 1}
    taken = new_job(queue="b", job_id="taken")
    backend.enqueue([taken])
    backend.enqueue([new_job(queue="b", job_id="taken"), new_job(queue="c"), new_job(queue="b", delay=60)])
    assert backend.counts()["b"] == {JobState.QUEUED: 1, JobState.SCHEDULED: 2}
    assert backend.counts()["c"] == {JobState.QUEUED: 1}


def test_prune_deletes_finished_jobs_past_retention(make_app: Callable[..., Conveyor]) -> None:
    backend = make_app(result_ttl=0.0, failed_ttl=3600.0).backend
    backend.enqueue([new_job(), new_job()])
    done, failed = fetch(backend)
    backend.finish([Finish(done.id, done.lease_token or "", JobState.COMPLETED, result="1"),
                    Finish(failed.id, failed.lease_token or "", JobState.FAILED, error=error())])
    assert backend.prune() == 1
    assert backend.get(done.id) is None and backend.get(failed.id) is not None
    # once pruned, the id can be used again
    assert backend.enqueue([new_job(job_id=done.id)])[0].created


def test_reclaim_leaves_every_job_as_it_was_and_claims_go_on(backend: Backend) -> None:
    backend.enqueue([new_job(), new_job(), new_job(delay=60)])
    done = fetch(backend, limit=1)[0]
    backend.finish([Finish(done.id, done.lease_token or "", JobState.COMPLETED, result="1")])
    before = backend.list_jobs(limit=10)
    backend.reclaim()
    assert backend.list_jobs(limit=10) == before
    assert [job.state for job in fetch(backend)] == [JobState.RUNNING]


def test_purge_deletes_chosen_states_never_running(backend: Backend) -> None:
    backend.enqueue([new_job(), new_job(), new_job(queue="other")])
    fetch(backend, 1)
    assert backend.purge([JobState.QUEUED, JobState.RUNNING], queue="default") == 1
    assert len(backend.list_jobs()) == 2


def test_named_lock_has_one_owner_until_it_expires(backend: Backend) -> None:
    assert backend.acquire_lock("leader", "a", ttl=0.3)
    assert backend.acquire_lock("leader", "a", ttl=0.3)  # the owner extends it
    assert not backend.acquire_lock("leader", "b", ttl=0.3)
    assert wait_for(lambda: backend.acquire_lock("leader", "b", ttl=30), timeout=5)
    backend.release_lock("leader", "a")  # not the owner: no effect
    assert not backend.acquire_lock("leader", "a", ttl=30)
    backend.release_lock("leader", "b")
    assert backend.acquire_lock("leader", "a", ttl=30)


@pytest.mark.parametrize("batch", ["one job", "delayed then due", "mixed queues"])
def test_wait_for_work_wakes_on_an_enqueue_from_another_connection(app: Conveyor, engine_url: str,
                                                                  batch: str) -> None:
    jobs = {"one job": [new_job()], "delayed then due": [new_job(delay=60), new_job(), new_job()],
            "mixed queues": [new_job(queue="other"), new_job(queue="other", delay=60), new_job(), new_job()]}[batch]
    producer = Conveyor(engine_url)
    fetched_nothing, woke = threading.Event(), threading.Event()

    def worker() -> None:
        assert fetch(app.backend) == []  # the enqueue may land any time after this fetch
        fetched_nothing.set()
        app.backend.wait_for_work(["default"], 10, threading.Event())
        woke.set()

    waiter = threading.Thread(target=worker)
    waiter.start()
    assert fetched_nothing.wait(5)
    start = time.monotonic()
    producer.backend.enqueue(jobs)
    assert woke.wait(5)
    assert time.monotonic() - start < 1.0
    waiter.join()
    producer.close()


def _claimed_by(reply: FetchReply | None) -> list[JobRecord]:
    """The jobs a wait_for_work with a claim claimed (none, if it returned no reply)."""
    if reply is None:
        return []
    outcomes, count = reply.wait()
    records = reply.records()
    assert outcomes == [] and count == len(records)
    return records


def test_wait_for_work_with_a_claim_claims_the_job_that_came_or_leaves_it_queued(app: Conveyor,
                                                                                  engine_url: str) -> None:
    # An engine may send the worker's claim itself as the job comes (Redis does): either way the
    # job is claimed once, for that worker, or left for the worker's own claim.
    producer = Conveyor(engine_url)
    fetched_nothing = threading.Event()
    replies: list[FetchReply | None] = []

    def worker() -> None:
        assert fetch(app.backend) == []
        fetched_nothing.set()
        replies.append(app.backend.wait_for_work(["default"], 10, threading.Event(), Claim(5, "w2", 30.0)))

    waiter = threading.Thread(target=worker)
    waiter.start()
    assert fetched_nothing.wait(5)
    start = time.monotonic()
    job, = producer.backend.enqueue([new_job()])
    waiter.join(5)
    assert time.monotonic() - start < 1.0
    claimed = _claimed_by(replies[0])
    if claimed:
        assert [(r.id, r.state, r.worker_id, r.attempts) for r in claimed] == [(job.id, JobState.RUNNING, "w2", 1)]
        assert fetch(app.backend) == []
    else:
        assert [r.id for r in fetch(app.backend)] == [job.id]
    producer.close()


def test_a_claim_left_with_a_wait_loses_no_job_when_the_wait_is_woken_as_the_job_comes(
        app: Conveyor, engine_url: str) -> None:
    # The worker's own wake-up (a job of its ended) races the news of an enqueue: whichever wins,
    # each job is claimed once, by the wait's claim or by the worker's next claim, never lost.
    producer = Conveyor(engine_url)
    wakes = [threading.Event() for _ in range(30)]
    ready, done = threading.Semaphore(0), threading.Semaphore(0)
    claimed: list[str] = []

    def worker() -> None:
        for wake in wakes:
            claimed.extend(record.id for record in fetch(app.backend))
            ready.release()
            reply = app.backend.wait_for_work(["default"], 10, wake, Claim(1, "w2", 30.0))
            claimed.extend(record.id for record in _claimed_by(reply))
            done.release()

    waiter = threading.Thread(target=worker)
    waiter.start()
    enqueued = []
    for n, wake in enumerate(wakes):
        assert ready.acquire(timeout=5)
        if n % 2:
            wake.set()
        enqueued += [record.id for record in producer.backend.enqueue([new_job()])]
        wake.set()
        assert done.acquire(timeout=5)
    waiter.join(5)
    claimed.extend(record.id for record in fetch(app.backend, len(wakes)))
    assert sorted(claimed) == sorted(enqueued)
    producer.close()


def test_wait_for_work_returns_when_a_delayed_job_falls_due(backend: Backend) -> None:
    backend.enqueue([new_job(delay=0.3)])
    fetch(backend)
    start = time.monotonic()
    backend.wait_for_work(["default"], 10, threading.Event())
    assert 0.2 < time.monotonic() - start < 2.0
    assert wait_for(lambda: fetch(backend), timeout=2)


def test_wait_for_work_returns_when_woken(backend: Backend) -> None:
    wake = threading.Event()
    threading.Timer(0.05, wake.set).start()
    start = time.monotonic()
    backend.wait_for_work(["default"], 10, wake)
    assert time.monotonic() - start < 2.0


def test_every_transition_an_engine_makes_is_in_the_table() -> None:
    # the verbs above drive each of these; the table is what ARCHITECTURE.md draws
    assert JobState.QUEUED in TRANSITIONS[JobState.RUNNING]  # rescue, release
    assert JobState.SCHEDULED in TRANSITIONS[JobState.RUNNING]  # retry later
    assert all(JobState.QUEUED in TRANSITIONS[s] for s in (JobState.FAILED, JobState.CANCELLED))
