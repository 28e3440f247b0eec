"""What only the PostgreSQL engine does or goes through: enqueue inside the app's transaction,
versioned migrations, killed connections and a server crash. The shared semantics are proven on
PostgreSQL by the conformance suite."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from conveyor import BackendError, ConfigurationError, Conveyor, JobNotFound, JobState
from conveyor.backends.postgres.engine import migrations
from conveyor.worker import Worker
from tests.conformance import worker_app
from tests.conformance.test_worker import running_worker
from tests.conftest import wait_for
from tests.engines.outage import crash_and_restart_loses_nothing
from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return f"{postgres_server.url}?schema=p{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tapp(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_URL", url)
    app = worker_app.app
    app.close()
    app.url = url
    yield app
    app.close()


def plain_url(url: str) -> str:
    return url.split("?", 1)[0]


def test_enqueue_in_the_apps_transaction_commits_and_rolls_back_with_it(tapp: Conveyor, url: str) -> None:
    # Why PostgreSQL only: the other engines cannot share the application's transaction.
    with psycopg.connect(plain_url(url)) as conn:
        with conn.transaction():
            kept = worker_app.add.with_options(connection=conn).delay(20, 22)
            batch = worker_app.add.with_options(connection=conn).map([(1, 1), (2, 2)])
            assert kept.record.state == JobState.QUEUED  # the row this transaction wrote
            with pytest.raises(JobNotFound):
                tapp.get_job(kept.id)  # other connections (and workers) do not see it yet
        assert tapp.get_job(kept.id).status == JobState.QUEUED
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            dropped = worker_app.add.with_options(connection=conn).delay(1, 2)
            conn.execute("SELECT 1 / 0")
        with pytest.raises(JobNotFound):
            tapp.get_job(dropped.id)
    worker = Worker(tapp, burst=True)
    worker.run(install_signals=False)
    assert kept.result(timeout=5) == 42 and [j.result(timeout=5) for j in batch] == [2, 4]
    assert worker.processed == 3


def test_a_committed_enqueue_wakes_an_idle_worker_and_an_open_one_does_not(tapp: Conveyor, url: str) -> None:
    # Why PostgreSQL only: NOTIFY is transactional; the wake-up must come with the commit.
    with running_worker(tapp) as worker, psycopg.connect(plain_url(url)) as conn:
        job = worker_app.add.with_options(connection=conn).delay(2, 3)
        assert worker.fetched == 0
        conn.commit()
        assert job.result(timeout=5) == 5


def test_enqueue_through_a_sqlalchemy_session(tapp: Conveyor, url: str) -> None:
    engine = sqlalchemy.create_engine(plain_url(url).replace("postgresql://", "postgresql+psycopg://"))
    with Session(engine) as session:
        job = worker_app.add.with_options(connection=session.connection().connection.driver_connection).delay(1, 1)
        session.rollback()
        with pytest.raises(JobNotFound):
            tapp.get_job(job.id)
        job = worker_app.add.with_options(connection=session.connection().connection.driver_connection).delay(1, 1)
        session.commit()
    assert tapp.get_job(job.id).status == JobState.QUEUED
    engine.dispose()


def test_connection_option_is_refused_elsewhere_and_checked_here(tmp_path: Path, url: str) -> None:
    sqlite_app = Conveyor(f"sqlite:///{tmp_path}/jobs.db")
    task = sqlite_app.task(name="t")(lambda: None)
    with pytest.raises(ConfigurationError, match="needs a PostgreSQL store"):
        task.with_options(connection=object()).delay()
    pg_app = Conveyor(url)
    pg_task = pg_app.task(name="t")(lambda: None)
    with pytest.raises(BackendError, match="psycopg 3 connection"):
        pg_task.with_options(connection=object()).delay()
    pg_app.close()


EXPECTED_TABLES = {
    "jobs": {"seq", "id", "task", "queue", "priority", "state", "payload", "run_at", "enqueued_at", "attempts",
             "max_attempts", "timeout", "started_at", "finished_at", "expires_at", "lease_token",
             "lease_expires_at", "worker_id", "cancel_requested", "progress", "progress_message", "result",
             "errors"},
    "paused_queues": {"queue"},
    "locks": {"name", "owner", "expires_at"},
    "schedules": {"name", "last_tick", "paused", "last_job_id", "last_fired_at"},
    "migrations": {"version", "name", "applied_at"},
    "workers": {"id", "info", "last_seen", "expires_at"},
    "stats": {"minute", "queue", "completed", "failed", "retried", "started", "wait_total", "wait_max"},
}
EXPECTED_INDEXES = {"jobs_ready", "jobs_scheduled", "jobs_leases", "jobs_expires", "jobs_state"}


def schema_of(url: str, schema: str) -> tuple[dict[str, set[str]], set[str]]:
    with psycopg.connect(plain_url(url)) as conn:
        columns: dict[str, set[str]] = {}
        for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s", (schema,)):
            columns.setdefault(table, set()).add(column)
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                                                  "AND indexname NOT LIKE '%%pkey' AND indexname NOT LIKE '%%key'",
                                                  (schema,))}
    return columns, indexes


def test_migrations_on_an_empty_database_give_the_schema_the_code_expects(url: str) -> None:
    schema = url.rsplit("schema=", 1)[1]
    app = Conveyor(url)
    assert app.backend.applied_on_open == [version for version, _, _ in migrations()]  # type: ignore[attr-defined]
    assert schema_of(url, schema) == (EXPECTED_TABLES, EXPECTED_INDEXES)
    assert app.backend.migrate() == []  # type: ignore[attr-defined]
    app.close()


def test_migrating_from_the_previous_version_keeps_the_jobs(url: str) -> None:
    schema = url.rsplit("schema=", 1)[1]
    *older, (latest, _, _) = migrations()
    with psycopg.connect(plain_url(url)) as conn:  # a store as the previous conveyor left it
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.migrations (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, name, text in older:
            conn.execute(psycopg.sql.SQL(text).format(schema=psycopg.sql.Identifier(schema)))  # type: ignore[arg-type]
            conn.execute(f"INSERT INTO {schema}.migrations (version, name) VALUES (%s, %s)", (version, name))
        conn.execute(f"INSERT INTO {schema}.jobs (id, task, queue, priority, state, payload, run_at, enqueued_at, "
                     "max_attempts) VALUES ('old-1', 'add', 'default', 0, 'queued', '{\"args\":[1,2],\"kwargs\":{}}', "
                     "0, 0, 1)")
    app = Conveyor(url)
    assert app.backend.applied_on_open == [latest]  # type: ignore[attr-defined]
    assert schema_of(url, schema) == (EXPECTED_TABLES, EXPECTED_INDEXES)
    assert app.get_job("old-1").status == JobState.QUEUED
    app.close()


def test_processes_starting_together_migrate_once(url: str) -> None:
    code = "import sys; from conveyor import Conveyor; print(Conveyor(sys.argv[1]).backend.applied_on_open)"
    processes = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    applied = sorted((out for out, _ in outputs), key=len)
    assert applied == ["[]\n"] * 3 + [f"{[v for v, _, _ in migrations()]}\n"]


def test_conveyor_migrate_command(url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    first = subprocess.run([sys.executable, "-m", "conveyor.cli", "migrate", "--url", url], env=env,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "is at version 3: applied 1, 2, 3" in first.stdout, first.stderr
    again = subprocess.run([sys.executable, "-m", "conveyor.cli", "migrate", "--url", url], env=env,
                           capture_output=True, text=True, timeout=60)
    assert "is at version 3: nothing to apply" in again.stdout


def test_a_worker_vacuums_the_jobs_table_as_jobs_go_through(tapp: Conveyor, url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL-only: reclaim() is a VACUUM, which the other engines have no use for. Every claim
    leaves a dead entry at the head of jobs_ready until one runs (see PostgresBackend.reclaim)."""
    monkeypatch.setattr("conveyor.worker.worker._RECLAIM_JOBS", 20)
    monkeypatch.setattr("conveyor.worker.worker._RECLAIM_INTERVAL", 0.1)
    schema = url.split("schema=", 1)[1]

    def vacuums() -> int:
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            row = conn.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = %s "
                               "AND relname = 'jobs'", (schema,)).fetchone()
        return int(row[0]) if row else 0

    tapp.backend  # noqa: B018  (the schema exists before the first count)
    assert vacuums() == 0
    worker_app.add.map([(i, i) for i in range(50)])
    with running_worker(tapp) as worker:
        wait_for(lambda: worker.processed == 50, timeout=20)
        assert wait_for(lambda: vacuums() >= 1, timeout=10)
    assert tapp.counts()["default"] == {JobState.COMPLETED: 50}


def test_killed_connections_the_worker_carries_on(tapp: Conveyor, url: str) -> None:
    # Why PostgreSQL only: pg_terminate_backend is how a failover or an admin drops sessions.
    with running_worker(tapp, concurrency=4):
        assert worker_app.add.delay(1, 1).result(timeout=10) == 2
        with psycopg.connect(plain_url(url), autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE pid <> pg_backend_pid() AND datname = current_database()").fetchone()
        assert killed and killed[0] >= 2  # the pool's and the listener's
        jobs = [worker_app.add.delay(i, i) for i in range(20)]
        assert [job.result(timeout=20) for job in jobs] == [2 * i for i in range(20)]


def test_server_crash_and_restart_loses_nothing_committed(tmp_path: Path) -> None:
    # Why PostgreSQL only: SQLite has no server. The server stops without a checkpoint (immediate
    # shutdown, as in a crash) with jobs queued and running, and recovers on restart.
    server = PostgresServer().start()
    try:
        crash_and_restart_loses_nothing(f"{server.url}?schema=crash", tmp_path / "started.txt",
                                        lambda: server.stop(kill=True), server.start, "PostgreSQL")
    finally:
        server.remove()
