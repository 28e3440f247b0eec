"""The dashboard's pages and actions through Starlette's test client, on every engine: what each
page shows, that every action asks first and needs the CSRF token, auth, read-only mode,
escaping, and mounting under a prefix."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from conveyor import Conveyor, JobState
from conveyor.dashboard import create_dashboard
from conveyor.dashboard.security import CSRF_COOKIE
from conveyor.job import NewJob
from tests.conformance.test_worker import running_worker
from tests.conftest import wait_for

EVIL = '<script>alert("x")</script>'
LOCAL = "http://127.0.0.1"  # without authentication the dashboard answers only on loopback names


@pytest.fixture
def shop(app: Conveyor) -> Any:
    class Shop:
        @staticmethod
        @app.task(name="emails.welcome", queue="emails", max_retries=0)
        def welcome(to: str) -> str:
            raise ValueError(f"no mailbox {to}")

        @staticmethod
        @app.task(name="media.resize")
        def resize(image: str) -> str:
            return image

    app.schedule("nightly", Shop.resize, cron="30 2 * * *", tz="Europe/Berlin", args=("all",))
    return Shop


@pytest.fixture
def client(app: Conveyor) -> Iterator[TestClient]:
    with TestClient(create_dashboard(app), base_url=LOCAL) as client:
        yield client


def fail(app: Conveyor, job_id: str, message: str = "boom") -> None:
    """Finish a job as failed through the store, as a worker would."""
    from conveyor.backends import Finish
    from conveyor.job import AttemptError

    record = app.get_job(job_id).record
    [claimed] = app.backend.fetch([record.queue], 1, worker_id="test", lease_seconds=30)
    assert claimed.id == job_id
    app.backend.finish([Finish(job_id, claimed.lease_token or "", JobState.FAILED,
                               error=AttemptError(1, "ValueError", message, "Traceback: " + message, 0.0))])


def confirm_and_act(client: TestClient, **query: str) -> Any:
    """Open an action's confirmation page, then submit its form as a browser would."""
    page = client.get("/confirm", params=query)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    return client.post("/act", data=fields, follow_redirects=False)


def test_every_page_renders_with_strict_security_headers(client: TestClient, app: Conveyor, shop: Any) -> None:
    job = shop.resize.delay("cat.png")
    for path in ("/", "/jobs", f"/jobs/{job.id}", "/schedules", "/workers", "/fragment/queues", "/static/dashboard.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_queues_page_counts_by_state_and_warns_when_no_worker_takes_a_queue(client: TestClient, app: Conveyor,
                                                                           shop: Any) -> None:
    shop.welcome.map([("a@x",), ("b@x",)])
    shop.resize.with_options(delay=60).delay("later.png")
    page = client.get("/").text
    emails = re.search(r'<tr data-queue="emails">(.*?)</tr>', page, re.DOTALL)
    assert emails and re.search(r">2</a></td>", emails.group(1))
    assert "No live worker takes from queue <strong>emails</strong>, which has 2 jobs waiting" in page
    assert "Jobs finished per minute" in page and "<svg" in page


def test_jobs_are_listed_filtered_searched_and_paginated(client: TestClient, app: Conveyor, shop: Any) -> None:
    shop.resize.map([(f"img-{n}.png",) for n in range(30)])
    shop.welcome.delay("ann@example.com")
    first = client.get("/jobs", params={"queue": "default"}).text
    assert first.count('<tr data-job=') == 25 and 'rel="next"' in first and "img-29.png" in first
    second = client.get("/jobs", params={"queue": "default", "page": "2"}).text
    assert second.count('<tr data-job=') == 5 and "img-0.png" in second and 'rel="prev"' in second
    found = client.get("/jobs", params={"q": "ann@example"}).text
    assert found.count('<tr data-job=') == 1 and "emails.welcome" in found
    assert client.get("/jobs", params={"state": "lost"}).status_code == 400


