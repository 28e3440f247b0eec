"""The dashboard in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, never a
downloaded browser) headless against a dashboard served by uvicorn on loopback, with real workers
running the jobs, on every engine. The tests also make the screenshots in docs/images when
CONVEYOR_SCREENSHOTS names that folder."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from conveyor import Conveyor, JobFailed, JobState, current_job
from conveyor.dashboard import create_dashboard
from tests.conformance.test_worker import running_worker
from tests.conftest import wait_for
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (as root)",
                pytrace=False)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: make test installs it")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def serving(app: Conveyor, **options: Any) -> Iterator[str]:
    """The dashboard on a free loopback port, in a thread of this process; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_dashboard(app, **options), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def shop(app: Conveyor, tmp_path: Path) -> Any:
    markers = tmp_path

    def wait_for_marker(name: str) -> None:
        deadline = time.monotonic() + 15  # bounded, so a failed test never leaves a worker stuck
        while not (markers / name).exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    class Shop:
        @staticmethod
        @app.task(name="emails.deliver", queue="emails", max_retries=0)
        def deliver(to: str) -> str:
            if not (markers / "smtp-up").exists():
                raise ConnectionRefusedError(f"smtp.example.com refused the connection for {to}")
            return f"sent to {to}"

        @staticmethod
        @app.task(name="media.resize", queue="media")
        def resize(image: str) -> str:
            current_job().set_progress(25, "decoding")
            wait_for_marker("decoded")
            current_job().set_progress(75, "encoding")
            wait_for_marker("encoded")
            return f"{image}.thumb.png"

        @staticmethod
        @app.task(name="media.noop", queue="media")
        def noop(n: int) -> int:
            return n

    app.schedule("nightly-report", Shop.noop, cron="0 3 * * *", tz="Europe/Berlin", args=(0,))
    app.schedule("sync-stock", Shop.noop, every=300, args=(1,))
    Shop.markers = markers  # type: ignore[attr-defined]
    return Shop


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any, str], None]:
    """Save a page's screenshot; into CONVEYOR_SCREENSHOTS (docs/images) on the SQLite run."""
    folder = os.environ.get("CONVEYOR_SCREENSHOTS")
    engine = request.getfixturevalue("engine")

    def take(page: Any, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if folder and engine == "sqlite":
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(folder) / f"dashboard-{name}.png")

    return take


def test_a_failed_job_retried_from_the_page_runs_and_turns_completed(
        app: Conveyor, shop: Any, browser: Any, screenshot: Callable[[Any, str], None]) -> None:
    job = shop.deliver.delay("ann@example.com")
    with running_worker(app, queues=["emails", "media"], concurrency=4), serving(app) as url:
        with pytest.raises(JobFailed):
            job.result(timeout=10)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{url}/jobs?state=failed")
        row = page.locator(f'tr[data-job="{job.id}"]')
        expect(row).to_contain_text("failed")
        screenshot(page, "jobs")
        row.get_by_role("link", name=job.id).click()
        expect(page.locator("#job-state")).to_have_text("failed")
        expect(page.locator("details.error")).to_contain_text("smtp.example.com refused the connection")
        screenshot(page, "job")
        (shop.markers / "smtp-up").touch()
        page.get_by_role("link", name="Retry").click()
        expect(page.locator(".question")).to_contain_text(f"Retry job {job.id}")
        page.get_by_role("button", name="Retry").click()
        expect(page.locator(".notice")).to_contain_text("queued to run now")
        expect(page.locator("#job-state")).to_have_text("completed", timeout=10_000)
        expect(page.locator("#job-result")).to_contain_text("sent to ann@example.com")
        page.close()


def test_a_progress_bar_moves_without_a_reload(app: Conveyor, shop: Any, browser: Any) -> None:
    job = shop.resize.delay("cat.png")
    with running_worker(app, queues=["media"], concurrency=2), serving(app) as url:
        page = browser.new_page()
        page.goto(f"{url}/jobs/{job.id}")
        expect(page.locator("#live-status")).to_have_text("live")  # server-sent events
        expect(page.locator("#job-progress")).to_have_attribute("value", "25", timeout=10_000)
        page.evaluate("window.sameDocument = true")
        (shop.markers / "decoded").touch()
        expect(page.locator("#job-progress")).to_have_attribute("value", "75", timeout=10_000)
        expect(page.locator("dl.facts")).to_contain_text("encoding")
        (shop.markers / "encoded").touch()
        expect(page.locator("#job-state")).to_have_text("completed", timeout=10_000)
        assert page.evaluate("window.sameDocument") is True  # never reloaded
        page.close()


