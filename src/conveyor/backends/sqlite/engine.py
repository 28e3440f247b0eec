"""The embedded engine: one SQLite file in WAL mode, shared by every process on the machine.

Writes run in BEGIN IMMEDIATE transactions, so concurrent processes queue up on SQLite's
write lock (waiting up to `busy_timeout`) instead of failing half-way; each writer first takes
its turn (turn.py), so it is woken as the lock frees instead of sleeping in SQLite's busy
handler. Each thread gets its own connection. Workers learn of new work by watching
`PRAGMA data_version`, which changes when any other connection commits: a cheap in-memory read,
so idle workers wake within one poll interval of an enqueue without querying the jobs table.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from conveyor.backends.base import (
    STATS_RETENTION,
    Capabilities,
    Claim,
    FetchesNow,
    Finish,
    HeartbeatReply,
    Lease,
    MinuteStats,
    Retention,
    ScheduleState,
    WorkerInfo,
)
from conveyor.backends.shared import job_filter, record_from_values, refusal
from conveyor.backends.shared import record_from_row as _record
from conveyor.backends.sql_files import load_migrations, load_sql
from conveyor.backends.sqlite.turn import WriteTurn
from conveyor.backends.sqlite.watch import WATCHED_POLL, WalWatch
from conveyor.errors import BackendError, ConfigurationError
from conveyor.job import FINISHED_STATES, JobRecord, JobState, NewJob


def _lenient_text(value: bytes, decode: Callable[[bytes, str, str], str] = bytes.decode) -> str:
    """TEXT that is not UTF-8 (written behind conveyor's back) is read with its bytes escaped, so the
    worker fails that one job; sqlite3's default would fail every fetch that returns it."""
    return decode(value, "utf-8", "surrogateescape")


def _sql(name: str) -> str:
    return load_sql(__package__ or "conveyor.backends.sqlite", name)


def _schedule_state(row: sqlite3.Row) -> ScheduleState:
    return ScheduleState(name=row["name"], last_tick=row["last_tick"], paused=bool(row["paused"]),
                         last_job_id=row["last_job_id"], last_fired_at=row["last_fired_at"])


class SQLiteBackend(FetchesNow):
    capabilities = Capabilities(transactional_enqueue=False, shared_across_machines=False)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: Retention | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        poll_interval: float = 0.002,
        watch: bool = True,
        turn: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{path}"
        self.retention = retention or Retention()
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(f"synchronous={synchronous!r}: use one of normal, full, extra, off")
        self.poll_interval = poll_interval
        self.watch = watch
        self._watch: WalWatch | None = None
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._turn: WriteTurn | None = None
        self._ensure_schema()
        self._turn = WriteTurn.open(self.path) if turn else None

    # -- connections and transactions -------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise BackendError(f"the SQLite store {self.path} was closed; open a new Conveyor app")
            conn = self._connect()
            self._local.conn = conn
            self._local.data_version = None
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        if not self.path.parent.exists():
            raise BackendError(f"cannot open SQLite store {self.path}: the directory {self.path.parent} "
                               "does not exist; create it or change the URL")
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.text_factory = _lenient_text
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return conn

    def _translate(self, exc: sqlite3.Error) -> BackendError:
        text = str(exc)
        if self._disk_full(exc):
            return BackendError(f"the disk holding the SQLite store {self.path} is full, so this change was not "
                                f"stored: free space on that filesystem and try again (SQLite needs room to grow "
                                f"{self.path.name} and {self.path.name}-wal)")
        if "readonly" in text or "read-only" in text:
            return BackendError(f"the SQLite store {self.path} is read-only: give this process write access "
                                "to the file and its directory (SQLite writes -wal and -shm files beside it)")
        if "not a database" in text:
            return BackendError(f"{self.path} is not a SQLite database; point the URL at a new file or at a "
                                "conveyor store")
        if "locked" in text or "busy" in text:
            return BackendError(f"the SQLite store {self.path} stayed locked by another process for more than "
                                f"{self.busy_timeout:g}s; raise busy_timeout (?busy_timeout=60 in the URL) or "
                                "look for a process holding a long transaction")
        if "unable to open" in text:
            return BackendError(f"cannot open the SQLite store {self.path}: {text}; check the path and permissions")
        return BackendError(f"SQLite store {self.path}: {text}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic change: BEGIN IMMEDIATE takes the write lock up front, so the transaction
        never has to upgrade a read lock (which is what makes concurrent writers deadlock). The
        writer first waits for its turn (see turn.py), so it is woken when the lock is free."""
        # Without a turn (none here, or its holder kept it past busy_timeout), on to SQLite's lock.
        turn = self._turn if self._turn is not None and self._turn.acquire(self.busy_timeout) else None
        try:
            yield from self._transaction()
        finally:
            if turn is not None:
                turn.release()

    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """_write's transaction, a generator it delegates to (exceptions in the caller's block come in here)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            yield conn
            self._local.data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from exc
            raise

    def _disk_full(self, exc: sqlite3.Error) -> bool:
        """SQLITE_FULL; or an I/O error (growing the -shm file, say) on a filesystem with no room left."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
            return True
        if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
            with suppress(OSError):
                stat = os.statvfs(self.path.parent)
                return stat.f_bavail * stat.f_frsize < 64 * 1024
        return False

    def _ensure_schema(self) -> None:
        conn = self._conn()
        try:
            # Refuse a database that is not ours before changing anything in it (WAL mode sticks).
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"sqlite_sequence"} and "conveyor_meta" not in tables:
                raise BackendError(f"{self.path} is a SQLite database that conveyor did not create "
                                   f"(it has tables {sorted(tables)[:5]}); use a separate file for jobs")
            mode = self._switch_to_wal(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        if mode.lower() != "wal":
            raise BackendError(f"could not switch {self.path} to WAL mode (got {mode!r}); "
                               "SQLite stores need a local filesystem that supports shared memory")
        with self._write() as conn:
            self._migrate(conn)

    def _switch_to_wal(self, conn: sqlite3.Connection) -> str:
        """Switching a new file to WAL needs it to itself. When another process opening the same
        new file holds a read lock, SQLite answers SQLITE_BUSY at once instead of calling the busy
        handler (waiting could deadlock inside SQLite), so this waits here, up to busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                busy = (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause * random.uniform(0.5, 1.5))  # jittered, so the openers do not retry in step
            pause = min(pause * 2, 0.05)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the migrations this store lacks, in the caller's transaction."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = 0
        if "conveyor_meta" in tables:
            row = conn.execute("SELECT value FROM conveyor_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        elif tables - {"sqlite_sequence"}:
            raise BackendError(f"{self.path} is a SQLite database that conveyor did not create "
                               f"(it has tables {sorted(tables)[:5]}); use a separate file for jobs")
        known = load_migrations(__package__ or "conveyor.backends.sqlite")
        if version > known[-1][0]:
            raise BackendError(f"{self.path} holds conveyor schema version {version}, newer than this conveyor "
                               f"knows ({known[-1][0]}); upgrade conveyor")
        for number, _, text in known:
            if number > version:
                for statement in text.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR REPLACE INTO conveyor_meta (key, value) VALUES ('schema_version', ?)",
                              (str(number),))

    def close(self) -> None:
        self._closed = True
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.close()
        with self._connections_lock:
            watch, self._watch = self._watch, None
        if watch is not None and watch.pid == os.getpid():
            watch.close()
        with self._connections_lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Copy the store to `path` as one consistent snapshot while producers and workers keep running.

        A plain `cp` of the file is not a backup: commits not yet checkpointed are only in the -wal
        file, and a checkpoint writing into the main file during the copy tears it. This uses SQLite's
        online backup API, all pages in one step inside one read transaction, so the copy holds every
        change committed before the call and none after the snapshot. Writers are not blocked. The
        copy is written beside `path` and renamed into place, so `path` is either the old file or the
        whole new copy; it is a self-contained database (rollback journal, no -wal file), and opening
        it with conveyor makes it a store again.
        """
        target = Path(path)
        if target.resolve() == self.path.resolve():
            raise ConfigurationError(f"cannot back up the SQLite store {self.path} onto itself; choose another path")
        if not target.parent.is_dir():
            raise BackendError(f"cannot write the backup {target}: the directory {target.parent} does not exist")
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot write the backup {target}: {exc}") from exc
        try:
            source = self._conn()
            try:
                source.backup(copy)  # pages=-1: every page in one step, so one snapshot
                copy.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.Error as exc:  # only the copy is written to, so a full disk is the copy's
                raise self._backup_error(target, exc) from exc
            copy.close()
            os.replace(partial, target)
        except BaseException:
            copy.close()
            for leftover in (partial, Path(f"{partial}-journal"), Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                with suppress(OSError):
                    leftover.unlink()
            raise
        return target

    @staticmethod
    def _backup_error(target: Path, exc: sqlite3.Error) -> BackendError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
            return BackendError(f"the disk holding the backup {target} is full; the store is unchanged and "
                                "no backup was written: free space there or choose another directory")
        return BackendError(f"cannot write the backup {target}: {exc}")

    # -- producer verbs ---------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        with self._write() as conn:
            return self._insert(conn, jobs)

    def enqueue_batches(self, batches: Iterable[Sequence[NewJob]]) -> list[JobRecord]:
        return [record for batch in batches for record in self.enqueue(batch)]  # in-process: nothing to overlap

    def _insert(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Store new jobs inside the caller's write transaction; stored ids return their job."""
        now = self.now()
        ids = [job.id for job in jobs]
        existing = {
            row["id"]: _record(row) for row in conn.execute(
                "SELECT * FROM conveyor_jobs WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),))
        }
        created: dict[str, JobRecord] = {}
        rows: list[dict[str, Any]] = []
        for job in jobs:
            if job.id in existing or job.id in created:
                continue
            run_at = job.run_at if job.run_at is not None else now + job.delay
            params = {"id": job.id, "task": job.task, "queue": job.queue, "priority": job.priority,
                      "payload": job.payload, "run_at": run_at, "now": now,
                      "max_attempts": job.max_attempts, "timeout": job.timeout}
            rows.append(params)
            created[job.id] = JobRecord(
                id=job.id, task=job.task, queue=job.queue, priority=job.priority,
                state=JobState.SCHEDULED if run_at > now else JobState.QUEUED,
                payload=job.payload, run_at=run_at, enqueued_at=now, attempts=0,
                max_attempts=job.max_attempts, timeout=job.timeout)
        conn.executemany(_sql("enqueue"), rows)
        for record in existing.values():
            record.created = False
        return [created.get(job_id) or existing[job_id] for job_id in ids]

    # -- worker verbs -----------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, *, worker_id: str, lease_seconds: float) -> list[JobRecord]:
        if limit <= 0:
            return []
        with self._write() as conn:
            return self._claim(conn, queues, limit, worker_id, lease_seconds)

    def finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                         worker_id: str, lease_seconds: float) -> tuple[list[JobState | None], list[JobRecord]]:
        with self._write() as conn:
            applied = self._finish(conn, finishes)
            return applied, self._claim(conn, queues, limit, worker_id, lease_seconds) if limit > 0 else []

    def _claim(self, conn: sqlite3.Connection, queues: Sequence[str], limit: int, worker_id: str,
               lease_seconds: float) -> list[JobRecord]:
        now = self.now()
        conn.execute(_sql("promote"), {"now": now})
        paused = {row[0] for row in conn.execute("SELECT queue FROM conveyor_paused_queues")}
        candidates = [tuple(row) for queue in dict.fromkeys(queues) if queue not in paused
                      for row in conn.execute(_sql("fetch"), {"queue": queue, "limit": limit})]
        if not candidates:
            return []
        # (seq, priority, run_at): best priority first, then due time, then enqueue order.
        chosen = sorted(candidates, key=lambda c: (-c[1], c[2], c[0]))[:limit]
        positional = conn.cursor()
        positional.row_factory = None
        rows = positional.execute(_sql("claim"), {
            "seqs": json.dumps([c[0] for c in chosen]), "token": secrets.token_hex(8),
            "worker_id": worker_id, "now": now, "lease_expires_at": now + lease_seconds,
        }).fetchall()
        records = [record_from_values(row) for row in rows]
        records.sort(key=lambda r: (-r.priority, r.run_at, r.enqueued_at))
        return records

    def heartbeat(self, leases: Sequence[Lease], lease_seconds: float) -> HeartbeatReply:
        if not leases:
            return HeartbeatReply(frozenset(), frozenset())
        with self._write() as conn:
            rows = conn.execute(_sql("heartbeat"), {
                "leases": json.dumps([[lease.job_id, lease.token] for lease in leases]),
                "lease_expires_at": self.now() + lease_seconds,
            }).fetchall()
        held = {row["id"] for row in rows}
        return HeartbeatReply(
            lost=frozenset(lease.job_id for lease in leases) - held,
            cancel_requested=frozenset(row["id"] for row in rows if row["cancel_requested"]),
        )

    def finish(self, finishes: Sequence[Finish]) -> list[JobState | None]:
        with self._write() as conn:
            return self._finish(conn, finishes)

    def _finish(self, conn: sqlite3.Connection, finishes: Sequence[Finish]) -> list[JobState | None]:
        if not finishes:
            return []
        now = self.now()
        batch = [[item.job_id, item.token, str(item.state), item.result,
                  item.error.to_json() if item.error else None, item.delay, int(item.release),
                  now + self.retention.for_state(item.state) if item.state in FINISHED_STATES else None]
                 for item in finishes]
        recorded = {row[0]: JobState(row[1]) for row in conn.execute(_sql("finish"), {
            "finishes": json.dumps(batch), "now": now, "cancelled_expires_at": now + self.retention.cancelled,
        })}
        return [recorded.get(item.job_id) for item in finishes]

    def set_progress(self, lease: Lease, progress: float, message: str | None) -> bool:
        with self._write() as conn:
            cursor = conn.execute(_sql("set_progress"), {
                "id": lease.job_id, "token": lease.token, "progress": progress, "message": message})
            return cursor.rowcount == 1

    def rescue_expired(self) -> list[JobRecord]:
        now = self.now()
        with self._write() as conn:
            rows = conn.execute(_sql("rescue_expired"), {
                "now": now, "failed_expires_at": now + self.retention.failed,
                "cancelled_expires_at": now + self.retention.cancelled,
            }).fetchall()
        return [_record(row) for row in rows]

    # -- operator verbs ---------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        now = self.now()
        with self._write() as conn:
            row = conn.execute(_sql("cancel"), {
                "id": job_id, "now": now, "expires_at": now + self.retention.cancelled}).fetchone()
            if row is None:
                self._refuse(conn, job_id, "cancel")
        return _record(row)

    def retry_now(self, job_id: str) -> JobRecord:
        with self._write() as conn:
            row = conn.execute(_sql("retry_now"), {"id": job_id, "now": self.now()}).fetchone()
            if row is None:
                self._refuse(conn, job_id, "retry")
        return _record(row)

    @staticmethod
    def _refuse(conn: sqlite3.Connection, job_id: str, action: str) -> None:
        row = conn.execute("SELECT state FROM conveyor_jobs WHERE id = ?", (job_id,)).fetchone()
        raise refusal(job_id, action, row["state"] if row else None)

    def get(self, job_id: str) -> JobRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM conveyor_jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list_jobs(self, *, state: JobState | None = None, queue: str | None = None, task: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        where, params = job_filter(state, queue, task, search, param="?", like="LIKE")
        with self._read() as conn:
            rows = conn.execute(f"SELECT * FROM conveyor_jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                                (*params, limit, offset)).fetchall()
        return [_record(row) for row in rows]

    def delete(self, job_id: str) -> JobRecord:
        with self._write() as conn:
            row = conn.execute("DELETE FROM conveyor_jobs WHERE id = ? AND state <> 'running' RETURNING *",
                               (job_id,)).fetchone()
            if row is None:
                self._refuse(conn, job_id, "delete")
        return _record(row)

    def counts(self) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = {}
        with self._read() as conn:
            for row in conn.execute("SELECT queue, state, count(*) FROM conveyor_jobs GROUP BY queue, state"):
                result.setdefault(row[0], {})[JobState(row[1])] = row[2]
            for row in conn.execute("SELECT queue FROM conveyor_paused_queues"):
                result.setdefault(row[0], {})
        return result

    def prune(self) -> int:
        with self._write() as conn:
            return conn.execute(_sql("prune"), {"now": self.now()}).rowcount

    def reclaim(self) -> None:
        """Nothing to clear: a claim in SQLite reads live index entries only."""

    def purge(self, states: Sequence[JobState], queue: str | None = None) -> int:
        wanted = [str(s) for s in states if s != JobState.RUNNING]
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM conveyor_jobs WHERE state IN (SELECT value FROM json_each(?))"
                " AND (? IS NULL OR queue = ?)", (json.dumps(wanted), queue, queue)).rowcount

    def pause(self, queue: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO conveyor_paused_queues (queue) VALUES (?)", (queue,))

    def resume(self, queue: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM conveyor_paused_queues WHERE queue = ?", (queue,))

    def paused(self) -> set[str]:
        with self._read() as conn:
            return {row[0] for row in conn.execute("SELECT queue FROM conveyor_paused_queues")}

    # -- workers and their totals -------------------------------------------------------------

    def report_worker(self, info: WorkerInfo, stats: Sequence[MinuteStats], ttl: float) -> float:
        now = self.now()
        with self._write() as conn:
            conn.execute(_sql("report_worker"), (info.id, info.to_json(), now, now + ttl))
            conn.execute("DELETE FROM conveyor_workers WHERE expires_at <= ?", (now,))
            conn.executemany(_sql("add_stats"), [(s.minute, s.queue, *s.totals()) for s in stats])
            conn.execute("DELETE FROM conveyor_stats WHERE minute < ?", (now - STATS_RETENTION,))
        return now

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM conveyor_workers WHERE id = ?", (worker_id,))

    def workers(self) -> list[WorkerInfo]:
        with self._read() as conn:
            rows = conn.execute("SELECT info, last_seen FROM conveyor_workers WHERE expires_at > ? ORDER BY id",
                                (self.now(),)).fetchall()
        return [WorkerInfo.from_json(row["info"], row["last_seen"]) for row in rows]

    def stats(self, since: float) -> list[MinuteStats]:
        since = max(since, self.now() - STATS_RETENTION)
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM conveyor_stats WHERE minute >= ? ORDER BY minute, queue",
                                (since,)).fetchall()
        return [MinuteStats(**dict(row)) for row in rows]

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        now = self.now()
        with self._write() as conn:
            row = conn.execute(_sql("acquire_lock"), {
                "name": name, "owner": owner, "now": now, "expires_at": now + ttl}).fetchone()
        return row is not None

    def release_lock(self, name: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM conveyor_locks WHERE name = ? AND owner = ?", (name, owner))

    # -- schedules ----------------------------------------------------------------------------

    def schedule_states(self, names: Sequence[str], now: float | None = None) -> dict[str, ScheduleState]:
        query = "SELECT * FROM conveyor_schedules WHERE name IN (SELECT value FROM json_each(?))"
        with self._read() as conn:
            states = {row["name"]: _schedule_state(row) for row in conn.execute(query, (json.dumps(list(names)),))}
        missing = [name for name in names if name not in states]
        if missing and now is not None:
            with self._write() as conn:
                conn.executemany(_sql("schedule_register"), [{"name": name, "now": now} for name in missing])
                rows = conn.execute(query, (json.dumps(missing),)).fetchall()
            states.update((row["name"], _schedule_state(row)) for row in rows)
        return states

    def fire_schedule(self, name: str, ticks: Sequence[tuple[float, NewJob]],
                      advance_to: float | None) -> list[JobRecord] | None:
        with self._write() as conn:
            row = conn.execute("SELECT last_tick, paused FROM conveyor_schedules WHERE name = ?", (name,)).fetchone()
            if row is None or (advance_to is not None and (row["paused"] or row["last_tick"] >= advance_to)):
                return None
            # A scheduler that read the state before another fired sends ticks already handled.
            jobs = [job for tick, job in ticks if advance_to is None or tick > row["last_tick"]]
            conn.execute(_sql("schedule_fire"), {"name": name, "advance_to": advance_to,
                                                 "last_job_id": jobs[-1].id if jobs else None, "now": self.now()})
            return self._insert(conn, jobs)

    def set_schedule_paused(self, name: str, paused: bool, now: float) -> ScheduleState:
        with self._write() as conn:
            row = conn.execute(_sql("schedule_pause"), {"name": name, "paused": int(paused), "now": now}).fetchone()
        return _schedule_state(row)

    def wait_for_work(self, queues: Sequence[str], timeout: float, wake: threading.Event,
                      claim: Claim | None = None) -> None:
        # `claim` is not sent from here: the worker sends it once this returns
        conn = self._conn()
        watch = self._wal_watch()
        if watch is not None:
            watch.add(wake)  # before the counter is read, so a commit after the read wakes this wait
        try:
            with self._read():
                seen = self._local.data_version
                if seen is None:
                    seen = self._data_version()
                next_due = conn.execute(
                    "SELECT min(run_at) FROM conveyor_jobs WHERE state = 'scheduled'").fetchone()[0]
                if next_due is not None:
                    timeout = min(timeout, max(0.0, next_due - self.now()))
                deadline = time.monotonic() + timeout
                while (remaining := deadline - time.monotonic()) > 0:
                    watched = watch is not None and watch.alive
                    if wake.wait(min(WATCHED_POLL if watched else self.poll_interval, remaining)):
                        return
                    if self._data_version() != seen:
                        return
        finally:
            if watch is not None:
                watch.discard(wake)

    def _wal_watch(self) -> WalWatch | None:
        """This process's watch of the -wal file, started by the first wait (None without inotify)."""
        if not self.watch:
            return None
        with self._connections_lock:
            if self._watch is None or self._watch.pid != os.getpid():
                self._watch = WalWatch.start(self.path, self._data_version)
            return self._watch

    def _data_version(self) -> int:
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])
