"""The producer's API on every engine: options, validation, bulk enqueue, handles, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import (
    ConfigurationError,
    Conveyor,
    JobNotFound,
    JobState,
    NoCurrentJob,
    PayloadTooLarge,
    ResultTimeout,
    SerializationError,
    UnknownTask,
    current_job,
)
from tests.conftest import wait_for


@pytest.fixture
def tasks(app: Conveyor) -> Any:
    class Tasks:
        @staticmethod
        @app.task(queue="emails", priority=3, max_retries=5, timeout=30)
        def send_welcome_email(to: str, username: str) -> dict[str, str]:
            return {"to": to, "username": username}

        @staticmethod
        @app.task(bind=True)
        def bound(self: Any, x: int) -> int:
            return x * 2

    return Tasks


def test_delay_returns_a_queued_job_with_the_tasks_defaults(app: Conveyor, tasks: Any) -> None:
    job = tasks.send_welcome_email.delay("ann@example.com", "ann")
    record = job.record
    assert (record.queue, record.priority, record.max_attempts, record.timeout) == ("emails", 3, 6, 30)
    assert job.status == JobState.QUEUED and job.created
    assert job.args == ["ann@example.com", "ann"] and job.kwargs == {}
    assert app.get_job(job.id).task_name.endswith("send_welcome_email")


def test_with_options_overrides_per_call(app: Conveyor, tasks: Any) -> None:
    job = tasks.send_welcome_email.with_options(delay=30, priority=10, queue="urgent", job_id="welcome-42",
                                                max_retries=1, timeout=5).delay("a@x", username="a")
    r = job.record
    assert (r.id, r.queue, r.priority, r.max_attempts, r.timeout, r.state) == (
        "welcome-42", "urgent", 10, 2, 5, JobState.SCHEDULED)
    assert r.run_at == pytest.approx(r.enqueued_at + 30, abs=0.01)
    assert job.kwargs == {"username": "a"}


def test_run_at_takes_an_aware_datetime(tasks: Any) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    job = tasks.send_welcome_email.with_options(run_at=when).delay("a@x", "a")
    assert job.record.run_at == pytest.approx(when.timestamp())
    assert job.status == JobState.SCHEDULED


def test_celery_apply_async_spelling(tasks: Any) -> None:
    job = tasks.send_welcome_email.apply_async(("a@x", "a"), countdown=60, task_id="c-1", queue="q")
    assert (job.id, job.queue, job.record.state) == ("c-1", "q", JobState.SCHEDULED)


def test_same_job_id_returns_the_existing_job(tasks: Any) -> None:
    first = tasks.send_welcome_email.with_options(job_id="once").delay("a@x", "a")
    second = tasks.send_welcome_email.with_options(job_id="once").delay("b@x", "b")
    assert second.id == first.id and not second.created and second.args == ["a@x", "a"]


def test_map_enqueues_in_batches_keeping_order(app: Conveyor, tasks: Any) -> None:
    items: list[Any] = [("a@x", "a"), {"to": "b@x", "username": "b"}, ["c@x", "c"]]
    jobs = tasks.send_welcome_email.map(items * 5, batch_size=4)
    assert len(jobs) == 15 and len({j.id for j in jobs}) == 15
    assert [j.record.payload for j in jobs[:3]] == [
        '{"args":["a@x","a"],"kwargs":{}}', '{"args":[],"kwargs":{"to":"b@x","username":"b"}}',
        '{"args":["c@x","c"],"kwargs":{}}']
    assert app.counts()["emails"] == {JobState.QUEUED: 15}


def test_map_stops_at_a_bad_item_with_the_batches_before_it_stored(app: Conveyor, tasks: Any) -> None:
    items: list[Any] = [("a@x", "a")] * 8 + [("c@x", datetime.now())] + [("d@x", "d")] * 3
    with pytest.raises(SerializationError, match="argument 'username'"):
        tasks.send_welcome_email.map(items, batch_size=4)
    # The two whole batches before the bad one are stored (an engine may still be storing the
    # second when the third fails to encode); none of the bad item's batch is.
    wait_for(lambda: app.counts().get("emails") == {JobState.QUEUED: 8}, timeout=5)
    assert {job.record.payload for job in app.jobs(queue="emails")} == {'{"args":["a@x","a"],"kwargs":{}}'}
    after = tasks.send_welcome_email.delay("e@x", "e")  # the store carries on, with nothing left over
    assert after.created and app.get_job(after.id).args == ["e@x", "e"]
    assert app.counts()["emails"] == {JobState.QUEUED: 9}


def test_map_with_options_applies_them_to_every_job(tasks: Any) -> None:
    jobs = tasks.send_welcome_email.with_options(priority=9, queue="bulk").map([("a", "a"), ("b", "b")])
    assert {(j.queue, j.record.priority) for j in jobs} == {("bulk", 9)}
    with pytest.raises(ConfigurationError, match="job_id"):
        tasks.send_welcome_email.with_options(job_id="x").map([("a", "a"), ("b", "b")])


def test_a_plain_call_runs_inline(tasks: Any, app: Conveyor) -> None:
    assert tasks.send_welcome_email("a@x", "a") == {"to": "a@x", "username": "a"}
    assert tasks.bound(21) == 42
    assert app.counts() == {}


def test_current_job_outside_a_worker_says_so() -> None:
    with pytest.raises(NoCurrentJob, match="inside a task"):
        current_job()


def test_unserialisable_argument_is_refused_naming_it(tasks: Any, app: Conveyor) -> None:
    with pytest.raises(SerializationError, match=r"argument 'username' \(position 1\).*datetime"):
        tasks.send_welcome_email.delay("a@x", datetime.now())
    with pytest.raises(SerializationError, match="argument 'username'"):
        tasks.send_welcome_email.delay("a@x", username={1, 2})
    with pytest.raises(SerializationError, match="position 0"):
        tasks.send_welcome_email.delay(float("nan"), "a")

    @app.task(bind=True)
    def bound(self: Any, user_id: int) -> None: ...

    with pytest.raises(SerializationError, match=r"argument 'user_id' \(position 0\)"):
        bound.delay(object())
    assert app.counts() == {}


def test_oversized_payload_is_refused(make_app: Any) -> None:
    app = make_app(max_payload=1000)

    @app.task
    def upload(data: str) -> None: ...

    with pytest.raises(PayloadTooLarge, match="1,000-byte limit"):
        upload.delay("x" * 2000)
    upload.delay("x" * 900)
    assert sum(app.counts()["default"].values()) == 1


def test_default_payload_limit_is_one_mebibyte(app: Conveyor) -> None:
    @app.task
    def upload(data: str) -> None: ...

    with pytest.raises(PayloadTooLarge):
        upload.delay("x" * (1024 * 1024))


@pytest.mark.parametrize(("options", "message"), [
    ({"delay": -1}, "delay=-1"),
    ({"priority": "high"}, "priority='high'"),
    ({"priority": 1.5}, "priority=1.5"),
    ({"run_at": datetime(2030, 1, 1)}, "naive"),
    ({"run_at": "tomorrow"}, "run_at='tomorrow'"),
    ({"queue": ""}, "queue=''"),
    ({"queue": "has space"}, "queue="),
    ({"job_id": ""}, "job_id=''"),
    ({"max_retries": -2}, "max_retries=-2"),
    ({"timeout": 0}, "timeout=0"),
])
def test_invalid_options_are_refused_where_given(tasks: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        tasks.send_welcome_email.with_options(**options)
    assert message in str(error.value)


def test_invalid_task_definitions_are_refused(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="retry_backoff"):
        app.task(retry_backoff="sometimes")(lambda: None)
    with pytest.raises(ConfigurationError, match="priority"):
        app.task(priority="urgent")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="unknown hook"):
        app.on("finished")  # type: ignore[arg-type]


def test_get_job_and_listing(app: Conveyor, tasks: Any) -> None:
    jobs = tasks.send_welcome_email.map([("a", "a")] * 3)
    tasks.bound.delay(1)
    assert [j.id for j in app.jobs(queue="emails")] == [j.id for j in reversed(jobs)]
    assert len(app.jobs(state="queued", limit=2)) == 2
    assert len(app.jobs(task=tasks.bound.name)) == 1
    with pytest.raises(ConfigurationError, match="state='lost'"):
        app.jobs(state="lost")
    with pytest.raises(JobNotFound):
        app.get_job("nope")


def test_result_times_out_while_the_job_waits(tasks: Any) -> None:
    job = tasks.send_welcome_email.delay("a", "a")
    with pytest.raises(ResultTimeout, match="still queued"):
        job.result(timeout=0.05)


def test_enqueue_by_name_reaches_unregistered_tasks(app: Conveyor) -> None:
    job = app.enqueue("billing.charge", [1], {"currency": "EUR"}, queue="billing")
    assert (job.task_name, job.queue, job.kwargs) == ("billing.charge", "billing", {"currency": "EUR"})
    with pytest.raises(UnknownTask, match=r"billing\.charge"):
        app.get_task("billing.charge")


def test_two_tasks_with_one_name_are_refused(app: Conveyor) -> None:
    app.task(name="dup")(lambda: 1)
    with pytest.raises(ConfigurationError, match="dup"):
        app.task(name="dup")(lambda: 2)


def test_search_and_delete_one_job(app: Conveyor, tasks: Any) -> None:
    ann = tasks.send_welcome_email.delay("ann@example.com", "ann")
    tasks.send_welcome_email.delay("bob@example.com", "bob")
    assert [j.id for j in app.jobs(search="ann@example")] == [ann.id]
    ann.delete()
    with pytest.raises(JobNotFound):
        app.get_job(ann.id)
    assert app.jobs(search="ann@example") == []


def test_bulk_actions_change_every_job_matching_the_filter_at_once(app: Conveyor, tasks: Any) -> None:
    doubles = tasks.bound.map([(i,) for i in range(120)])
    email = tasks.send_welcome_email.delay("a@x", "a")
    assert app.cancel_jobs(queue="default") == 120
    assert {j.refresh().status for j in doubles} == {JobState.CANCELLED}
    assert email.refresh().status == JobState.QUEUED
    assert app.retry_jobs(state="cancelled", task=tasks.bound.name) == 120
    assert {j.refresh().status for j in doubles} == {JobState.QUEUED}
    assert app.retry_jobs(state="cancelled") == 0
    assert app.delete_jobs(task=tasks.bound.name) == 120
    assert [j.id for j in app.jobs()] == [email.id]


def test_matching_job_ids_reads_every_page_and_stops_at_enqueued_before(app: Conveyor, tasks: Any) -> None:
    first = tasks.bound.map([(i,) for i in range(600)])  # more than one page of the store's listing
    cutoff = max(app.backend.get(j.id).enqueued_at for j in first)
    later = tasks.bound.delay(600)
    tasks.send_welcome_email.delay("a@x", "a")
    assert sorted(app.matching_job_ids(task=tasks.bound.name)) == sorted([j.id for j in first] + [later.id])
    assert sorted(app.matching_job_ids(task=tasks.bound.name, enqueued_before=cutoff)) == sorted(j.id for j in first)
    assert app.matching_job_ids(state="failed") == []


def test_bulk_actions_skip_jobs_they_cannot_change(app: Conveyor, tasks: Any) -> None:
    waiting = tasks.bound.delay(1)
    running_id = tasks.bound.delay(2).id
    [running] = app.backend.fetch(["default"], 1, worker_id="w", lease_seconds=30)
    assert running.id == waiting.id  # FIFO: the first one is running now
    assert app.delete_jobs(queue="default") == 1  # the running one stays
    assert [j.id for j in app.jobs()] == [waiting.id]
    assert app.get_job(waiting.id).status == JobState.RUNNING and running_id != waiting.id
