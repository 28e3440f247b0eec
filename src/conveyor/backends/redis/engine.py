"""The Redis engine: the same contract across many machines, every state change one Lua script.

Jobs live in a few hashes keyed by id (metadata as JSON, payload, result, errors); each state has
its structure: a sorted set per queue for queued jobs (score: minus the priority; members sort by
due time then enqueue order), one per queue for scheduled jobs (score: due time), one for running
jobs (score: lease expiry) and one for finished jobs (score: when they are pruned). Scripts take
the server's clock (TIME), so producers and workers on machines with skewed clocks agree.

Idle workers block instead of polling: scripts PUBLISH the queue's name on a wake channel when a
queue gains its first job or a sooner due time, and each worker process keeps one subscriber
thread that wakes its waiting loop (see `_WakeListener`).
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any, cast

import hiredis
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from conveyor.backends.base import (
    STATS_RETENTION,
    Capabilities,
    Claim,
    FetchReply,
    Finish,
    HeartbeatReply,
    Lease,
    MinuteStats,
    Retention,
    ScheduleState,
    WorkerInfo,
)
from conveyor.backends.redis.errors import explain
from conveyor.backends.redis.keys import Keys
from conveyor.backends.shared import refusal, safe_url, translated
from conveyor.backends.wake import Snapshot, WakeBoard
from conveyor.errors import BackendError
from conveyor.job import FINISHED_STATES, JobRecord, JobState, NewJob

MIN_VERSION = (6, 2)
SCRIPTS = ("enqueue", "heartbeat", "finish", "finish_and_fetch", "set_progress", "rescue_expired", "cancel",
           "retry_now", "prune", "purge", "acquire_lock", "release_lock", "schedule_states", "fire_schedule",
           "set_schedule_paused", "delete")
STANDALONE_SCRIPTS = ("report_worker",)  # scripts that take their own keys, without lib.lua
PRUNE_BATCH = 1000
RESCUE_BATCH = 1000
LIST_CHUNK = 500


def _lua(name: str) -> str:
    return resources.files(__package__ or "conveyor.backends.redis").joinpath("lua", f"{name}.lua").read_text()


def _float(meta: dict[str, Any], key: str) -> float | None:
    value = meta.get(key)
    return None if value is None else float(value)


def _record(meta_json: str, payload: str, result: str = "", errors: str = "") -> JobRecord:
    meta = json.loads(meta_json)
    state = JobState(meta["state"])
    if not result and state is JobState.COMPLETED:
        result = "null"  # record_outcomes does not store a null result
    return JobRecord(
        id=meta["id"], task=meta["task"], queue=meta["queue"], priority=int(meta["priority"]),
        state=state, payload=payload, run_at=float(meta["run_at"]),
        enqueued_at=float(meta["enqueued_at"]), attempts=int(meta["attempts"]),
        max_attempts=int(meta["max_attempts"]), timeout=_float(meta, "timeout"),
        started_at=_float(meta, "started_at"), finished_at=_float(meta, "finished_at"),
        lease_token=meta.get("lease_token"), lease_expires_at=_float(meta, "lease_expires_at"),
        worker_id=meta.get("worker_id"), cancel_requested=bool(meta.get("cancel_requested")),
        progress=_float(meta, "progress"), progress_message=meta.get("progress_message"),
        result=result or None, errors_json=errors or "[]",
    )


def _matches(job_id: str, meta: dict[str, Any], payload: str, queue: str | None, task: str | None,
             needle: str | None) -> bool:
    """A job passes list_jobs' filters (`needle` is the lowercased search text)."""
    if (queue is not None and meta["queue"] != queue) or (task is not None and meta["task"] != task):
        return False
    return needle is None or any(needle in text.lower() for text in (job_id, meta["task"], payload))


def _schedule_state(name: str, raw: str) -> ScheduleState:
    state = json.loads(raw)
    return ScheduleState(name=name, last_tick=float(state["last_tick"]), paused=bool(state.get("paused")),
                         last_job_id=state.get("last_job_id"), last_fired_at=_float(state, "last_fired_at"))


def _left_in(outcomes: Sequence[str]) -> list[JobState | None]:
    """record_outcomes's reply: per outcome the state a job was left in, '' where the lease was gone."""
    return [JobState(state) if state else None for state in outcomes]


