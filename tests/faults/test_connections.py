"""Dropped connections (issue 7, scenario 4), on the two server engines: every second for 20 s the
server drops every worker's connections (CLIENT KILL of normal and pub/sub clients on Redis,
pg_terminate_backend on PostgreSQL) while two workers drain jobs. SQLite has no connection to drop.
Pass: no worker crashes or needs a restart, nothing is lost, no job runs twice at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from tests.faults.harness import Scenario


def dropper(engine: str, url: str) -> Callable[[], int]:
    """A function that drops every other client's connections now; returns how many it dropped."""
    plain = url.split("?", 1)[0]
    if engine == "redis":
        admin = redis.Redis.from_url(plain)

        def drop_redis() -> int:
            return sum(int(admin.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes"))
                       for kind in ("normal", "pubsub"))
        return drop_redis

    def drop_postgres() -> int:
        with psycopg.connect(plain, autocommit=True) as admin:
            row = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE pid <> pg_backend_pid() AND datname = current_database()").fetchone()
        return int(row[0]) if row else 0
    return drop_postgres


@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ["redis", "postgres"])
def test_connections_dropped_every_second_for_20_seconds(engine: str, engine_url: str, tmp_path: Path) -> None:
    scenario = Scenario(engine_url, tmp_path)
    try:
        scenario.enqueue(6_000, 0.02)
        drop = dropper(engine, engine_url)
        dropped = 0
        with scenario.workers(2, "-c", "4", "--lease", "5", "--heartbeat", "1") as workers:
            end = time.monotonic() + 20
            while time.monotonic() < end:
                time.sleep(1)  # the scenario's clock: a drop every second
                dropped += drop()
                assert all(p.poll() is None for p in workers.processes), "a worker died"
            scenario.wait_finished(timeout=120)
            assert all(p.poll() is None for p in workers.processes), "a worker died"
        verdict = scenario.verdict()
        print(f"\n{dropped} connections dropped: {verdict.summary()}")
        assert dropped >= 20
        assert verdict.lost == [] and verdict.unexpected == [] and verdict.overlapping == []
        assert verdict.completed == 6_000
    finally:
        scenario.close()
