"""What only the Redis engine can go through. The conformance suite proves the shared semantics on
Redis; these tests break Redis itself: its script cache, its client connections, the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from conveyor import BackendError, ConfigurationError, Conveyor, JobState
from conveyor.worker import Worker
from tests.conformance import worker_app
from tests.conftest import wait_for
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker_thread(app: Conveyor, **options: object) -> Iterator[Worker]:
    worker = Worker(app, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


@pytest.fixture
def tapp(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> Iterator[Conveyor]:
    url = f"{redis_server.url}?namespace=r{abs(hash(request.node.nodeid))}"
    monkeypatch.setenv("CONVEYOR_URL", url)
    app = worker_app.app
    app.close()
    app.url = url
    yield app
    app.close()


def test_script_cache_flushed_mid_run(tapp: Conveyor, redis_server: RedisServer) -> None:
    # Why Redis only: SQLite has no script cache. A failover or SCRIPT FLUSH empties it; the
    # engine must load its scripts again (NOSCRIPT) rather than fail the worker or the producer.
    admin = redis.Redis(port=redis_server.port)
    with worker_thread(tapp, concurrency=4):
        first = worker_app.add.map([(i, 1) for i in range(50)])
        assert [job.result(timeout=10) for job in first] == [i + 1 for i in range(50)]
        admin.script_flush()
        second = worker_app.add.map([(i, 2) for i in range(50)])
        assert [job.result(timeout=10) for job in second] == [i + 2 for i in range(50)]
    admin.close()


def test_worker_connections_killed_the_worker_carries_on(tapp: Conveyor, redis_server: RedisServer) -> None:
    # Why Redis only: a network store drops connections (CLIENT KILL stands in for a proxy or
    # failover). Workers must reconnect, including their wake-up subscriber, and never stop consuming.
    admin = redis.Redis(port=redis_server.port)
    def subscribers() -> int:
        return len(admin.client_list(_type="pubsub"))

    with worker_thread(tapp, concurrency=4):
        assert worker_app.add.delay(1, 1).result(timeout=10) == 2
        assert subscribers() >= 1
        for kind in ("normal", "pubsub"):
            admin.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")
        wait_for(subscribers, timeout=10)  # the wake-up subscriber is back
        jobs = [worker_app.add.delay(i, i) for i in range(20)]
        assert [job.result(timeout=15) for job in jobs] == [2 * i for i in range(20)]
    admin.close()


def test_server_restart_with_aof_loses_nothing(tmp_path: Path) -> None:
    # Why Redis only: SQLite has no server to restart. With appendonly on, an enqueue that returned
    # survives a crash of the server; a job running through the outage is neither lost nor
    # recorded twice; the worker rides out the outage and the producer reconnects.
    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    url = f"{server.url}?namespace=restart"
    producer = Conveyor(url)
    ledger = tmp_path / "started.txt"
    env = {**os.environ, "CONVEYOR_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.conformance.worker_app:app", "-c", "4",
         "--lease", "5", "--heartbeat", "0.5", "--log-level", "ERROR"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        running = [producer.enqueue("mark_then_nap", [str(ledger), 1.5]) for _ in range(4)]
        queued = [producer.enqueue("add", [i, 0]) for i in range(30)]
        wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) == 4, timeout=20)
        server.stop(kill=True)  # the server dies with jobs queued and running
        with pytest.raises(BackendError, match="cannot reach Redis"):
            producer.enqueue("add", [0, 0])
        server.start()  # same port, same directory: it replays its append-only file
        after = [producer.enqueue("add", [i, 100]) for i in range(10)]
        for job in running:
            assert job.result(timeout=30) == 1, "ran once, its outcome recorded once"
        assert [job.result(timeout=30) for job in queued] == list(range(30))
        assert [job.result(timeout=30) for job in after] == [i + 100 for i in range(10)]
        assert len(ledger.read_text().split()) == 4, "no job started twice"
        assert producer.counts()["default"] == {JobState.COMPLETED: 44}
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=30)[1].decode()
        producer.close()
        server.stop()
    assert process.returncode == 0, stderr


def test_url_options_and_errors(redis_server: RedisServer) -> None:
    app = Conveyor(f"{redis_server.url}?namespace=urls&socket_timeout=5&health_check_interval=10")
    assert app.backend.enqueue([]) == []
    app.close()
    with pytest.raises(ConfigurationError, match="namespace"):
        Conveyor(f"{redis_server.url}?namespace=a:b").backend  # noqa: B018
    unused = free_port()  # nothing listens there
    with pytest.raises(BackendError, match=rf"cannot reach Redis at redis://127.0.0.1:{unused}/0"):
        Conveyor(f"redis://127.0.0.1:{unused}/0").backend  # noqa: B018
    with pytest.raises(BackendError, match=r"redis://ann:\*\*\*@127.0.0.1"):
        Conveyor(f"redis://ann:secret@127.0.0.1:{redis_server.port}/0").backend  # noqa: B018