def _claimed(rows: Sequence[Sequence[str]]) -> list[JobRecord]:
    """The jobs a claim returned, in claim order."""
    return sorted((_record(*row) for row in rows), key=lambda r: (-r.priority, r.run_at, r.enqueued_at))


class _FetchReply:
    """A finish_and_fetch call on a thread's background connection (see send_finish_and_fetch):
    `send` sends it (on any thread, while the connection's own does not use it), `wait` waits for
    the reply on the connection's thread, with the retries and the script loading of any script call."""

    def __init__(self, backend: RedisBackend, connection: Any, queues: list[str], keys: list[str],
                 args: list[Any]) -> None:
        self._backend, self._connection, self._queues, self._keys, self._args = backend, connection, queues, keys, args
        self._command = backend._packed("finish_and_fetch", keys, args)
        self._sent = False
        self._rows: list[Any] = []

    def send(self) -> _FetchReply:
        self._sent = self._backend._send(self._connection, self._command)
        return self

    def wait(self) -> tuple[list[JobState | None], int]:
        with self._backend.errors():
            outcomes, self._rows, *due = self._backend._reply(self._connection, self._command, "finish_and_fetch",
                                                              self._keys, self._args, sent=self._sent)
        self._backend._note_next_due(self._queues, due)
        return _left_in(outcomes), len(self._rows)

    def records(self) -> list[JobRecord]:
        return _claimed(self._rows)


def _job_args(job: NewJob) -> list[str]:
    return [job.id, job.task, job.queue, str(job.priority), job.payload, repr(float(job.delay)),
            "" if job.run_at is None else repr(float(job.run_at)), str(job.max_attempts),
            "" if job.timeout is None else repr(float(job.timeout))]


class _WakeListener(WakeBoard):
    """One subscriber thread per process, feeding a WakeBoard from the namespace's wake channel."""

    def __init__(self, client: Any, channel: str, silence_limit: float) -> None:
        super().__init__()
        self._client = client
        self._channel = channel
        self._silence_limit = silence_limit
        self._subscribed = threading.Event()
        self._settled = threading.Event()  # subscribed, or refused for good
        self._refusal: Exception | None = None
        self._last_error: Exception | None = None
        self._closed = False
        self._connection: Any = None
        self._thread = threading.Thread(target=self._run, name="conveyor-redis-wake", daemon=True)
        self._thread.start()
        if not self._settled.wait(10) or self._refusal is not None:
            self.close()
            if self._refusal is not None:  # the caller's errors() says what to fix (an ACL, a password)
                raise self._refusal
            last = f" (last error: {self._last_error})" if self._last_error is not None else ""
            raise BackendError(f"could not subscribe to {channel}: Redis did not answer in 10 s{last}")

    def _subscribe(self) -> Any:
        """A connection of its own, subscribed; read with `read_response` rather than through
        redis-py's PubSub, whose layers (a health check, a retry wrapper, a readiness poll before each
        read, a dict per message) cost the wake-up of an idle worker more than the read itself.
        Without redis-py's health checks: a PING there would read a message as its PONG."""
        pool = self._client.connection_pool
        connection = self._connection = pool.connection_class(**dict(pool.connection_kwargs, health_check_interval=0))
        connection.send_command("SUBSCRIBE", self._channel)
        return connection

    def _run(self) -> None:
        backoff = 0.05
        while not self._closed:
            connection = None
            try:
                connection = self._subscribe()
                heard = pinged = time.monotonic()
                while not self._closed:
                    try:
                        reply = connection.read_response(timeout=1.0, disconnect_on_error=False)
                    except redis.TimeoutError:
                        reply = None
                    now = time.monotonic()
                    heard, pinged = self._probe(connection, reply is not None, now, heard, pinged)
                    if reply is None:
                        continue
                    kind = reply[0]
                    if kind == "message":
                        self.bump(reply[2])
                    elif kind == "subscribe":
                        self.bump(None)
                        self._subscribed.set()
                        self._settled.set()
                        backoff = 0.05
            except Exception as exc:  # a lost connection, or close() pulling it away mid-read
                if self._closed:
                    return
                self._last_error = exc
                if not self._subscribed.is_set() and isinstance(exc, redis.ResponseError | redis.AuthenticationError):
                    self._refusal = exc  # never subscribed and refused (an ACL without the channel): give up
                    self._settled.set()
                    return
                self.bump(None)  # anything may have been missed: every waiting loop looks again
                time.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            finally:
                if connection is not None:
                    with suppress(Exception):
                        connection.disconnect()

    def _probe(self, connection: Any, heard_now: bool, now: float, heard: float, pinged: float
               ) -> tuple[float, float]:
        """A subscription can go silent without its connection closing (a half-open connection):
        ping it now and then, and treat silence past the limit as a lost connection."""
        if heard_now:
            heard = now
        elif now - heard > self._silence_limit:
            raise redis.ConnectionError(f"the wake subscription was silent for {self._silence_limit:g}s")
        if now - pinged >= self._silence_limit / 3:
            connection.send_command("PING")  # answered ["pong", ""] while subscribed: heard, not bumped
            pinged = now
        return heard, pinged

    def close(self) -> None:
        self._closed = True
        connection = self._connection
        if connection is not None:
            with suppress(Exception):  # wakes the subscriber out of its blocking read
                connection.disconnect()
        self._thread.join(timeout=3)


