"""What every fault scenario does: enqueue ledgered jobs, run real worker processes that it can
kill, freeze and restart, wait for the store to say every job finished, and check the ledger."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import Conveyor, JobState
from conveyor.job import FINISHED_STATES
from tests.conftest import wait_for
from tests.faults import fault_app
from tests.faults.ledger import Ledger, Verdict, check

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.faults.fault_app:app"


@dataclass
class Workers:
    """Worker processes of one scenario, by slot; a slot can be killed and started again."""

    scenario: Scenario
    options: Sequence[str]
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: dict[int, float] = field(default_factory=dict)  # pid -> when it was killed
    exited: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, slot: int | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "worker", APP, "--log-level", "WARNING", *self.options],
            cwd=ROOT, env={**os.environ, **self.scenario.env, **self.env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        if slot is None:
            self.processes.append(process)
        else:
            self.exited.append(self.processes[slot])
            self.processes[slot] = process
        return process

    def kill(self, slot: int) -> None:
        process = self.processes[slot]
        process.send_signal(signal.SIGKILL)
        self.kills[process.pid] = time.time()
        process.wait(timeout=10)

    def wait_death(self, slot: int, timeout: float = 30) -> int:
        """Wait for a worker that kills itself; its unfinished runs end no later than now."""
        process = self.processes[slot]
        code = process.wait(timeout=timeout)
        self.kills[process.pid] = time.time()
        return code

    def stderr(self) -> str:
        """Everything the finished processes wrote to stderr (call after stop())."""
        return "".join(p.stderr.read().decode() if p.stderr else "" for p in self.exited)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.exited += self.processes
        self.processes = []


class Scenario:
    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.ledger_path = directory / "ledger.db"
        self.ledger = Ledger(self.ledger_path)
        self.env = {"CONVEYOR_URL": url, "CONVEYOR_LEDGER": str(self.ledger_path)}
        self.app: Conveyor = fault_app.app  # the workers' app, pointed at this scenario's store
        self.app.close()
        self.app.url = url
        self.enqueued: list[str] = []

    def enqueue(self, count: int, seconds: float, *, fail_first: bool = False) -> list[str]:
        ids: list[str] = []
        for start in range(0, count, 1000):
            batch = fault_app.work.map([(seconds, fail_first)] * min(1000, count - start))
            ids += [job.id for job in batch]
        self.enqueued += ids
        return ids

    def run_producers(self, count: int, jobs_each: int, directory: Path,
                      timeout: float) -> tuple[dict[str, int], list[str]]:
        """Run `count` tests.faults.producer processes at once, each enqueueing `jobs_each` jobs plus the
        1,000 ids they all share, and wait for them; each must exit 0. Returns how many producers
        created each id (a shared id: exactly one should have) and the producers' stderr. The ids
        become this scenario's `enqueued`."""
        outputs = [directory / f"producer-{n}.txt" for n in range(count)]
        producers = [subprocess.Popen([sys.executable, "-m", "tests.faults.producer", str(jobs_each), str(out)],
                                      cwd=ROOT, env={**os.environ, **self.env}, stderr=subprocess.PIPE)
                     for out in outputs]
        errors: list[str] = []
        for producer in producers:
            _, stderr = producer.communicate(timeout=timeout)
            errors.append(stderr.decode())
            assert producer.returncode == 0, errors[-1]
        created: dict[str, int] = {}
        for out in outputs:
            for job_id, made in (line.split() for line in out.read_text().splitlines()):
                created[job_id] = created.get(job_id, 0) + int(made)
        self.enqueued = list(created)
        return created, errors

    def write_payload(self, job_id: str, payload: bytes) -> None:
        """Overwrite one job's stored payload with raw bytes, behind conveyor's back (through the
        engine's own connection, which knows where the store is)."""
        backend: Any = self.app.backend
        if self.url.startswith("sqlite"):
            with sqlite3.connect(backend.path) as db:  # CAST keeps invalid UTF-8 a TEXT value
                db.execute("UPDATE conveyor_jobs SET payload = CAST(? AS TEXT) WHERE id = ?", (payload, job_id))
        elif self.url.startswith("redis"):
            backend._client.hset(backend.keys.payloads, job_id, payload)
        else:  # PostgreSQL text is valid UTF-8 by construction: the bytes arrive as replacement characters
            text = payload.decode("utf-8", errors="replace").replace("\x00", "")
            backend._query("UPDATE {schema}.jobs SET payload = %s WHERE id = %s", (text, job_id))

    def states(self) -> dict[str, JobState]:
        records = self.app.backend.list_jobs(limit=len(self.enqueued) + 1000)
        return {record.id: record.state for record in records}

    def finished(self) -> bool:
        counts = self.app.counts()
        done = sum(n for queue in counts.values() for state, n in queue.items() if state in FINISHED_STATES)
        return done >= len(self.enqueued)

    def wait_finished(self, timeout: float) -> None:
        assert wait_for(self.finished, timeout=timeout, interval=0.2), f"not every job finished: {self.app.counts()}"

    @contextmanager
    def workers(self, count: int, *options: str, env: dict[str, str] | None = None) -> Iterator[Workers]:
        workers = Workers(self, options, env or {})
        for _ in range(count):
            workers.start()
        try:
            yield workers
        finally:
            workers.stop()

    def verdict(self, kills: dict[int, float] | None = None) -> Verdict:
        return check(self.enqueued, self.states(), self.ledger.runs(), kills)

    def close(self) -> None:
        self.app.close()
