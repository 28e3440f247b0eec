"""The PostgreSQL engine: jobs are rows, claims are `FOR UPDATE SKIP LOCKED`, idle workers LISTEN.

One statement per verb (sql/<verb>.sql), each schema-qualified so it also runs on the app's own
connection: `task.with_options(connection=conn).delay(...)` enqueues inside the caller's
transaction, invisible to workers until it commits and gone if it rolls back. Times come from the
server's clock. The schema is created and migrated on first use (migrations/NNNN_name.sql, under
an advisory lock, so processes starting together migrate once) or by `conveyor migrate`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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
from conveyor.backends.postgres.watchdog import Watchdog
from conveyor.backends.shared import job_filter, refusal, safe_url, translated
from conveyor.backends.shared import record_from_row as _record
from conveyor.backends.sql_files import load_migrations, load_sql
from conveyor.backends.wake import WakeBoard
from conveyor.errors import BackendError
from conveyor.job import FINISHED_STATES, JobRecord, JobState, NewJob

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]
PACKAGE = "conveyor.backends.postgres"
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL text) of every migration, in order."""
    return load_migrations(PACKAGE)


def _schedule_state(row: dict[str, Any]) -> ScheduleState:
    return ScheduleState(name=row["name"], last_tick=row["last_tick"], paused=row["paused"],
                         last_job_id=row["last_job_id"], last_fired_at=row["last_fired_at"])


def _enqueue_params(jobs: Sequence[NewJob]) -> dict[str, list[Any]]:
    return {
        "ids": [j.id for j in jobs], "tasks": [j.task for j in jobs], "queues": [j.queue for j in jobs],
        "priorities": [j.priority for j in jobs], "payloads": [j.payload for j in jobs],
        "delays": [float(j.delay) for j in jobs], "run_ats": [j.run_at for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs], "timeouts": [j.timeout for j in jobs],
    }