class RedisBackend:
    capabilities = Capabilities(transactional_enqueue=False, shared_across_machines=True, prefetch_per_slot=8,
                                fetch_in_background=True)

    def __init__(self, url: str, *, retention: Retention | None = None, namespace: str = "conveyor",
                 socket_timeout: float = 10.0) -> None:
        self.url = url
        self.retention = retention or Retention()
        self.keys = Keys(namespace)
        self._socket_timeout = socket_timeout
        self._safe_url = safe_url(url)
        self._local = threading.local()
        self._script_connections: weakref.WeakSet[Any] = weakref.WeakSet()  # see _script_connection
        self._script_connections_lock = threading.Lock()
        self._listener: _WakeListener | None = None
        self._listener_lock = threading.Lock()
        with self.errors():
            # RESP2 pinned: redis-py's RESP3 default would change what script replies look like.
            # surrogateescape: bytes that are not UTF-8 (written behind conveyor's back) reach the
            # worker, which fails that one job, instead of failing every fetch that returns them.
            # Typed Any: redis-py's stubs cannot express decode_responses=True (every reply a str).
            options: dict[str, Any] = dict(
                protocol=2, decode_responses=True, encoding_errors="surrogateescape", socket_timeout=socket_timeout,
                socket_connect_timeout=5.0, health_check_interval=15)
            # The first contact retries a refused connection (a server starting) but not a timeout:
            # a server that never answers (packets dropped, or rediss:// at a plain port, where the
            # TLS handshake waits for a reply that never comes) is reported after one timeout, not seven.
            backoff = ExponentialBackoff(cap=1.0, base=0.02)
            self._check_server(redis.Redis.from_url(
                url, **options, retry=Retry(backoff, retries=6, supported_errors=(redis.ConnectionError,)),
                retry_on_error=[redis.ConnectionError]))
            self._client: Any = redis.Redis.from_url(
                url, **options, retry=Retry(backoff, retries=6),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        lib = _lua("lib")
        self._scripts = {name: self._client.register_script(f"{lib}\n{_lua(name)}") for name in SCRIPTS}
        self._scripts.update({name: self._client.register_script(_lua(name)) for name in STANDALONE_SCRIPTS})

    def _check_server(self, probe: Any) -> None:
        try:
            info = probe.info("server")
        finally:
            probe.close()
        version = tuple(int(part) for part in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_VERSION:
            raise BackendError(f"{self._safe_url} runs Redis {info.get('redis_version')}; conveyor needs "
                               "Redis 6.2 or newer (or Valkey)")

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise BackendError(explain(exc, self.url)) from exc

    def _run(self, script: str, queues: Sequence[str], args: Sequence[Any]) -> Any:
        keys, header = self.keys.layout(queues)
        return self._evalsha(script, keys, [*header, *args])

    def _evalsha(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script with its command packed in one C call (hiredis) on this thread's own
        connection: redis-py's own path spends longer packing a script's thirty-odd arguments, and
        taking a connection from its pool and giving it back, than Redis spends running the script.
        A lost connection is retried on a new one with redis-py's retry policy (redis-py closes a
        connection whose command was cut short, so no reply is left behind on it); a flushed
        script cache goes through redis-py's path, which loads the script again."""
        connection = self._script_connection()
        command = self._packed(name, keys, args)
        return self._reply(connection, command, name, keys, args, sent=self._send(connection, command))

    @staticmethod
    def _send(connection: Any, command: bytes) -> bool:
        """Send a packed command; False if the connection failed (`_reply` sends it again)."""
        try:
            connection.send_packed_command([command])
            return True
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def _reply(self, connection: Any, command: bytes, name: str, keys: list[str], args: list[Any], *,
               sent: bool) -> Any:
        """The reply to a script call sent on `connection` (see _evalsha)."""
        def run() -> Any:
            connection.send_packed_command([command])
            return connection.read_response()

        try:
            if sent:
                try:
                    return connection.read_response()
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
            return connection.retry.call_with_retry(run, lambda _error: connection.disconnect())
        except redis.exceptions.NoScriptError:
            return self._scripts[name](keys=keys, args=args)

    def _packed(self, name: str, keys: list[str], args: list[Any]) -> bytes:
        return cast(bytes, hiredis.pack_command(("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)))

    def _script_connection(self, purpose: str = "connection") -> Any:
        """This thread's connection for scripts, made on first use (and again in a forked child).
        It is not borrowed from redis-py's pool, so it costs no bookkeeping per call; it is closed
        with the backend, or when its thread ends. `purpose="background"` is a second one, which
        carries a send_finish_and_fetch whose reply is not read yet, so that calls made meanwhile
        on the same thread (a hook's enqueue, say) cannot read that reply as theirs."""
        connection = getattr(self._local, purpose, None)
        if connection is None or connection.pid != os.getpid():
            pool = self._client.connection_pool
            connection = pool.connection_class(**pool.connection_kwargs)
            setattr(self._local, purpose, connection)
            with self._script_connections_lock:
                self._script_connections.add(connection)
        return connection

    @translated
    def now(self) -> float:
        seconds, micros = self._client.time()
        return float(seconds) + float(micros) / 1_000_000

    def close(self) -> None:
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        with self._script_connections_lock:
            connections = list(self._script_connections)
        for connection in connections:
            connection.disconnect()
        self._client.close()

    # -- producer verbs ---------------------------------------------------------------------

    @translated
    def enqueue(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        if not jobs:
            return []
        return self._enqueued(jobs, self._evalsha("enqueue", *self._enqueue_call(jobs)))

    def _enqueue_call(self, jobs: Sequence[NewJob]) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of enqueue.lua for `jobs`."""
        keys, header = self.keys.layout([job.queue for job in jobs])
        return keys, [*header, *(a for job in jobs for a in _job_args(job))]

    @translated
    def enqueue_batches(self, batches: Iterable[Sequence[NewJob]]) -> list[JobRecord]:
        """Pipelined: each batch is sent before the reply to the one before it is read, so that
        encoding the next batch here overlaps Redis storing the last one. After a lost connection or
        a flushed script cache (as on a server's first use), the batches not yet confirmed go again
        the usual way, with its retries and its loading of the script, and pipelining resumes. Their
        ids are fixed, so a batch that had landed comes back as taken, not stored twice."""
        records: list[JobRecord] = []
        connection = self._script_connection()
        sent: deque[Sequence[NewJob]] = deque()  # sent, their replies not read yet
        batches = iter(batches)
        while True:
            try:
                self._pipeline(connection, batches, sent, records)
                return records
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.NoScriptError):
                connection.disconnect()  # drops the replies still unread
                while sent:  # each round confirms at least one batch: the one whose send or reply failed
                    records += self.enqueue(sent.popleft())
            except BaseException:
                # A batch failed to encode, or the script refused one. A batch already sent is still
                # stored (Redis has the whole command), but its reply must not be left on the connection.
                connection.disconnect()
                raise

    def _pipeline(self, connection: Any, batches: Iterator[Sequence[NewJob]], sent: deque[Sequence[NewJob]],
                  records: list[JobRecord]) -> None:
        def confirm_oldest() -> None:
            records.extend(self._enqueued(sent[0], connection.read_response()))
            sent.popleft()

        for batch in batches:
            if batch:
                sent.append(batch)
                connection.send_packed_command([self._packed("enqueue", *self._enqueue_call(batch))])
            if len(sent) > 1:
                confirm_oldest()
        while sent:
            confirm_oldest()

    def _enqueued(self, jobs: Sequence[NewJob], reply: list[Any]) -> list[JobRecord]:
        enqueued_at, *taken = reply
        now = float(enqueued_at)
        records = [self._created(job, now) for job in jobs]
        for position, *stored in taken:  # ids already stored: those jobs as they are
            records[position - 1] = self._taken(stored)
        return records

    @staticmethod
    def _created(job: NewJob, now: float) -> JobRecord:
        """A job the script has just stored: all it sends back is its clock; the rest is what we sent."""
        run_at = job.run_at if job.run_at is not None else now + float(job.delay)
        return JobRecord(id=job.id, task=job.task, queue=job.queue, priority=job.priority,
                         state=JobState.SCHEDULED if run_at > now else JobState.QUEUED, payload=job.payload,
                         run_at=run_at, enqueued_at=now, attempts=0, max_attempts=job.max_attempts,
                         timeout=job.timeout)

    @staticmethod
    def _taken(stored: Sequence[str]) -> JobRecord:
        record = _record(*stored)
        record.created = False
        return record

    # -- worker verbs -----------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, *, worker_id: str, lease_seconds: float) -> list[JobRecord]:
        if limit <= 0:
            return []
        return self.finish_and_fetch((), queues, limit, worker_id=worker_id, lease_seconds=lease_seconds)[1]

    @translated
    def heartbeat(self, leases: Sequence[Lease], lease_seconds: float) -> HeartbeatReply:
        if not leases:
            return HeartbeatReply(frozenset(), frozenset())
        rows = self._run("heartbeat", (), [repr(float(lease_seconds)),
                                           *(part for lease in leases for part in (lease.job_id, lease.token))])
        held = {row[0] for row in rows}
        return HeartbeatReply(lost=frozenset(lease.job_id for lease in leases) - held,
                              cancel_requested=frozenset(row[0] for row in rows if row[1] == 1))

    @translated
    def finish(self, finishes: Sequence[Finish]) -> list[JobState | None]:
        if not finishes:
            return []
        return _left_in(self._run("finish", self._retry_queues(finishes),
                                  [repr(self.retention.cancelled), *self._outcome_args(finishes)]))

    @translated
    def finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                         worker_id: str, lease_seconds: float) -> tuple[list[JobState | None], list[JobRecord]]:
        queues = self._claiming(queues, limit)
        outcomes, rows, *due = self._evalsha("finish_and_fetch", *self._fetch_call(finishes, queues, limit, worker_id,
                                                                                   lease_seconds))
        self._note_next_due(queues, due)
        return _left_in(outcomes), _claimed(rows)

    @translated
    def send_finish_and_fetch(self, finishes: Sequence[Finish], queues: Sequence[str], limit: int, *,
                              worker_id: str, lease_seconds: float) -> FetchReply:
        """Sent on this thread's background connection; the reply is read by `wait`."""
        queues = self._claiming(queues, limit)
        return _FetchReply(self, self._script_connection("background"), queues,
                           *self._fetch_call(finishes, queues, limit, worker_id, lease_seconds)).send()

    def _claiming(self, queues: Sequence[str], limit: int) -> list[str]:
        """`queues` without repeats; a snapshot of their wake-ups before a claim, for wait_for_work."""
        queues = list(dict.fromkeys(queues))
        if limit > 0:
            self._local.seen = self._wake_listener().snapshot(queues)
        return queues

    def _fetch_call(self, finishes: Sequence[Finish], queues: list[str], limit: int, worker_id: str,
                    lease_seconds: float) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of finish_and_fetch.lua (`queues` without repeats)."""
        args = [max(limit, 0), secrets.token_hex(8), worker_id, repr(float(lease_seconds)),
                repr(self.retention.cancelled), len(queues), *queues, *self._outcome_args(finishes)]
        keys, header = self.keys.layout([*queues, *self._retry_queues(finishes)])
        return keys, [*header, *args]

    def _retry_queues(self, finishes: Sequence[Finish]) -> list[str]:
        # Only a job going back to wait needs its queue's keys: the common case costs one round trip.
        return self._queues_of([f.job_id for f in finishes if f.state not in FINISHED_STATES])

    def _outcome_args(self, finishes: Sequence[Finish]) -> list[str]:
        args: list[str] = []
        for item in finishes:
            final = item.state in FINISHED_STATES
            args += [item.job_id, item.token, str(item.state), item.result or "",
                     json.dumps(item.error.to_json()) if item.error else "", repr(float(item.delay)),
                     "1" if item.release else "0", repr(self.retention.for_state(item.state)) if final else "0"]
        return args

    def _queues_of(self, job_ids: Sequence[str]) -> list[str]:
        """The queues of stored jobs (a job never changes queue), for the keys a script needs."""
        if not job_ids:
            return []
        metas = self._client.hmget(self.keys.jobs, list(job_ids))
        return sorted({json.loads(meta)["queue"] for meta in metas if meta})

    @translated
    def set_progress(self, lease: Lease, progress: float, message: str | None) -> bool:
        flag = self._run("set_progress", (), [lease.job_id, lease.token, repr(float(progress)),
                                              "0" if message is None else "1", message or ""])
        return bool(flag == 1)

    @translated
    def rescue_expired(self) -> list[JobRecord]:
        ids = self._client.zrangebyscore(self.keys.running, "-inf", f"({self.now()!r}", start=0, num=RESCUE_BATCH)
        if not ids:
            return []
        rows = self._run("rescue_expired", self._queues_of(ids),
                         [repr(self.retention.failed), repr(self.retention.cancelled), *ids])
        return [_record(*row) for row in rows]

    # -- operator verbs ---------------------------------------------------------------------

    def _change(self, script: str, job_id: str, action: str, *args: Any) -> JobRecord:
        reply = self._run(script, self._queues_of([job_id]), [job_id, *args])
        if reply[0] != "ok":
            raise refusal(job_id, action, reply[1] if reply[0] == "refused" else None)
        return _record(*reply[1:])

    @translated
    def cancel(self, job_id: str) -> JobRecord:
        return self._change("cancel", job_id, "cancel", repr(self.retention.cancelled))

    @translated
    def retry_now(self, job_id: str) -> JobRecord:
        return self._change("retry_now", job_id, "retry")

    @translated
    def delete(self, job_id: str) -> JobRecord:
        return self._change("delete", job_id, "delete")

    @translated
    def get(self, job_id: str) -> JobRecord | None:
        with self._client.pipeline(transaction=True) as pipe:
            for key in (self.keys.jobs, self.keys.payloads, self.keys.results, self.keys.errors):
                pipe.hget(key, job_id)
            meta, payload, result, errors = pipe.execute()
        return None if meta is None else _record(meta, payload or "", result or "", errors or "")

    @translated
    def list_jobs(self, *, state: JobState | None = None, queue: str | None = None, task: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        needle = search.lower() if search else None
        wanted: list[str] = []
        metas: dict[str, str] = {}
        newest_first = self._newest_first(state)
        while len(wanted) < offset + limit:
            ids = list(itertools.islice(newest_first, LIST_CHUNK))
            if not ids:
                break
            # Arguments are read only when searching: a plain listing filters on metadata alone.
            payloads = self._client.hmget(self.keys.payloads, ids) if needle else [""] * len(ids)
            for job_id, meta, payload in zip(ids, self._client.hmget(self.keys.jobs, ids), payloads, strict=True):
                if meta is None:
                    continue
                if _matches(job_id, json.loads(meta), payload or "", queue, task, needle):
                    wanted.append(job_id)
                    metas[job_id] = meta
        page = wanted[offset:offset + limit]
        if not page:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for key in (self.keys.payloads, self.keys.results, self.keys.errors):
                pipe.hmget(key, page)
            payloads, results, errors = pipe.execute()
        return [_record(metas[i], p or "", r or "", e or "") for i, p, r, e in
                zip(page, payloads, results, errors, strict=True)]

    def _newest_first(self, state: JobState | None) -> Iterator[str]:
        """Job ids in `state` (every state: the listing sets and the running jobs merged), newest
        first, read a chunk at a time. A job that changes state while this reads is listed once, or
        not at all."""
        states = list(JobState) if state is None else [state]
        sources = [self._running_by_seq_descending() if listed == JobState.RUNNING
                   else self._by_seq_descending(self.keys.state[listed]) for listed in states]
        seen: set[str] = set()
        for _, job_id in heapq.merge(*sources, reverse=True):
            if job_id not in seen:
                seen.add(job_id)
                yield job_id

    def _running_by_seq_descending(self) -> Iterator[tuple[float, str]]:
        """Running jobs have no listing set (see lib.lua); they are at most what the workers hold,
        so they are read whole and sorted here."""
        ids = self._client.zrange(self.keys.running, 0, -1)
        metas = self._client.hmget(self.keys.jobs, ids) if ids else []
        yield from sorted(((float(json.loads(meta)["seq"]), job_id) for job_id, meta in zip(ids, metas, strict=True)
                           if meta), reverse=True)

    def _by_seq_descending(self, key: str) -> Iterator[tuple[float, str]]:
        start = 0
        while chunk := self._client.zrevrange(key, start, start + LIST_CHUNK - 1, withscores=True):
            yield from ((seq, job_id) for job_id, seq in chunk)
            start += LIST_CHUNK

    @translated
    def counts(self) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = {}
        for field, value in self._client.hgetall(self.keys.counts).items():
            queue, state = field.rsplit("\t", 1)
            if int(value) > 0:
                result.setdefault(queue, {})[JobState(state)] = int(value)
        for queue in self._client.smembers(self.keys.paused):
            result.setdefault(queue, {})
        return result

    def reclaim(self) -> None:
        """Nothing to clear: Redis frees a claimed job's queue entry at once."""

    @translated
    def prune(self) -> int:
        total = 0
        while (deleted := int(self._run("prune", (), [PRUNE_BATCH]))) > 0:
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        return total

    @translated
    def purge(self, states: Sequence[JobState], queue: str | None = None) -> int:
        queues = [queue] if queue is not None else sorted(self._client.smembers(self.keys.queues))
        return int(self._run("purge", queues, [queue or "", *(str(s) for s in states)]))

    @translated
    def pause(self, queue: str) -> None:
        self._client.sadd(self.keys.paused, queue)

    @translated
    def resume(self, queue: str) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.srem(self.keys.paused, queue)
            pipe.publish(self.keys.wake, queue)
            pipe.execute()

    @translated
    def paused(self) -> set[str]:
        return set(self._client.smembers(self.keys.paused))

    # -- workers and their totals -------------------------------------------------------------

    @translated
    def report_worker(self, info: WorkerInfo, stats: Sequence[MinuteStats], ttl: float) -> float:
        args: list[Any] = [info.id, info.to_json(), repr(float(ttl)), repr(STATS_RETENTION)]
        for total in stats:
            args += [repr(float(total.minute)), total.queue, *(repr(number) for number in total.totals())]
        return float(self._evalsha("report_worker", self.keys.workers, args))

    @translated
    def remove_worker(self, worker_id: str) -> None:
        workers, expiry, _, _ = self.keys.workers
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(workers, worker_id)
            pipe.zrem(expiry, worker_id)
            pipe.execute()

    @translated
    def workers(self) -> list[WorkerInfo]:
        workers, expiry, _, _ = self.keys.workers
        with self._client.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.hgetall(workers)
            pipe.zrange(expiry, 0, -1, withscores=True)
            (seconds, micros), reports, expiries = pipe.execute()
        now = float(seconds) + micros / 1_000_000
        alive = sorted(worker_id for worker_id, expires_at in expiries if expires_at > now and worker_id in reports)
        return [WorkerInfo.from_json(reports[worker_id].split("\t", 1)[1], float(reports[worker_id].split("\t", 1)[0]))
                for worker_id in alive]

    @translated
    def stats(self, since: float) -> list[MinuteStats]:
        _, _, stats, index = self.keys.workers
        since = max(since, self.now() - STATS_RETENTION)
        fields = self._client.zrangebyscore(index, repr(float(since)), "+inf")
        totals = []
        for field, raw in zip(fields, self._client.hmget(stats, fields) if fields else [], strict=True):
            if raw is not None:
                minute, queue = field.split("\t", 1)
                totals.append(MinuteStats(float(minute), queue, **json.loads(raw)))
        return sorted(totals, key=lambda total: (total.minute, total.queue))

    @translated
    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._run("acquire_lock", (), [name, owner, repr(float(ttl))]) == 1)

    @translated
    def release_lock(self, name: str, owner: str) -> None:
        self._run("release_lock", (), [name, owner])

    # -- schedules ----------------------------------------------------------------------------

    @translated
    def schedule_states(self, names: Sequence[str], now: float | None = None) -> dict[str, ScheduleState]:
        if not names:
            return {}
        rows = self._run("schedule_states", (), ["" if now is None else repr(float(now)), *names])
        return {name: _schedule_state(name, raw) for name, raw in zip(names, rows, strict=True) if raw}

    @translated
    def fire_schedule(self, name: str, ticks: Sequence[tuple[float, NewJob]],
                      advance_to: float | None) -> list[JobRecord] | None:
        args: list[Any] = [name, "" if advance_to is None else repr(float(advance_to))]
        for tick, job in ticks:
            args += [repr(float(tick)), *_job_args(job)]
        reply = self._run("fire_schedule", [job.queue for _, job in ticks], args)
        if not reply:
            return None
        jobs = {job.id: job for _, job in ticks}
        return [self._created(jobs[row[2]], float(row[1])) if row[0] == 1 else self._taken(row[1:])
                for row in reply[1:]]

    @translated
    def set_schedule_paused(self, name: str, paused: bool, now: float) -> ScheduleState:
        raw = self._run("set_schedule_paused", (), [name, "1" if paused else "0", repr(float(now))])
        return _schedule_state(name, raw)

    # -- waiting for work -----------------------------------------------------------------------

    def _wake_listener(self) -> _WakeListener:
        with self._listener_lock:
            if self._listener is None:
                self._listener = _WakeListener(self._client, self.keys.wake, self._socket_timeout)
            return self._listener

    def _note_next_due(self, queues: list[str], due: list[str]) -> None:
        """After a claim from `queues` (`due`: finish_and_fetch's third reply, absent if it claimed
        nothing): when their next scheduled job is due, on this thread's monotonic clock, for
        wait_for_work. A job scheduled sooner after the claim publishes a wake-up, which the
        snapshot taken before the claim catches."""
        if not due:
            return
        deadline = time.monotonic() + float(due[0]) if due[0] else float("inf")
        self._local.next_due = (tuple(queues), deadline)

    @translated
    def wait_for_work(self, queues: Sequence[str], timeout: float, wake: threading.Event,
                      claim: Claim | None = None) -> FetchReply | None:
        """With a `claim`, the subscriber thread sends it the moment a message says work has come,
        on this thread's background connection (idle while this thread waits): the claim is on its
        way before this thread is awake (see docs/redis.md). The call is built here, beforehand: built
        on the subscriber thread, it measured slower."""
        queues = list(dict.fromkeys(queues))
        known = getattr(self._local, "next_due", None)
        if known is not None and known[0] == tuple(queues):
            timeout = min(timeout, max(0.0, known[1] - time.monotonic()))
        else:
            timeout = min(timeout, self._next_due_in(queues))
        seen = getattr(self._local, "seen", None)
        if claim is None or claim.limit <= 0:
            self._wake_listener().wait(queues, seen, timeout, wake)
            return None
        early = _FetchReply(self, self._script_connection("background"), queues,
                            *self._fetch_call([], queues, claim.limit, claim.worker_id, claim.lease_seconds))
        news: list[Snapshot] = []

        def send(snapshot: Snapshot) -> None:  # on the subscriber thread
            news.append(snapshot)  # as of the message, before the claim: the next wait's `seen`
            early.send()

        if not self._wake_listener().wait(queues, seen, timeout, wake, send):
            return None
        self._local.seen = news[0]
        return early

    def _next_due_in(self, queues: list[str]) -> float:
        """Seconds until the next scheduled job of `queues` is due (inf: none), asked of the store."""
        with self._client.pipeline(transaction=False) as pipe:
            pipe.time()
            for queue in queues:
                pipe.zrange(self.keys.scheduled(queue), 0, 0, withscores=True)
            (seconds, micros), *firsts = pipe.execute()
        due = [first[0][1] for first in firsts if first]
        return max(0.0, min(due) - (float(seconds) + micros / 1_000_000)) if due else float("inf")
