"""The fault suite's ledger and its checker.

Jobs write their runs into a ledger outside the queue (a SQLite file of its own): job id, attempt,
process, start and end. After a scenario the checker holds the ledger against what the producer
enqueued and what the store says, and reports, as Jepsen's queue checker does: jobs lost (enqueued
but not completed), unexpected (run but never enqueued), duplicated (run more than once), and
overlapping runs of one job (two workers at once). A run whose process was killed has no end; the
scenario passes the kill times, which end those runs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.job import JobState


@dataclass(frozen=True)
class Run:
    job_id: str
    attempt: int
    pid: int
    started: float
    ended: float | None  # None: the process died (or froze) before the job returned
    ok: bool | None = None  # whether the job returned (rather than raised)


class Ledger:
    """Append-only runs, written by the jobs from any process or thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS runs (job_id TEXT NOT NULL, attempt INTEGER NOT NULL, "
                         "pid INTEGER NOT NULL, started REAL NOT NULL, ended REAL, ok INTEGER)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def start(self, job_id: str, attempt: int) -> int:
        cursor = self._conn().execute("INSERT INTO runs (job_id, attempt, pid, started) VALUES (?, ?, ?, ?)",
                                      (job_id, attempt, os.getpid(), time.time()))
        return int(cursor.lastrowid or 0)

    def end(self, run: int, ok: bool) -> None:
        self._conn().execute("UPDATE runs SET ended = ?, ok = ? WHERE rowid = ?", (time.time(), ok, run))

    def runs(self) -> list[Run]:
        rows = self._conn().execute("SELECT job_id, attempt, pid, started, ended, ok FROM runs ORDER BY started")
        return [Run(job_id, attempt, pid, started, ended, None if ok is None else bool(ok))
                for job_id, attempt, pid, started, ended, ok in rows]


@dataclass
class Verdict:
    enqueued: int
    completed: int
    runs: int
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)  # job id -> runs, where more than one
    overlapping: list[tuple[Run, Run]] = field(default_factory=list)
    finished_twice: list[str] = field(default_factory=list)  # two runs of one job both returned

    @property
    def extra_runs(self) -> int:
        return sum(n - 1 for n in self.duplicated.values())

    def summary(self) -> str:
        return (f"{self.enqueued} enqueued, {self.completed} completed, {self.runs} runs: {len(self.lost)} lost, "
                f"{len(self.unexpected)} unexpected, {len(self.duplicated)} run more than once "
                f"({self.extra_runs} extra runs), {len(self.overlapping)} overlapping pairs, "
                f"{len(self.finished_twice)} finished twice")


def check(enqueued: Iterable[str], states: Mapping[str, JobState], runs: list[Run],
          kills: Mapping[int, float] | None = None) -> Verdict:
    """`states`: the store's final state of each enqueued job; `kills`: pid -> when it was killed."""
    kills = kills or {}
    expected = set(enqueued)
    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    verdict = Verdict(len(expected), sum(1 for s in states.values() if s == JobState.COMPLETED), len(runs))
    verdict.lost = sorted(i for i in expected if states.get(i) != JobState.COMPLETED)
    verdict.unexpected = sorted(set(by_job) - expected)
    for job_id, job_runs in by_job.items():
        if len(job_runs) > 1:
            verdict.duplicated[job_id] = len(job_runs)
        if sum(bool(run.ok) for run in job_runs) > 1:
            verdict.finished_twice.append(job_id)
        latest: tuple[float, Run] | None = None  # the run that ends last among those started so far
        for run in sorted(job_runs, key=lambda run: run.started):
            if latest is not None and run.started < latest[0]:
                verdict.overlapping.append((latest[1], run))
            end = run.ended if run.ended is not None else kills.get(run.pid, float("inf"))
            if latest is None or end > latest[0]:
                latest = (end, run)
    return verdict
