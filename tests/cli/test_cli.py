"""The `conveyor` command, run for real in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.conformance.worker_app:app"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def conveyor(*args: str, url: str | None = None, env: dict[str, str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    full_env = {**inherited, **(env or {}), **({"CONVEYOR_URL": url} if url else {})}
    return subprocess.run([sys.executable, "-m", "conveyor.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60, input=stdin)


def test_help_lists_the_commands() -> None:
    result = conveyor("--help")
    assert result.returncode == 0
    for command in ("worker", "scheduler", "cron", "enqueue", "info", "jobs", "queues", "demo"):
        assert command in result.stdout


def test_enqueue_work_and_inspect_round_trip(url: str) -> None:
    job_id = conveyor("enqueue", "add", "--args", "[2, 3]", "--app", APP, url=url).stdout.strip()
    assert len(job_id) == 32
    counts = json.loads(conveyor("info", "--json", url=url).stdout)
    assert counts["queues"]["default"]["queued"] == 1
    worked = conveyor("worker", APP, "--burst", "--log-format", "json", url=url)
    assert worked.returncode == 0, worked.stderr
    lines = [json.loads(line) for line in worked.stderr.splitlines() if line.startswith("{")]
    states = [(line["job_id"], line["previous"], line["state"]) for line in lines if line.get("job_id")]
    assert states == [(job_id, "queued", "running"), (job_id, "running", "completed")]
    shown = json.loads(conveyor("jobs", "show", job_id, "--json", url=url).stdout)
    assert shown["state"] == "completed" and shown["result"] == "5"
    listed = conveyor("jobs", "list", "--state", "completed", url=url)
    assert job_id in listed.stdout


def test_every_option_can_come_from_the_environment(url: str) -> None:
    job_id = conveyor("enqueue", "add", "--args", "[1, 1]", env={"CONVEYOR_APP": APP}, url=url).stdout.strip()
    result = conveyor("worker", env={"CONVEYOR_APP": APP, "CONVEYOR_BURST": "1", "CONVEYOR_QUEUES": "default"},
                      url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(conveyor("jobs", "show", job_id, "--json", url=url).stdout)["state"] == "completed"
    # flags without a short name read CONVEYOR_<COMMAND>_<FLAG>
    conveyor("enqueue", "add", "--args", "[2, 2]", env={"CONVEYOR_APP": APP}, url=url)
    listed = conveyor("jobs", "list", env={"CONVEYOR_JOBS_LIST_LIMIT": "1", "CONVEYOR_JOBS_LIST_AS_JSON": "1"}, url=url)
    assert len(json.loads(listed.stdout)) == 1


def test_cancel_retry_pause_and_purge(url: str) -> None:
    first = conveyor("enqueue", "add", "--args", "[1, 2]", "--delay", "3600", url=url).stdout.strip()
    second = conveyor("enqueue", "add", "--args", "[1, 2]", "--queue", "other", url=url).stdout.strip()
    assert "cancelled 1 job(s)" in conveyor("jobs", "cancel", first, url=url).stdout
    assert "retried 1 job(s)" in conveyor("jobs", "retry", "--state", "cancelled", url=url).stdout
    assert json.loads(conveyor("jobs", "show", first, "--json", url=url).stdout)["state"] == "queued"
    assert conveyor("queues", "pause", "other", url=url).returncode == 0
    assert json.loads(conveyor("info", "--json", url=url).stdout)["queues"]["other"]["paused"] is True
    conveyor("worker", APP, "-q", "default", "-q", "other", "--burst", url=url)
    assert json.loads(conveyor("jobs", "show", second, "--json", url=url).stdout)["state"] == "queued"
    conveyor("queues", "resume", "other", url=url)
    conveyor("worker", APP, "-q", "other", "--burst", url=url)
    assert "purged 2 job(s)" in conveyor("jobs", "purge", "--yes", url=url).stdout
    refused = conveyor("jobs", "purge", url=url, stdin="n\n")
    assert refused.returncode == 1


def test_errors_are_one_line_with_documented_exit_codes(url: str) -> None:
    queued = conveyor("enqueue", "add", "--args", "[1, 1]", "--app", APP, url=url).stdout.strip()
    cases = [
        (("jobs", "retry", queued), 1, "it is queued"),  # exists, in the wrong state: not "not found"
        (("worker", "no_such_module:app"), 1, "cannot import module 'no_such_module'"),
        (("worker", "tests.conformance:nothing"), 1, "no Conveyor app named 'nothing'"),
        (("enqueue", "nope", "--app", APP), 3, "no task named 'nope'"),
        (("jobs", "show", "missing"), 3, "no job with id 'missing'"),
        (("jobs", "cancel", "missing"), 3, "missing"),
        (("enqueue", "add", "--args", "{not json"), 2, "not valid JSON"),
        (("enqueue", "add", "--priority", "high"), 2, "high"),
        (("info", "--url", "mysql://x/y"), 1, "unknown store URL"),
    ]
    for args, code, message in cases:
        result = conveyor(*args, url=url)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


SCHEDULES = "tests.conformance.scheduler_app:app"


def test_cron_list_run_pause_resume(url: str) -> None:
    listed = json.loads(conveyor("cron", "list", "--app", SCHEDULES, "--json", url=url).stdout)
    assert [(s["name"], s["when"], s["paused"], s["last_job_id"]) for s in listed] == [
        ("every-second", "cron * * * * * * (UTC)", False, None)]
    assert listed[0]["next_run"] > listed[0]["last_tick"]
    job_id = conveyor("cron", "run", "every-second", "--app", SCHEDULES, url=url).stdout.strip()
    assert job_id.startswith("every-second@run-")
    assert conveyor("cron", "pause", "every-second", "--app", SCHEDULES, url=url).stdout == "paused every-second\n"
    text = conveyor("cron", "list", "--app", SCHEDULES, url=url).stdout
    assert "every-second" in text and "paused" in text and job_id in text
    assert conveyor("cron", "resume", "every-second", "--app", SCHEDULES, url=url).returncode == 0
    assert json.loads(conveyor("cron", "list", "-A", SCHEDULES, "--json", url=url).stdout)[0]["paused"] is False
    missing = conveyor("cron", "run", "nope", "--app", SCHEDULES, url=url)
    assert missing.returncode == 3 and missing.stderr.startswith("error: no schedule named 'nope'")


def test_scheduler_refuses_an_app_without_schedules(url: str) -> None:
    result = conveyor("scheduler", APP, url=url)
    assert result.returncode == 1 and "defines no schedules" in result.stderr


def test_dashboard_refuses_to_listen_beyond_loopback_without_a_password(url: str) -> None:
    result = conveyor("dashboard", APP, "--host", "0.0.0.0", url=url)
    assert result.returncode == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without authentication" in result.stderr
    assert "CONVEYOR_DASHBOARD_PASSWORD" in result.stderr


def test_dashboard_serves_with_the_password_from_the_environment(url: str) -> None:
    import base64
    import urllib.error
    import urllib.request

    from tests.conftest import wait_for
    from tests.servers import free_port

    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env = {**inherited, "CONVEYOR_URL": url, "CONVEYOR_DASHBOARD_PASSWORD": "s3cret"}
    server = subprocess.Popen([sys.executable, "-m", "conveyor.cli", "dashboard", APP, "--port", str(port),
                               "--read-only"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        def status(password: str | None) -> int | None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/")
            if password:
                request.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{password}".encode()).decode())
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return error.code
            except OSError:
                return None  # not listening yet

        assert wait_for(lambda: status(None), timeout=20) == 401
        assert status("s3cret") == 200
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
    assert f"on http://127.0.0.1:{port}/ (read-only, user 'admin')" in out


def test_backup_copies_a_sqlite_store_that_opens_as_a_store(url: str, tmp_path: Path) -> None:
    ids = [conveyor("enqueue", "add", "--args", f"[{i}, 1]", "--app", APP, url=url).stdout.strip() for i in range(3)]
    copy = tmp_path / "backups" / "cli-copy.db"
    copy.parent.mkdir()
    done = conveyor("backup", str(copy), url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backed up ") and str(copy) in done.stdout
    shown = json.loads(conveyor("jobs", "show", ids[2], "--json", url=f"sqlite:///{copy}").stdout)
    assert shown["state"] == "queued"
    assert json.loads(conveyor("info", "--json", url=f"sqlite:///{copy}").stdout)["queues"]["default"]["queued"] == 3


def test_backup_says_what_to_use_for_the_other_engines_and_refuses_the_store_itself(url: str, tmp_path: Path) -> None:
    onto_itself = conveyor("backup", url.removeprefix("sqlite:///"), url=url)
    assert onto_itself.returncode == 1 and "onto itself" in onto_itself.stderr
    redis = conveyor("backup", str(tmp_path / "x.db"), url="redis://127.0.0.1:1/0")
    assert redis.returncode == 1 and "redis-cli --rdb" in redis.stderr, redis.stderr
    assert "Traceback" not in redis.stderr
