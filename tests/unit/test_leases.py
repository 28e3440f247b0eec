"""Lease arithmetic with an injected clock: when a lease expires, how heartbeats move it, when a
delayed job falls due. The engine takes `now` from the clock, so no test here sleeps."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conveyor.backends import Lease, Retention
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.job import JobState, NewJob


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(tmp_path: Path, clock: FakeClock) -> SQLiteBackend:
    return SQLiteBackend(tmp_path / "jobs.db", clock=clock, retention=Retention(completed=60))


def job(delay: float = 0.0, max_attempts: int = 3) -> NewJob:
    return NewJob(id=uuid.uuid4().hex, task="t", queue="q", priority=0, payload="{}", max_attempts=max_attempts,
                  timeout=None, delay=delay)


def test_lease_expires_exactly_lease_seconds_after_the_claim(backend: SQLiteBackend, clock: FakeClock) -> None:
    backend.enqueue([job()])
    [claimed] = backend.fetch(["q"], 1, worker_id="w", lease_seconds=30)
    assert claimed.lease_expires_at == clock.now + 30
    clock.now += 30
    assert backend.rescue_expired() == []  # at the instant of expiry the lease still holds
    clock.now += 0.001
    assert [r.id for r in backend.rescue_expired()] == [claimed.id]


def test_heartbeat_moves_the_expiry_from_the_heartbeat_time(backend: SQLiteBackend, clock: FakeClock) -> None:
    backend.enqueue([job()])
    [claimed] = backend.fetch(["q"], 1, worker_id="w", lease_seconds=30)
    clock.now += 25
    backend.heartbeat([Lease(claimed.id, claimed.lease_token or "")], 30)
    clock.now += 29  # 54 s after the claim, 29 s after the heartbeat
    assert backend.rescue_expired() == []
    clock.now += 2
    assert len(backend.rescue_expired()) == 1


def test_delayed_job_falls_due_at_its_time(backend: SQLiteBackend, clock: FakeClock) -> None:
    [record] = backend.enqueue([job(delay=90)])
    assert record.state == JobState.SCHEDULED and record.run_at == clock.now + 90
    clock.now += 89.999
    assert backend.fetch(["q"], 1, worker_id="w", lease_seconds=30) == []
    clock.now += 0.001
    assert len(backend.fetch(["q"], 1, worker_id="w", lease_seconds=30)) == 1


def test_retention_starts_when_the_job_finishes(backend: SQLiteBackend, clock: FakeClock) -> None:
    from conveyor.backends import Finish

    backend.enqueue([job()])
    [claimed] = backend.fetch(["q"], 1, worker_id="w", lease_seconds=30)
    clock.now += 10
    backend.finish([Finish(claimed.id, claimed.lease_token or "", JobState.COMPLETED, result="1")])
    clock.now += 59.9
    assert backend.prune() == 0
    clock.now += 0.1
    assert backend.prune() == 1
