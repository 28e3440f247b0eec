"""A model-based test (issue 7, scenario 9), on every engine: hypothesis plays random sequences of
enqueue, fetch, finish (completed, failed, retry now, retry later, hand back), finish with a stale
lease, heartbeat, lease expiry and rescue, cancel, retry and delete against the engine and against
a small reference model of the state machine written here; after every step each job's state,
attempts and cancel flag, and the counts by queue and state, must agree with the model."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor import Conveyor
from conveyor.backends import Backend, Finish, Lease
from conveyor.errors import InvalidTransition
from conveyor.job import AttemptError, JobState, NewJob

S = JobState
MAX_ATTEMPTS = 2
LONG, SHORT = 60.0, 0.001  # lease seconds: held for the whole example, or lapsed at once


@dataclass
class ModelJob:
    id: str
    order: int  # enqueue order
    priority: int
    state: JobState
    attempts: int = 0
    cancel_requested: bool = False
    run_at: float = 0.0  # read back from the engine: its clock decides due times
    token: str | None = None
    lease: float = 0.0
    stale_tokens: list[str] = field(default_factory=list)


def fresh_url(engine_url: str, directory: Path) -> str:
    """A store of its own for each example."""
    tag = uuid.uuid4().hex[:10]
    if engine_url.startswith("sqlite"):
        return f"sqlite:///{directory / f'model-{tag}.db'}"
    base, _, _ = engine_url.partition("?")
    return f"{base}?{'namespace' if engine_url.startswith('redis') else 'schema'}=m{tag}"


class JobMachine(RuleBasedStateMachine):
    url_factory: Iterator[str]

    def __init__(self) -> None:
        super().__init__()
        self.app = Conveyor(next(self.url_factory))
        self.backend: Backend = self.app.backend
        self.jobs: dict[str, ModelJob] = {}

    def teardown(self) -> None:
        self.app.close()

    # -- helpers ------------------------------------------------------------------------------

    def _sync_run_at(self, job: ModelJob) -> None:
        record = self.backend.get(job.id)
        assert record is not None
        job.run_at = record.run_at

    def _in(self, *states: JobState, lease: float | None = None) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.state in states and (lease is None or j.lease == lease)]

    def _pick(self, data: st.DataObject, jobs: list[ModelJob]) -> ModelJob:
        return data.draw(st.sampled_from(sorted(jobs, key=lambda j: j.order)))

    # -- rules --------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.backend.counts() == {}

    @rule(priority=st.integers(0, 2), delayed=st.booleans(), count=st.integers(1, 3))
    def enqueue(self, priority: int, delayed: bool, count: int) -> None:
        new = [NewJob(id=uuid.uuid4().hex, task="t", queue="q", priority=priority, payload='{"args":[],"kwargs":{}}',
                      max_attempts=MAX_ATTEMPTS, timeout=None, delay=3600.0 if delayed else 0.0) for _ in range(count)]
        for record in self.backend.enqueue(new):
            job = ModelJob(record.id, len(self.jobs), priority, S.SCHEDULED if delayed else S.QUEUED)
            job.run_at = record.run_at
            self.jobs[job.id] = job

    @rule(limit=st.integers(1, 3), short=st.booleans())
    def fetch(self, limit: int, short: bool) -> None:
        lease = SHORT if short else LONG
        waiting = sorted(self._in(S.QUEUED), key=lambda j: (-j.priority, j.run_at, j.order))
        claimed = self.backend.fetch(["q"], limit, worker_id="w", lease_seconds=lease)
        assert [r.id for r in claimed] == [j.id for j in waiting[:limit]], "claim order"
        for record in claimed:
            job = self.jobs[record.id]
            job.state, job.attempts, job.token, job.lease = S.RUNNING, job.attempts + 1, record.lease_token, lease

    @precondition(lambda self: self._in(S.RUNNING, lease=LONG))
    @rule(data=st.data(), outcome=st.sampled_from(["completed", "failed", "retry now", "retry later", "hand back"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        job = self._pick(data, self._in(S.RUNNING, lease=LONG))
        error = AttemptError(job.attempts, "E", "boom", "", time.time())
        target, finish = {
            "completed": (S.COMPLETED, Finish(job.id, job.token or "", S.COMPLETED, result="1")),
            "failed": (S.FAILED, Finish(job.id, job.token or "", S.FAILED, error=error)),
            "retry now": (S.QUEUED, Finish(job.id, job.token or "", S.SCHEDULED, error=error, delay=0.0)),
            "retry later": (S.SCHEDULED, Finish(job.id, job.token or "", S.SCHEDULED, error=error, delay=3600.0)),
            "hand back": (S.QUEUED, Finish(job.id, job.token or "", S.QUEUED, release=True)),
        }[outcome]
        if job.cancel_requested and target in (S.QUEUED, S.SCHEDULED):
            target = S.CANCELLED  # a cancel requested while it ran wins over a retry
        assert self.backend.finish([finish]) == [target]
        if outcome == "hand back":
            job.attempts -= 1
        job.state, job.cancel_requested, job.stale_tokens = target, False, [*job.stale_tokens, job.token or ""]
        job.token = None
        self._sync_run_at(job)

    @precondition(lambda self: any(j.stale_tokens for j in self.jobs.values()))
    @rule(data=st.data())
    def finish_with_a_stale_lease(self, data: st.DataObject) -> None:
        job = self._pick(data, [j for j in self.jobs.values() if j.stale_tokens])
        token = data.draw(st.sampled_from(job.stale_tokens))
        assert self.backend.finish([Finish(job.id, token, S.COMPLETED, result="2")]) == [None]
        assert self.backend.set_progress(Lease(job.id, token), 50, None) is False

    @precondition(lambda self: self._in(S.RUNNING))
    @rule()
    def heartbeat(self) -> None:
        held = self._in(S.RUNNING, lease=LONG)
        stale = [Lease(j.id, t) for j in self.jobs.values() for t in j.stale_tokens[-1:]]
        reply = self.backend.heartbeat([Lease(j.id, j.token or "") for j in held] + stale, LONG)
        assert reply.lost == {lease.job_id for lease in stale} - {j.id for j in held}
        assert reply.cancel_requested == {j.id for j in held if j.cancel_requested}

    @precondition(lambda self: self._in(S.RUNNING, lease=SHORT))
    @rule()
    def leases_lapse_and_are_rescued(self) -> None:
        time.sleep(0.005)  # past the short leases, on any engine's clock
        rescued = {r.id: r.state for r in self.backend.rescue_expired()}
        expected = {}
        for job in self._in(S.RUNNING, lease=SHORT):
            if job.cancel_requested:
                job.state = S.CANCELLED
            elif job.attempts >= MAX_ATTEMPTS:
                job.state = S.FAILED
            else:
                job.state = S.QUEUED
            expected[job.id] = job.state
            job.cancel_requested, job.stale_tokens, job.token = False, [*job.stale_tokens, job.token or ""], None
            self._sync_run_at(job)
        assert rescued == expected

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self._pick(data, list(self.jobs.values()))
        if job.state in (S.COMPLETED, S.FAILED, S.CANCELLED):
            with pytest.raises(InvalidTransition):
                self.backend.cancel(job.id)
            return
        record = self.backend.cancel(job.id)
        if job.state == S.RUNNING:
            job.cancel_requested = True
            assert record.state == S.RUNNING and record.cancel_requested
        else:
            job.state = S.CANCELLED

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self._pick(data, list(self.jobs.values()))
        if job.state in (S.QUEUED, S.RUNNING):
            with pytest.raises(InvalidTransition):
                self.backend.retry_now(job.id)
            return
        self.backend.retry_now(job.id)
        if job.state != S.SCHEDULED:
            job.attempts = 0  # a finished job starts over with its full budget
        job.state = S.QUEUED
        self._sync_run_at(job)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job = self._pick(data, list(self.jobs.values()))
        if job.state == S.RUNNING:
            with pytest.raises(InvalidTransition):
                self.backend.delete(job.id)
            return
        self.backend.delete(job.id)
        del self.jobs[job.id]

    # -- what must hold after every step --------------------------------------------------------

    @invariant()
    def the_engine_agrees_with_the_model(self) -> None:
        for job in self.jobs.values():
            record = self.backend.get(job.id)
            assert record is not None, f"{job.id} vanished"
            assert (record.state, record.attempts, record.cancel_requested) == (
                job.state, job.attempts, job.cancel_requested), job
        counts: dict[JobState, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        assert self.backend.counts().get("q", {}) == counts


EXAMPLES = int(os.environ.get("CONVEYOR_MODEL_EXAMPLES") or 25)


@pytest.mark.timeout(600)
def test_every_engine_agrees_with_the_model_of_the_state_machine(engine_url: str, tmp_path: Path) -> None:
    def urls() -> Iterator[str]:
        while True:
            yield fresh_url(engine_url, tmp_path)

    JobMachine.url_factory = urls()
    run_state_machine_as_test(JobMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