def test_a_queue_paused_from_the_page_stops_being_worked(
        app: Conveyor, shop: Any, browser: Any, screenshot: Callable[[Any, str], None]) -> None:
    done = shop.noop.map([(n,) for n in range(200)])
    refused = shop.deliver.map([(f"user{n}@example.com",) for n in range(20)])
    with serving(app) as url:
        with running_worker(app, queues=["media", "emails"], concurrency=4):
            wait_for(lambda: all(job.status in (JobState.COMPLETED, JobState.FAILED) for job in done + refused),
                     timeout=30)
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            page.goto(url)
            page.locator('tr[data-queue="media"]').get_by_role("link", name="Pause").click()
            page.get_by_role("button", name="Pause").click()
            expect(page.locator(".notice")).to_have_text("Queue 'media' paused.")
            expect(page.locator('tr[data-queue="media"]')).to_contain_text("paused")
            held = shop.noop.delay(2)
            # A fetch takes the oldest due job across the worker's queues, so this later job
            # completing shows that the worker looked and passed over the paused queue's job.
            (shop.markers / "smtp-up").touch()
            assert shop.deliver.delay("bo@example.com").result(timeout=10) == "sent to bo@example.com"
            assert held.status == JobState.QUEUED
            page.locator('tr[data-queue="media"]').get_by_role("link", name="Resume").click()
            page.get_by_role("button", name="Resume").click()
            assert held.result(timeout=10) == 2
        page.goto(url)  # the stopped worker has sent its last totals: the charts show them
        expect(page.locator("svg rect.completed").first).to_be_attached()
        screenshot(page, "queues")
        page.close()


def test_an_action_without_the_csrf_token_is_refused(app: Conveyor, shop: Any, browser: Any) -> None:
    job = shop.noop.delay(5)
    with serving(app) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{url}/confirm?action=cancel-job&id={job.id}")  # the browser holds a token now
        response = context.request.post(f"{url}/act", form={"action": "cancel-job", "id": job.id, "next": "/"})
        assert response.status == 403 and "CSRF" in response.text()
        assert job.status == JobState.QUEUED
        page.get_by_role("button", name="Cancel").click()  # the real form carries it
        expect(page.locator(".notice")).to_contain_text(f"Job {job.id} cancelled")
        assert job.status == JobState.CANCELLED
        context.close()


def test_without_credentials_the_dashboard_is_refused_when_auth_is_on(app: Conveyor, browser: Any) -> None:
    with serving(app, password="correct horse") as url:
        # Refusals are read through the browser's request API: a page would stop at Chromium's
        # own authentication error instead of showing the response.
        anonymous = browser.new_context()
        refused = anonymous.request.get(url)
        assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Basic")
        anonymous.close()
        wrong = browser.new_context(http_credentials={"username": "admin", "password": "battery staple"})
        assert wrong.request.get(url).status == 401
        wrong.close()
        signed_in = browser.new_context(http_credentials={"username": "admin", "password": "correct horse"})
        page = signed_in.new_page()
        assert page.goto(url).status == 200
        expect(page.locator("h1")).to_have_text("Queues")
        signed_in.close()


def test_pages_update_by_polling_where_streams_are_off(
        app: Conveyor, shop: Any, browser: Any, screenshot: Callable[[Any, str], None]) -> None:
    with running_worker(app, queues=["media", "emails"], concurrency=2) as worker, serving(app) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 600})
        page.goto(f"{url}/workers?live=poll")
        expect(page.locator("#live-status")).to_have_text("polling")
        expect(page.locator(f'tr[data-worker="{worker.id}"]')).to_contain_text("media, emails")
        job = shop.resize.delay("dog.png")
        expect(page.locator(f'tr[data-worker="{worker.id}"]')).to_contain_text(job.id, timeout=10_000)
        screenshot(page, "workers")
        page.goto(f"{url}/schedules")
        expect(page.locator('tr[data-schedule="nightly-report"]')).to_contain_text("cron 0 3 * * * (Europe/Berlin)")
        screenshot(page, "schedules")
        (shop.markers / "decoded").touch()
        (shop.markers / "encoded").touch()
        assert job.result(timeout=10) == "dog.png.thumb.png"
        wait_for(lambda: worker.processed >= 1)
        page.close()
