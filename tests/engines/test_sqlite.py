"""SQLite-only behaviour: what a file on one machine can get wrong (someone else's database, a
read-only file, many processes writing at once). The other engines have no file to test."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conveyor import BackendError, ConfigurationError, Conveyor
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.backends.sqlite import engine as sqlite_engine
from conveyor.backends.sqlite.turn import WriteTurn
from conveyor.job import JobState, NewJob
from tests.conftest import wait_for


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = Conveyor("sqlite:///relative.db")
    app.counts()
    assert (tmp_path / "relative.db").exists()
    app.close()
    assert app.backend._turn is not None  # type: ignore[attr-defined]
    absolute = Conveyor(f"sqlite:///{tmp_path}/abs.db?busy_timeout=5&synchronous=full&watch=off&turn=off")
    absolute.counts()
    assert absolute.backend.watch is False  # type: ignore[attr-defined]
    assert absolute.backend._turn is None  # type: ignore[attr-defined]
    assert (tmp_path / "abs.db").exists()
    absolute.close()


def test_default_url_is_conveyor_db_in_the_working_directory(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    app = Conveyor()
    assert app.url == "sqlite:///conveyor.db"
    assert not (tmp_path / "conveyor.db").exists()  # opened on first use, not at import
    app.counts()
    assert (tmp_path / "conveyor.db").exists()
    app.close()
    monkeypatch.setenv("CONVEYOR_URL", f"sqlite:///{tmp_path}/env.db")
    assert Conveyor().url.endswith("env.db")


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite://", "sqlite:///relative"), ("sqlite:///:memory:", "cannot be shared"),
    ("sqlite:///x.db?fast=1", "unknown option 'fast'"), ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
    ("sqlite:///x.db?watch=maybe", "watch='maybe'"),
    ("mysql://localhost/db", "unknown store URL"),
])
def test_bad_urls_are_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Conveyor(url).backend  # noqa: B018


def test_a_database_that_is_not_ours_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    with pytest.raises(BackendError, match="conveyor did not create"):
        Conveyor(f"sqlite:///{path}").backend  # noqa: B018
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == {"users"} and mode == "delete"  # not even switched to WAL


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 100)
    with pytest.raises(BackendError, match="not a SQLite database"):
        Conveyor(f"sqlite:///{path}").backend  # noqa: B018
    assert path.read_text() == "shopping list\n" * 100


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Root ignores permission bits, so as root mark the file immutable instead."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)


def test_a_read_only_store_says_so(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    app = Conveyor(f"sqlite:///{path}")
    app.enqueue("t")
    app.close()
    with read_only(path):
        reader = Conveyor(f"sqlite:///{path}")
        with pytest.raises(BackendError, match="read-only: give this process write access"):
            reader.enqueue("t")
        reader.close()
    assert sum(Conveyor(f"sqlite:///{path}").counts()["default"].values()) == 1


def _produce_and_consume(url: str, count: int, start: Any, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    app = Conveyor(url)
    done: list[str] = []
    start.wait(timeout=60)
    for _ in range(count):
        app.backend.enqueue([NewJob(id=uuid.uuid4().hex, task="t", queue="q", priority=0, payload="{}",
                                    max_attempts=1, timeout=None)])
        done.extend(r.id for r in app.backend.fetch(["q"], 2, worker_id=str(os.getpid()), lease_seconds=60))
    out.put(done)
    app.close()


def _in_eight_processes(target: Callable[..., None], *args: Any) -> list[Any]:
    """Run target(*args, start, out) in eight spawned processes; `start` is a barrier for all
    eight, and each puts one list on `out`. Returns those lists' items."""
    ctx = multiprocessing.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(8)
    procs = [ctx.Process(target=target, args=(*args, start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    items = [item for _ in procs for item in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return items


def test_eight_processes_enqueueing_and_claiming_at_once_never_see_a_lock_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/busy.db"
    Conveyor(url).counts()
    claimed = _in_eight_processes(_produce_and_consume, url, 150)
    assert len(claimed) == len(set(claimed))  # no job claimed twice
    app = Conveyor(url)
    counts = app.counts()["q"]
    assert sum(counts.values()) == 1200  # every enqueue landed
    app.close()


def _open_new_stores(directory: str, rounds: int, start: Any, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    errors: list[str] = []
    for n in range(rounds):
        start.wait(timeout=60)
        try:
            Conveyor(f"sqlite:///{directory}/{n}.db").counts()
        except BackendError as exc:
            errors.append(f"round {n}: {exc!r} caused by {exc.__cause__!r}")
    out.put(errors)


def test_eight_processes_opening_the_same_new_file_at_once_all_get_a_store(tmp_path: Path) -> None:
    # Each round, eight processes open one new file at the same moment, so they race to switch it to
    # WAL; SQLite refuses all but one at once, without waiting (this failed about 1 round in 15).
    rounds = 40
    assert _in_eight_processes(_open_new_stores, str(tmp_path), rounds) == []
    for n in range(rounds):
        assert sqlite3.connect(tmp_path / f"{n}.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_made_by_the_first_schema_is_upgraded_and_keeps_its_jobs(tmp_path: Path) -> None:
    from conveyor.backends.sql_files import load_migrations
    path = tmp_path / "old.db"
    [(_, _, first), *later] = load_migrations("conveyor.backends.sqlite")
    with sqlite3.connect(path) as conn:  # a store as conveyor 0.1 left it
        conn.executescript(first)
        conn.execute("INSERT INTO conveyor_meta (key, value) VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO conveyor_jobs (id, task, queue, priority, state, payload, run_at, enqueued_at, "
                     "max_attempts) VALUES ('old-1', 't', 'default', 0, 'queued', '{}', 0, 0, 1)")
    app = Conveyor(f"sqlite:///{path}")
    assert app.get_job("old-1").status == JobState.QUEUED
    assert app.workers() == []  # the tables a later schema adds are there
    app.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM conveyor_meta").fetchone() == (str(later[-1][0]),)
        conn.execute("UPDATE conveyor_meta SET value = '99'")
    with pytest.raises(BackendError, match="version 99, newer"):
        Conveyor(f"sqlite:///{path}").backend  # noqa: B018


def _enqueue_from_another_process(url: str) -> None:
    Conveyor(url).enqueue("t", queue="q")


def _waits(backend: SQLiteBackend) -> tuple[threading.Thread, threading.Event]:
    """An idle worker's wait on `backend` in a thread; the event is set when the wait returns."""
    returned = threading.Event()

    def wait() -> None:
        backend.wait_for_work(["q"], 30.0, threading.Event())
        returned.set()

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, returned


@pytest.mark.parametrize("watch", [True, False], ids=["inotify", "polling"])
def test_an_idle_wait_returns_when_another_process_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           watch: bool) -> None:
    # Why SQLite only: how a wait learns of another process's commit is the engine's own business.
    # Each way is left alone: with the watch, the wait's own check of the counter is put off for a
    # minute, so only the -wal file's inotify event can end it; without, only polling can.
    monkeypatch.setattr(sqlite_engine, "WATCHED_POLL", 60.0)
    url = f"sqlite:///{tmp_path}/jobs.db?watch={'on' if watch else 'off'}"
    backend = SQLiteBackend(tmp_path / "jobs.db", watch=watch)
    earlier = set(threading.enumerate())  # watches of other tests' stores not yet closed are not this one's
    try:
        thread, returned = _waits(backend)
        wait_for(lambda: _waiting(backend) or not watch)
        process = multiprocessing.get_context("spawn").Process(target=_enqueue_from_another_process, args=(url,))
        process.start()
        process.join(timeout=60)
        assert returned.wait(timeout=10), "the commit did not end the wait"
        thread.join()
        watchers = [t for t in set(threading.enumerate()) - earlier if t.name == "conveyor-sqlite-watch"]
        assert len(watchers) == (1 if watch else 0)
    finally:
        backend.close()  # which also ends a wait still going: the watch wakes its waiters as it stops
    assert not any(t.is_alive() for t in watchers), "close() left the watch thread running"


def _waiting(backend: SQLiteBackend) -> bool:
    watch = backend._watch
    return watch is not None and bool(watch._waiters)


def test_an_idle_wait_reads_the_counter_ten_times_a_second_not_five_hundred(tmp_path: Path) -> None:
    # Why SQLite only: the other engines are told of work by their server and never poll.
    backend = SQLiteBackend(tmp_path / "jobs.db")
    conn = backend._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    started = time.monotonic()
    backend.wait_for_work(["q"], 1.0, threading.Event())
    waited = time.monotonic() - started
    checks = sum("data_version" in statement for statement in statements)
    assert waited >= 0.99 and checks <= 11, (waited, checks)
    backend.close()


def _new_job() -> NewJob:
    return NewJob(id=uuid.uuid4().hex, task="t", queue="q", priority=0, payload="{}", max_attempts=1, timeout=None)


def _hold_the_turn(store: str, held: Any, release: Any, die: bool) -> None:
    turn = WriteTurn.open(Path(store))
    assert turn is not None and turn.acquire(5)
    held.set()
    if die:
        os._exit(0)  # dies holding it
    release.wait(timeout=60)
    turn.release()


@contextmanager
def _turn_held_elsewhere(store: Path, *, die: bool = False) -> Iterator[Any]:
    """Another process holds `store`'s write turn until the yielded event is set (or has died holding it)."""
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    process = ctx.Process(target=_hold_the_turn, args=(str(store), held, release, die))
    process.start()
    try:
        assert held.wait(timeout=60)
        if die:
            process.join(timeout=30)
        yield release
    finally:
        release.set()
        process.join(timeout=30)


def test_a_writer_waits_for_another_process_turn_and_writes_as_soon_as_it_is_free(tmp_path: Path) -> None:
    # Why SQLite only: the other engines' servers order their writers themselves.
    backend = SQLiteBackend(tmp_path / "jobs.db")
    job = _new_job()
    written = threading.Event()
    with _turn_held_elsewhere(tmp_path / "jobs.db") as release:
        writer = threading.Thread(target=lambda: (backend.enqueue([job]), written.set()))
        writer.start()
        assert not written.wait(0.3), "the write went ahead during another process's turn"
        release.set()
        assert written.wait(10), "the write did not go ahead once the turn was free"
    writer.join()
    assert backend.get(job.id) is not None
    backend.close()


def test_a_turn_held_past_busy_timeout_holds_up_no_writer_beyond_it(tmp_path: Path) -> None:
    # A process stopped while it holds the turn (SIGSTOP, `docker pause`) must not hang the others:
    # after busy_timeout they go on to SQLite's own lock, which is free here.
    backend = SQLiteBackend(tmp_path / "jobs.db", busy_timeout=0.5)
    job = _new_job()
    with _turn_held_elsewhere(tmp_path / "jobs.db"):
        started = time.monotonic()
        backend.enqueue([job])
        waited = time.monotonic() - started
    assert 0.45 <= waited < 5, waited
    assert backend.get(job.id) is not None
    backend.close()


def test_a_turn_whose_holder_died_is_taken_at_once(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "jobs.db")  # busy_timeout 30 s
    with _turn_held_elsewhere(tmp_path / "jobs.db", die=True):
        started = time.monotonic()
        backend.enqueue([_new_job()])
        waited = time.monotonic() - started
    assert waited < 5, waited
    backend.close()


def test_a_turn_file_set_up_by_another_platform_is_left_alone(tmp_path: Path) -> None:
    # Containers sharing a volume may differ in C library: their mutexes are not the same bytes.
    foreign = b"conveyor-turn-1 linux riscv64 musl".ljust(4096, b"\0")
    (tmp_path / "jobs.db-turn").write_bytes(foreign)
    backend = SQLiteBackend(tmp_path / "jobs.db")
    assert backend._turn is None
    backend.enqueue([_new_job()])
    assert (tmp_path / "jobs.db-turn").read_bytes() == foreign
    backend.close()


def test_close_unmaps_the_turn_file(tmp_path: Path) -> None:
    # A mapping keeps its filesystem busy: a store on a volume could not be unmounted after close().
    maps = Path("/proc/self/maps")
    backend = SQLiteBackend(tmp_path / "jobs.db")
    backend.enqueue([_new_job()])
    assert str(tmp_path / "jobs.db-turn") in maps.read_text()
    backend.close()
    assert str(tmp_path / "jobs.db-turn") not in maps.read_text()


def test_a_thread_holding_the_turn_is_not_kept_waiting_for_itself(tmp_path: Path) -> None:
    # Two stores opened on one file in one process: a write through one inside a write through the
    # other must not wait busy_timeout for a turn its own thread holds.
    (tmp_path / "jobs.db").touch()
    first, second = WriteTurn.open(tmp_path / "jobs.db"), WriteTurn.open(tmp_path / "jobs.db")
    assert first is not None and second is not None
    assert first.acquire(5)
    started = time.monotonic()
    assert not second.acquire(5)
    assert time.monotonic() - started < 1
    first.release()
    assert second.acquire(5)
    second.release()
