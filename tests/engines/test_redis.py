"""What only the Redis engine can go through. The conformance suite proves the shared semantics on
Redis; these tests break Redis itself: its script cache, its client connections, the server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import BackendError, ConfigurationError, Conveyor, JobState
from conveyor.backends.base import Claim, FetchReply, Finish
from tests.conformance import worker_app
from tests.conformance.test_worker import running_worker
from tests.conftest import wait_for
from tests.engines.outage import crash_and_restart_loses_nothing
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


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
    with running_worker(tapp, concurrency=4):
        first = worker_app.add.map([(i, 1) for i in range(50)])
        assert [job.result(timeout=10) for job in first] == [i + 1 for i in range(50)]
        admin.script_flush()
        second = worker_app.add.map([(i, 2) for i in range(50)])
        assert [job.result(timeout=10) for job in second] == [i + 2 for i in range(50)]
    admin.close()


@pytest.mark.parametrize("fault", ["script cache flushed", "connection killed"])
def test_a_pipelined_map_survives_a_fault_and_stores_each_job_once(tapp: Conveyor, redis_server: RedisServer,
                                                                    fault: str) -> None:
    # Why Redis only: map sends each batch before reading the reply to the last (a pipeline); the
    # batches not yet confirmed when the script cache or the connection goes must go again, once.
    admin = redis.Redis(port=redis_server.port)
    worker_app.add.delay(0, 0)  # opens this thread's script connection
    if fault == "script cache flushed":
        admin.script_flush()
    else:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    jobs = worker_app.add.map([(i, i) for i in range(2500)], batch_size=1000)
    assert len({job.id for job in jobs}) == 2500 and all(job.created for job in jobs)
    assert [job.args for job in jobs] == [[i, i] for i in range(2500)]
    assert tapp.counts()["default"] == {JobState.QUEUED: 2501}
    admin.close()


@pytest.mark.parametrize("fault", ["script cache flushed", "connection killed"])
def test_a_fetch_sent_in_the_background_survives_a_fault_and_claims_once(tapp: Conveyor, redis_server: RedisServer,
                                                                         fault: str) -> None:
    # Why Redis only: only this engine sends a worker's next call before reading its reply (on a
    # connection of its own); after a flushed script cache or a lost connection it must go again,
    # and its jobs be claimed once.
    admin = redis.Redis(port=redis_server.port)
    backend = tapp.backend
    ids = [job.id for job in worker_app.add.map([(i, i) for i in range(6)])]
    first = backend.send_finish_and_fetch([], ["default"], 2, worker_id="w1", lease_seconds=30)
    assert first.wait()[1] == 2  # opens the background connection
    if fault == "script cache flushed":
        admin.script_flush()
    else:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    [one, two] = first.records()
    finishes = [Finish(job.id, job.lease_token or "", JobState.COMPLETED, result="1") for job in (one, two)]
    reply = backend.send_finish_and_fetch(finishes, ["default"], 3, worker_id="w1", lease_seconds=30)
    assert reply.wait() == ([JobState.COMPLETED, JobState.COMPLETED], 3)
    assert [job.id for job in reply.records()] == ids[2:5]
    assert tapp.counts()["default"] == {JobState.COMPLETED: 2, JobState.RUNNING: 3, JobState.QUEUED: 1}
    admin.close()


@pytest.mark.parametrize("fault", ["none", "script cache flushed", "connection killed"])
def test_a_waiting_workers_claim_goes_out_with_the_wake_up_and_survives_a_fault(
        tapp: Conveyor, redis_server: RedisServer, fault: str) -> None:
    # Why Redis only: only this engine's subscriber thread sends a waiting worker's claim the
    # moment an enqueue's message comes (on the worker's connection), before the worker is awake;
    # after a flushed script cache or a lost connection, the worker's read must send it again.
    admin = redis.Redis(port=redis_server.port)
    backend = tapp.backend
    ready, go = threading.Event(), threading.Event()
    replies: list[FetchReply | None] = []

    def worker() -> None:
        reply = backend.send_finish_and_fetch([], ["default"], 5, worker_id="w1", lease_seconds=30)
        assert reply.wait() == ([], 0)  # opens the connection the claim goes out on
        ready.set()
        go.wait(5)
        replies.append(backend.wait_for_work(["default"], 10, threading.Event(), Claim(5, "w1", 30.0)))

    waiter = threading.Thread(target=worker)
    waiter.start()
    assert ready.wait(5)
    if fault == "script cache flushed":
        admin.script_flush()
    elif fault == "connection killed":
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    go.set()
    wait_for(lambda: backend._wake_listener().waiting() == 1, timeout=5)
    job = worker_app.add.delay(1, 1)
    waiter.join(5)
    reply, = replies
    assert reply is not None
    assert reply.wait() == ([], 1)
    assert [(record.id, record.state, record.worker_id) for record in reply.records()] == \
        [(job.id, JobState.RUNNING, "w1")]
    admin.close()


def test_worker_connections_killed_the_worker_carries_on(tapp: Conveyor, redis_server: RedisServer) -> None:
    # Why Redis only: a network store drops connections (CLIENT KILL stands in for a proxy or
    # failover). Workers must reconnect, including their wake-up subscriber, and never stop consuming.
    admin = redis.Redis(port=redis_server.port)
    def subscribers() -> int:
        return len(admin.client_list(_type="pubsub"))

    with running_worker(tapp, concurrency=4):
        assert worker_app.add.delay(1, 1).result(timeout=10) == 2
        assert subscribers() >= 1
        for kind in ("normal", "pubsub"):
            admin.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")
        wait_for(subscribers, timeout=10)  # the wake-up subscriber is back
        jobs = [worker_app.add.delay(i, i) for i in range(20)]
        assert [job.result(timeout=15) for job in jobs] == [2 * i for i in range(20)]
    admin.close()


def test_queue_members_whose_job_cannot_be_read_never_block_the_queue(tapp: Conveyor,
                                                                    redis_server: RedisServer) -> None:
    # Why Redis only: a script that fails half-way keeps the writes it made (Redis has no rollback;
    # an ACL refusing a command mid-script does this), so a queue can hold an id whose job was never
    # written, or metadata something else overwrote. The SQL engines roll such a write back.
    admin = redis.Redis(port=redis_server.port, decode_responses=True)
    keys = tapp.backend.keys  # type: ignore[attr-defined]
    first = "0" * 32  # sorts before any real member of equal priority
    admin.zadd(keys.queued("default"), {f"{first}ghost": 0, f"{first}garbled": 0})
    admin.hset(keys.jobs, "garbled", "{not json")
    admin.zadd(keys.scheduled("default"), {"ghost-scheduled": 0})  # long due
    job = worker_app.add.delay(2, 3)
    with running_worker(tapp, concurrency=1):
        assert job.result(timeout=10) == 5
    assert admin.zrange(keys.queued("default"), 0, -1) == []
    assert admin.zrange(keys.scheduled("default"), 0, -1) == []
    admin.close()


def test_server_restart_with_aof_loses_nothing(tmp_path: Path) -> None:
    # Why Redis only: SQLite has no server to restart. With appendonly on, an enqueue that returned
    # survives a crash of the server (SIGKILL); it restarts on the same port and directory and
    # replays its append-only file.
    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    try:
        crash_and_restart_loses_nothing(f"{server.url}?namespace=restart", tmp_path / "started.txt",
                                        lambda: server.stop(kill=True), server.start, "cannot reach Redis")
    finally:
        server.stop()


def test_url_options_and_errors(redis_server: RedisServer) -> None:
    app = Conveyor(f"{redis_server.url}?namespace=urls&socket_timeout=5&health_check_interval=10")
    assert app.backend.enqueue([]) == []
    app.close()
    with pytest.raises(ConfigurationError, match="namespace"):
        Conveyor(f"{redis_server.url}?namespace=a:b").backend  # noqa: B018
    # TLS to a plain port: the handshake waits for a reply that never comes, for the connect timeout
    # (redis-py 8.2 and newer; the socket timeout before that), and only once.
    started = time.monotonic()
    with pytest.raises(BackendError, match="speaking TLS on that port"):
        Conveyor(f"rediss://127.0.0.1:{redis_server.port}/0?socket_timeout=1&socket_connect_timeout=1").backend  # noqa: B018
    assert time.monotonic() - started < 5, "a first contact that timed out was retried"
    unused = free_port()  # nothing listens there
    with pytest.raises(BackendError, match=rf"cannot reach Redis at redis://127.0.0.1:{unused}/0"):
        Conveyor(f"redis://127.0.0.1:{unused}/0").backend  # noqa: B018
    with pytest.raises(BackendError, match=r"redis://ann:\*\*\*@127.0.0.1"):
        Conveyor(f"redis://ann:secret@127.0.0.1:{redis_server.port}/0").backend  # noqa: B018