def test_searching_an_exact_id_opens_the_job(client: TestClient, shop: Any) -> None:
    job = shop.resize.delay("x.png")
    response = client.get("/jobs", params={"q": job.id}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job.id}"


def test_job_page_shows_arguments_errors_and_timeline_escaped(client: TestClient, app: Conveyor,
                                                              shop: Any) -> None:
    job = shop.welcome.delay(EVIL)
    fail(app, job.id, message=f"no mailbox {EVIL}")
    for page in (client.get(f"/jobs/{job.id}").text, client.get("/jobs").text):
        assert EVIL not in page
        assert "&lt;script&gt;" in page
    detail = client.get(f"/jobs/{job.id}").text
    assert "ValueError" in detail and "Traceback: no mailbox" in detail
    assert re.search(r"enqueued.*attempt 1 started.*failed", detail, re.DOTALL)
    missing = client.get("/jobs/no-such-job")
    assert missing.status_code == 404 and "No job with id" in missing.text


def test_schedules_page_shows_next_and_last_run(client: TestClient, app: Conveyor, shop: Any) -> None:
    page = client.get("/schedules").text
    assert "nightly" in page and "cron 30 2 * * * (Europe/Berlin)" in page and "never" in page
    response = confirm_and_act(client, action="run-schedule", name="nightly", next="/schedules")
    assert response.status_code == 303
    [status] = app.schedule_status()
    assert status.last_job_id is not None and status.last_job_id in client.get("/schedules").text
    confirm_and_act(client, action="pause-schedule", name="nightly", next="/schedules")
    assert app.schedule_status()[0].paused
    assert 'data-schedule="nightly"' in client.get("/schedules").text


def test_workers_page_shows_live_workers_and_their_jobs(client: TestClient, app: Conveyor, shop: Any) -> None:
    with running_worker(app, queues=["default", "emails"], concurrency=2) as worker:
        wait_for(lambda: app.workers(), timeout=10)
        page = client.get("/workers").text
        assert worker.id in page and "default, emails" in page and "thread \u00d7 2" in page
    assert "No worker is alive" in client.get("/workers").text


def test_an_action_asks_first_then_does_it_and_says_what_it_did(client: TestClient, app: Conveyor,
                                                                shop: Any) -> None:
    job = shop.welcome.delay("a@x")
    fail(app, job.id)
    question = client.get("/confirm", params={"action": "retry-job", "id": job.id, "next": f"/jobs/{job.id}"})
    assert f"Retry job {job.id} (emails.welcome, failed)?" in question.text
    assert app.get_job(job.id).status == JobState.FAILED  # asking changes nothing
    response = confirm_and_act(client, action="retry-job", id=job.id, next=f"/jobs/{job.id}")
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job.id}"
    assert app.get_job(job.id).status == JobState.QUEUED
    assert f"Job {job.id} queued to run now." in client.get(response.headers["location"]).text
    assert "queued to run now" not in client.get(f"/jobs/{job.id}").text  # the notice shows once


def test_bulk_actions_change_every_matching_job_in_one_go(client: TestClient, app: Conveyor, shop: Any) -> None:
    jobs = shop.welcome.map([(f"u{n}@x",) for n in range(60)])
    for job in jobs:
        fail(app, job.id)
    other = shop.resize.delay("keep.png")
    question = client.get("/confirm", params={"action": "retry-matching", "state": "failed", "next": "/jobs"})
    assert "Retry all 60 jobs matching state &#39;failed&#39;?" in question.text
    confirm_and_act(client, action="retry-matching", state="failed", next="/jobs?state=failed")
    assert {j.refresh().status for j in jobs} == {JobState.QUEUED}
    response = confirm_and_act(client, action="delete-matching", queue="emails", next="/jobs")
    assert "Deleted 60 jobs matching queue &#39;emails&#39;." in client.get(response.headers["location"]).text
    assert [j.id for j in app.jobs()] == [other.id]