class _Listener(WakeBoard):
    """One LISTEN connection per process feeding a WakeBoard; reconnects with backoff."""

    def __init__(self, conninfo: str, channel: str, watchdog: Watchdog) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._watchdog = watchdog
        self._probed = time.monotonic()
        self._channel = channel
        self._closed = False
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-pg-listen", daemon=True)
        self._thread.start()
        if not self._listening.wait(10):
            raise BackendError(f"could not LISTEN on {channel}: PostgreSQL did not answer in 10 s")

    def _run(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.bump(None)
                    self._listening.set()
                    backoff = 0.05
                    while not self._closed:
                        for notice in conn.notifies(timeout=1.0):
                            if self._closed:
                                break
                            if notice.payload:
                                self.bump(notice.payload)
                        self._probe(conn)
            except Exception:  # a lost connection, or close() pulling it away
                if self._closed:
                    return
                self.bump(None)  # notifications may have been missed: every waiting loop looks again
                threading.Event().wait(backoff)
                backoff = min(2.0, backoff * 2)

    def _probe(self, conn: psycopg.Connection[Any]) -> None:
        """A silent LISTEN connection may be half-open: ask it something now and then, watched, so
        a dead one is cut and replaced (and every waiting loop looks again meanwhile). Every third
        of the watch's limit, as the Redis subscriber pings: a dead connection is then replaced
        within 1.33x the limit of its going silent, not 2x."""
        now = time.monotonic()
        if now - self._probed >= self._watchdog.limit / 3:
            with self._watchdog.watching(conn):
                conn.execute("SELECT 1")
            self._probed = now

    def close(self, poke: Callable[[], object]) -> None:
        """Stop listening; `poke` sends an empty notification so the thread sees it at once."""
        self._closed = True
        with suppress(Exception):
            poke()
        self._thread.join(timeout=3)


class _Pool(ConnectionPool):
    """The pool, with its health check of idle connections watched too: a check on a half-open
    connection would otherwise block forever."""

    watchdog: Watchdog

    def check_connection(self, conn: psycopg.Connection[Any]) -> None:  # type: ignore[override]
        with self.watchdog.watching(conn, limit=min(self.watchdog.limit, 2.0)):
            ConnectionPool.check_connection(conn)


class PostgresBackend(FetchesNow):
    capabilities = Capabilities(transactional_enqueue=True, shared_across_machines=True, prefetch_per_slot=4)

    def __init__(self, url: str, *, retention: Retention | None = None, schema: str = "conveyor",
                 pool_size: int = 10, connect_timeout: float = 10.0, socket_timeout: float = 10.0) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise BackendError(f"schema={schema!r}: use lower-case letters, digits and _")
        self.url = url
        self.schema = schema
        self.channel = f"conveyor_{schema}"
        self.retention = retention or Retention()
        self._safe_url = safe_url(url)
        self._conninfo = url
        self._local = threading.local()
        self._listener: _Listener | None = None
        self._listener_lock = threading.Lock()
        self._statements: dict[str, sql.Composed] = {}
        self._watchdog = Watchdog(socket_timeout)
        with self.errors():
            # Autocommit: a one-statement verb is one round trip. No check on checkout (another round
            # trip); a connection the server dropped is retried once instead (see _run).
            self._pool = _Pool(url, min_size=1, max_size=pool_size, open=False, timeout=connect_timeout,
                               kwargs={"row_factory": dict_row, "connect_timeout": 5, "autocommit": True},
                               name=f"conveyor-{schema}")
            self._pool.watchdog = self._watchdog
            self._pool.open(wait=True, timeout=connect_timeout)
            self.applied_on_open = self.migrate()

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:  # OperationalErrors too
            raise BackendError(f"PostgreSQL at {self._safe_url} rolled a statement back: {str(exc).strip()}; "
                               "nothing it did was kept, and it can be tried again") from exc
        except psycopg.OperationalError as exc:
            raise BackendError(f"cannot reach PostgreSQL at {self._safe_url}: {str(exc).strip()}; is the "
                               "server running and the URL right?") from exc
        except psycopg.Error as exc:
            raise BackendError(f"PostgreSQL at {self._safe_url} refused a statement: {str(exc).strip()}") from exc
        except TimeoutError as exc:  # psycopg_pool.PoolTimeout
            raise BackendError(f"no connection to PostgreSQL at {self._safe_url} within the timeout: {exc}") from exc

    def _sql(self, name: str) -> sql.Composed:
        statement = self._statements.get(name)
        if statement is None:
            text = load_sql(PACKAGE, name)
            statement = self._statements[name] = sql.SQL(text).format(schema=sql.Identifier(self.schema))
        return statement

    def _run(self, body: Callable[[Cursor], T], *, transaction: bool = False, rows: int = 0) -> T:
        """Run `body` on a pooled connection (in one transaction if asked). A pooled connection that
        the server dropped meanwhile (a restart, pg_terminate_backend) fails before anything ran on it;
        the pool then checks its idle connections, and the body runs once more on a fresh one. A body
        without a reply within socket_timeout (plus 1 s per 5,000 `rows` it writes) has its connection
        closed by the watchdog, and runs once more too: every verb is safe to repeat (lease tokens,
        job ids)."""
        for attempt in (1, 2):
            conn: psycopg.Connection[Any] | None = None
            try:
                with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur, \
                        self._watchdog.watching(conn, extra=rows / 5000):
                    if not transaction:
                        return body(cur)
                    with conn.transaction():
                        return body(cur)
            except psycopg.OperationalError:
                if attempt == 2 or conn is None or not conn.broken:
                    raise
                self._pool.check()  # the server dropped this one; its idle siblings may be gone too
        raise AssertionError("unreachable")

    def _execute(self, statement: sql.Composed | str, params: Any = None) -> tuple[list[dict[str, Any]], int]:
        """One statement in autocommit: its rows and its row count."""
        def body(cur: Cursor) -> tuple[list[dict[str, Any]], int]:
            cur.execute(statement, params)
            return (cur.fetchall() if cur.description else []), cur.rowcount
        return self._run(body)

    def _query(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A statement written with {schema}: its rows."""
        return self._execute(sql.SQL(query).format(schema=sql.Identifier(self.schema)), params)[0]

    def schema_version(self) -> int:
        rows = self._query("SELECT coalesce(max(version), 0) AS version FROM {schema}.migrations")
        return int(rows[0]["version"])

    def migrate(self) -> list[int]:
        """Create the schema and apply the migrations it lacks; returns the versions applied.
        Safe when several processes start at once: they queue on an advisory lock."""
        schema = sql.Identifier(self.schema)

        def body(cur: Cursor) -> list[int]:
            applied: list[int] = []
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"conveyor:{self.schema}",))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.migrations (version integer PRIMARY KEY, "
                                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())").format(schema))
            cur.execute(sql.SQL("SELECT version FROM {}.migrations").format(schema))
            done = {row["version"] for row in cur.fetchall()}
            known = migrations()
            if done - {version for version, _, _ in known}:
                raise BackendError(f"schema {self.schema!r} at {self._safe_url} was migrated by a newer conveyor "
                                   f"(versions {sorted(done)}); upgrade conveyor")
            for version, name, text in known:
                if version not in done:
                    cur.execute(sql.SQL(text).format(schema=schema))
                    cur.execute(sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(schema),
                                (version, name))
                    applied.append(version)
            return applied

        return self._run(body, transaction=True)

    @translated
    def now(self) -> float:
        rows, _ = self._execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS now")
        return float(rows[0]["now"])

    def close(self) -> None:
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close(lambda: self._query("SELECT pg_notify(%s, '')", (self.channel,)))
                self._listener = None
        self._pool.close()
        self._watchdog.close()

    # -- producer verbs ---------------------------------------------------------------------

    @translated
    def enqueue(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        if not jobs:
            return []
        return self._run(lambda cur: self._insert(cur, jobs), rows=len(jobs))

    def enqueue_batches(self, batches: Iterable[Sequence[NewJob]]) -> list[JobRecord]:
        return [record for batch in batches for record in self.enqueue(batch)]

    @translated
    def enqueue_in_transaction(self, connection: Any, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Enqueue through the app's own psycopg connection, inside its open transaction."""
        if not isinstance(connection, psycopg.Connection):
            raise BackendError(f"connection={connection!r}: pass a psycopg 3 connection (with SQLAlchemy: "
                               "session.connection().connection.driver_connection)")
        with connection.cursor(row_factory=dict_row) as cur:
            return self._insert(cur, jobs)

    def _insert(self, cur: Cursor, jobs: Sequence[NewJob]) -> list[JobRecord]:
        cur.execute(self._sql("enqueue"), _enqueue_params(jobs))
        created = {row["id"]: _record(row) for row in cur.fetchall()}
        missing = [job.id for job in jobs if job.id not in created]
        existing: dict[str, JobRecord] = {}
        if missing:
            cur.execute(sql.SQL("SELECT * FROM {}.jobs WHERE id = ANY(%s)").format(sql.Identifier(self.schema)),
                        (missing,))
            existing = {row["id"]: _record(row) for row in cur.fetchall()}
            for record in existing.values():
                record.created = False
        return [created.get(job.id) or existing[job.id] for job in jobs]

    # -- worker verbs -----------------------------------------------------------------------

    @translated
    def fetch(self, queues: Sequence[str], limit: int, *, worker_id: str, lease_seconds: float) -> list[JobRecord]:
        return self.finish_and_fetch((), queues, limit, worker_id=worker_id, lease_seconds=lease_seconds)[1]

    @translated
    def finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                         worker_id: str, lease_seconds: float) -> tuple[list[JobState | None], list[JobRecord]]:
        queues = list(dict.fromkeys(queues))
        if limit > 0:
            self._local.seen = self._wake_listener().snapshot(queues)  # before the claim: see wait_for_work
        claim = {"queues": queues, "limit": limit, "token": secrets.token_hex(8), "worker_id": worker_id,
                 "lease": float(lease_seconds)}

        def body(cur: Cursor) -> tuple[dict[str, JobState], list[dict[str, Any]]]:
            with cur.connection.cursor(row_factory=dict_row) as finished:
                with cur.connection.pipeline():  # finish, promote, claim: sent together, one round trip
                    if finishes:
                        finished.execute(self._sql("finish"), self._finish_params(finishes))
                    if limit > 0:
                        cur.execute(self._sql("promote"), {"queues": queues})
                        cur.execute(self._sql("fetch"), claim)
                recorded = {row["id"]: JobState(row["state"]) for row in finished.fetchall()} if finishes else {}
            return recorded, cur.fetchall() if limit > 0 else []

        recorded, rows = self._run(body)
        records = sorted((_record(row) for row in rows), key=lambda r: (-r.priority, r.run_at, r.enqueued_at))
        return [recorded.get(f.job_id) for f in finishes], records

    @translated
    def heartbeat(self, leases: Sequence[Lease], lease_seconds: float) -> HeartbeatReply:
        if not leases:
            return HeartbeatReply(frozenset(), frozenset())
        rows, _ = self._execute(self._sql("heartbeat"), {"ids": [lease.job_id for lease in leases],
                                                         "tokens": [lease.token for lease in leases],
                                                         "lease": float(lease_seconds)})
        held = {row["id"] for row in rows}
        return HeartbeatReply(lost=frozenset(lease.job_id for lease in leases) - held,
                              cancel_requested=frozenset(row["id"] for row in rows if row["cancel_requested"]))

    @translated
    def finish(self, finishes: Sequence[Finish]) -> list[JobState | None]:
        return self.finish_and_fetch(finishes, (), 0, worker_id="", lease_seconds=0)[0] if finishes else []

    def _finish_params(self, finishes: Sequence[Finish]) -> dict[str, Any]:
        return {
            "ids": [f.job_id for f in finishes], "tokens": [f.token for f in finishes],
            "states": [str(f.state) for f in finishes], "results": [f.result for f in finishes],
            "errors": [json.dumps(f.error.to_json()) if f.error else None for f in finishes],
            "delays": [float(f.delay) for f in finishes], "releases": [int(f.release) for f in finishes],
            "retentions": [self.retention.for_state(f.state) if f.state in FINISHED_STATES else None
                           for f in finishes],
            "cancelled_retention": self.retention.cancelled,
        }

    @translated
    def set_progress(self, lease: Lease, progress: float, message: str | None) -> bool:
        _, count = self._execute(self._sql("set_progress"), {"id": lease.job_id, "token": lease.token,
                                                             "progress": float(progress), "message": message})
        return count == 1

    @translated
    def rescue_expired(self) -> list[JobRecord]:
        rows, _ = self._execute(self._sql("rescue_expired"), {"failed_retention": self.retention.failed,
                                                              "cancelled_retention": self.retention.cancelled})
        return [_record(row) for row in rows]

    # -- operator verbs ---------------------------------------------------------------------

    def _change(self, statement: str, job_id: str, action: str, **params: Any) -> JobRecord:
        rows, _ = self._execute(self._sql(statement), {"id": job_id, **params})
        if rows:
            return _record(rows[0])
        found = self._query("SELECT state FROM {schema}.jobs WHERE id = %s", (job_id,))
        raise refusal(job_id, action, found[0]["state"] if found else None)

    @translated
    def cancel(self, job_id: str) -> JobRecord:
        return self._change("cancel", job_id, "cancel", retention=self.retention.cancelled)

    @translated
    def retry_now(self, job_id: str) -> JobRecord:
        return self._change("retry_now", job_id, "retry")

    @translated
    def get(self, job_id: str) -> JobRecord | None:
        rows = self._query("SELECT * FROM {schema}.jobs WHERE id = %s", (job_id,))
        return _record(rows[0]) if rows else None

    @translated
    def list_jobs(self, *, state: JobState | None = None, queue: str | None = None, task: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        where, params = job_filter(state, queue, task, search, param="%s", like="ILIKE")
        rows = self._query(f"SELECT * FROM {{schema}}.jobs {where} ORDER BY seq DESC LIMIT %s OFFSET %s",
                           (*params, limit, offset))
        return [_record(row) for row in rows]

    @translated
    def delete(self, job_id: str) -> JobRecord:
        return self._change("delete", job_id, "delete")

    @translated
    def counts(self) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = {}
        for row in self._query("SELECT queue, state, count(*) AS n FROM {schema}.jobs GROUP BY queue, state"):
            result.setdefault(row["queue"], {})[JobState(row["state"])] = row["n"]
        for row in self._query("SELECT queue FROM {schema}.paused_queues"):
            result.setdefault(row["queue"], {})
        return result

    @translated
    def prune(self) -> int:
        total = 0
        while True:
            deleted = self._execute(self._sql("prune"))[1]
            total += deleted
            if deleted < 5000:
                return total

    @translated
    def reclaim(self) -> None:
        """VACUUM the jobs table. A claim moves a row out of jobs_ready's WHERE, leaving a dead
        entry at the head of the index that every later claim steps over until a vacuum clears it,
        and autovacuum comes at most once per autovacuum_naptime (a minute): a 1,000,000-job drain
        slowed to 0.68 of its first speed between visits. SKIP_LOCKED: a vacuum already running
        (another worker's, autovacuum's) is enough. Without the rights to vacuum the table (its
        owner's), PostgreSQL skips it with a warning and the claims are only slower."""
        self._execute(sql.SQL("VACUUM (SKIP_LOCKED) {}.jobs").format(sql.Identifier(self.schema)))

    @translated
    def purge(self, states: Sequence[JobState], queue: str | None = None) -> int:
        wanted = [str(s) for s in states if s != JobState.RUNNING]
        statement = sql.SQL("DELETE FROM {}.jobs WHERE state = ANY(%s) AND (%s::text IS NULL OR queue = %s)")
        return self._execute(statement.format(sql.Identifier(self.schema)), (wanted, queue, queue))[1]

    @translated
    def pause(self, queue: str) -> None:
        self._query("INSERT INTO {schema}.paused_queues (queue) VALUES (%s) ON CONFLICT DO NOTHING", (queue,))

    @translated
    def resume(self, queue: str) -> None:
        self._query("DELETE FROM {schema}.paused_queues WHERE queue = %s", (queue,))
        self._query("SELECT pg_notify(%s, %s)", (self.channel, queue))

    @translated
    def paused(self) -> set[str]:
        return {row["queue"] for row in self._query("SELECT queue FROM {schema}.paused_queues")}

    # -- workers and their totals -------------------------------------------------------------

    @translated
    def report_worker(self, info: WorkerInfo, stats: Sequence[MinuteStats], ttl: float) -> float:
        def body(cur: Cursor) -> float:
            cur.execute(self._sql("report_worker"), {"id": info.id, "info": info.to_json(), "ttl": float(ttl)})
            now = float(cur.fetchall()[0]["now"])
            columns = list(zip(*[(s.minute, s.queue, *s.totals()) for s in stats], strict=True)) or [()] * 8
            names = ("minute", "queue", "completed", "failed", "retried", "started", "wait_total", "wait_max")
            cur.execute(self._sql("add_stats"), {**{name: list(column) for name, column in zip(
                names, columns, strict=True)}, "keep_since": now - STATS_RETENTION})
            return now
        return self._run(body, transaction=True)

    @translated
    def remove_worker(self, worker_id: str) -> None:
        self._query("DELETE FROM {schema}.workers WHERE id = %s", (worker_id,))

    @translated
    def workers(self) -> list[WorkerInfo]:
        rows = self._query("SELECT info, last_seen FROM {schema}.workers "
                           "WHERE expires_at > extract(epoch FROM clock_timestamp()) ORDER BY id")
        return [WorkerInfo.from_json(row["info"], row["last_seen"]) for row in rows]

    @translated
    def stats(self, since: float) -> list[MinuteStats]:
        rows = self._query("SELECT * FROM {schema}.stats WHERE minute >= greatest(%s, "
                           "extract(epoch FROM clock_timestamp()) - %s) ORDER BY minute, queue",
                           (since, STATS_RETENTION))
        return [MinuteStats(**row) for row in rows]

    @translated
    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        rows, _ = self._execute(self._sql("acquire_lock"), {"name": name, "owner": owner, "ttl": float(ttl)})
        return bool(rows)

    @translated
    def release_lock(self, name: str, owner: str) -> None:
        self._query("DELETE FROM {schema}.locks WHERE name = %s AND owner = %s", (name, owner))

    # -- schedules ----------------------------------------------------------------------------

    @translated
    def schedule_states(self, names: Sequence[str], now: float | None = None) -> dict[str, ScheduleState]:
        if now is not None:
            self._query("INSERT INTO {schema}.schedules (name, last_tick) SELECT n, %s FROM unnest(%s::text[]) AS n "
                        "ON CONFLICT (name) DO NOTHING", (now, list(names)))
        rows = self._query("SELECT * FROM {schema}.schedules WHERE name = ANY(%s)", (list(names),))
        return {row["name"]: _schedule_state(row) for row in rows}

    @translated
    def fire_schedule(self, name: str, ticks: Sequence[tuple[float, NewJob]],
                      advance_to: float | None) -> list[JobRecord] | None:
        schema = sql.Identifier(self.schema)

        def body(cur: Cursor) -> list[JobRecord] | None:
            cur.execute(sql.SQL("SELECT last_tick, paused FROM {}.schedules WHERE name = %s FOR UPDATE").format(schema),
                        (name,))
            row = cur.fetchone()
            if row is None or (advance_to is not None and (row["paused"] or row["last_tick"] >= advance_to)):
                return None
            # A scheduler that read the state before another fired sends ticks already handled.
            jobs = [job for tick, job in ticks if advance_to is None or tick > row["last_tick"]]
            records = self._insert(cur, jobs) if jobs else []
            cur.execute(sql.SQL(
                "UPDATE {}.schedules SET last_tick = coalesce(%s, last_tick), last_job_id = coalesce(%s, last_job_id),"
                " last_fired_at = CASE WHEN %s::text IS NULL THEN last_fired_at"
                " ELSE extract(epoch FROM clock_timestamp())::float8 END WHERE name = %s").format(schema),
                (advance_to, jobs[-1].id if jobs else None, jobs[-1].id if jobs else None, name))
            return records

        return self._run(body, transaction=True)

    @translated
    def set_schedule_paused(self, name: str, paused: bool, now: float) -> ScheduleState:
        rows, _ = self._execute(self._sql("schedule_pause"), {"name": name, "paused": paused, "now": now})
        return _schedule_state(rows[0])

    # -- waiting for work -----------------------------------------------------------------------

    def _wake_listener(self) -> _Listener:
        with self._listener_lock:
            if self._listener is None:
                self._listener = _Listener(self._conninfo, self.channel, self._watchdog)
            return self._listener

    @translated
    def wait_for_work(self, queues: Sequence[str], timeout: float, wake: threading.Event,
                      claim: Claim | None = None) -> None:
        # `claim` is not sent from here: the worker sends it once this returns
        queues = list(dict.fromkeys(queues))
        rows = self._query("SELECT min(run_at) - extract(epoch FROM clock_timestamp())::float8 AS wait "
                           "FROM {schema}.jobs WHERE state = 'scheduled' AND queue = ANY(%s)", (queues,))
        if rows and rows[0]["wait"] is not None:
            timeout = min(timeout, max(0.0, rows[0]["wait"]))
        self._wake_listener().wait(queues, getattr(self._local, "seen", None), timeout, wake)