def test_pause_and_resume_a_queue(client: TestClient, app: Conveyor, shop: Any) -> None:
    shop.resize.delay("a.png")
    confirm_and_act(client, action="pause-queue", queue="default", next="/")
    assert app.paused_queues() == {"default"}
    assert "paused</span>" in client.get("/").text
    confirm_and_act(client, action="resume-queue", queue="default", next="/")
    assert app.paused_queues() == set()


@pytest.mark.parametrize("forge", ["no token", "wrong token", "other site"])
def test_an_action_without_the_csrf_token_is_refused(client: TestClient, app: Conveyor, shop: Any,
                                                     forge: str) -> None:
    job = shop.resize.delay("a.png")
    client.get("/confirm", params={"action": "cancel-job", "id": job.id})  # the browser now holds a token
    token = client.cookies[CSRF_COOKIE]
    form = {"action": "cancel-job", "id": job.id, "next": "/"}
    headers = {}
    if forge == "wrong token":
        form["csrf"] = token[::-1]
    elif forge == "other site":
        form["csrf"] = token
        headers = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    response = client.post("/act", data=form, headers=headers, follow_redirects=False)
    assert response.status_code == 403 and "CSRF" in response.text
    assert app.get_job(job.id).status == JobState.QUEUED


@pytest.mark.parametrize("target", ["//evil.example/x", "/\t/evil.example", "https://evil.example", "/\\evil"])
def test_next_never_leads_off_the_dashboard(client: TestClient, shop: Any, target: str) -> None:
    job = shop.resize.delay("a.png")
    question = client.get("/confirm", params={"action": "cancel-job", "id": job.id, "next": target}).text
    assert 'href="/"' in question  # the "Go back" link
    response = confirm_and_act(client, action="cancel-job", id=job.id, next=target)
    assert response.headers["location"] == "/"


def test_without_authentication_only_loopback_names_are_answered(app: Conveyor) -> None:
    """A page elsewhere that rebinds its name to 127.0.0.1 (DNS rebinding) gets nothing."""
    with TestClient(create_dashboard(app), base_url="http://evil.example:8321") as client:
        refused = client.get("/")
        assert refused.status_code == 400 and "not allowed" in refused.text
    for base in ("http://localhost:8321", "http://127.0.0.1", "http://[::1]:8321"):
        with TestClient(create_dashboard(app), base_url=base) as client:
            assert client.get("/").status_code == 200, base
    with TestClient(create_dashboard(app, password="pw"), base_url="http://jobs.example.com") as client:
        assert client.get("/", headers=_basic("admin", "pw")).status_code == 200
    with TestClient(create_dashboard(app, allowed_hosts=["jobs.internal"]), base_url="http://jobs.internal") as c:
        assert c.get("/").status_code == 200


def test_bad_query_values_get_a_page_not_an_error(client: TestClient, app: Conveyor) -> None:
    app.backend.enqueue([NewJob(id="odd", task="t", queue="default", priority=0, payload='{"args": 5}',
                                max_attempts=1, timeout=None)])
    assert client.get("/jobs", params={"page": "99999999999999999999"}).status_code == 200
    assert client.get("/jobs", params={"page": "abc"}).status_code == 200
    assert "odd" in client.get("/jobs").text and client.get("/jobs/odd").status_code == 200


def test_a_bulk_action_leaves_jobs_enqueued_after_its_confirmation_alone(client: TestClient, app: Conveyor,
                                                                         shop: Any) -> None:
    shown = shop.resize.map([("a.png",), ("b.png",)])
    page = client.get("/confirm", params={"action": "cancel-matching", "queue": "default", "next": "/jobs"})
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    later = shop.resize.delay("c.png")
    client.post("/act", data=fields, follow_redirects=False)
    assert {job.refresh().status for job in shown} == {JobState.CANCELLED}
    assert later.refresh().status == JobState.QUEUED


def test_read_only_dashboard_shows_no_actions_and_refuses_them(app: Conveyor, shop: Any) -> None:
    job = shop.welcome.delay("a@x")
    fail(app, job.id)
    with TestClient(create_dashboard(app, read_only=True), base_url=LOCAL) as client:
        for path in ("/", "/jobs", f"/jobs/{job.id}", "/schedules"):
            page = client.get(path).text
            assert "/confirm?" not in page and "read-only" in page
        assert client.get("/confirm", params={"action": "retry-job", "id": job.id}).status_code == 403
        assert client.post("/act", data={"action": "retry-job", "id": job.id}).status_code == 403
    assert app.get_job(job.id).status == JobState.FAILED


def _basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_refuses_requests_without_the_password(app: Conveyor) -> None:
    with TestClient(create_dashboard(app, password="s3cret")) as client:
        refused = client.get("/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert client.get("/", headers=_basic("admin", "wrong")).status_code == 401
        assert client.get("/static/dashboard.css", headers=_basic("admin", "wrong")).status_code == 401
        assert client.get("/", headers=_basic("admin", "s3cret")).status_code == 200


@pytest.mark.parametrize("asynchronous", [False, True])
def test_authorize_hook_decides_per_request(app: Conveyor, asynchronous: bool) -> None:
    def allowed(request: Any) -> bool:
        return request.headers.get("x-user") == "ops"

    async def allowed_async(request: Any) -> bool:
        return allowed(request)

    with TestClient(create_dashboard(app, authorize=allowed_async if asynchronous else allowed)) as client:
        assert client.get("/").status_code == 403
        assert client.get("/", headers={"x-user": "ops"}).status_code == 200


def test_mounted_under_a_prefix_every_link_and_redirect_keeps_it(app: Conveyor, shop: Any) -> None:
    job = shop.resize.delay("a.png")
    site = Starlette(routes=[Mount("/admin/jobs", app=create_dashboard(app))])
    with TestClient(site, base_url=LOCAL) as client:
        page = client.get("/admin/jobs/").text
        assert 'href="/admin/jobs/static/dashboard.css"' in page and 'data-stream="/admin/jobs/stream/queues?' in page
        assert client.get("/admin/jobs/static/dashboard.css").status_code == 200
        detail = client.get(f"/admin/jobs/jobs/{job.id}").text
        assert f"/admin/jobs/confirm?action=cancel-job&amp;next=%2Fjobs%2F{job.id}&amp;id={job.id}" in detail
        question = client.get("/admin/jobs/confirm", params={"action": "cancel-job", "id": job.id,
                                                             "next": f"/jobs/{job.id}"})
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', question.text))
        response = client.post("/admin/jobs/act", data=fields, follow_redirects=False)
        assert response.headers["location"] == f"/admin/jobs/jobs/{job.id}"
    assert app.get_job(job.id).status == JobState.CANCELLED


def test_fragment_and_stream_carry_the_live_part_of_a_page(client: TestClient, app: Conveyor, shop: Any) -> None:
    job = shop.resize.delay("a.png")
    fragment = client.get("/fragment/job", params={"id": job.id}).text
    assert "<html" not in fragment and 'id="job-state">queued<' in fragment
    with client.stream("GET", "/stream/job", params={"id": job.id}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 1000"
        event = []
        for line in lines:
            if not line:
                if event:
                    break
                continue
            event.append(line.removeprefix("data: "))
    assert 'id="job-state">queued<' in "\n".join(event)
    assert client.get("/fragment/nothing").status_code == 404


def test_a_job_enqueued_by_name_for_a_task_this_app_lacks_still_shows(client: TestClient, app: Conveyor) -> None:
    [record] = app.backend.enqueue([NewJob(id="foreign-1", task="other.service.task", queue="default", priority=0,
                                           payload="not json at all", max_attempts=1, timeout=None)])
    assert "not json at all" in client.get("/jobs").text
    assert client.get(f"/jobs/{record.id}").status_code == 200
