"""SQLite specifics (issue 7, scenario 8): eight processes on one file, a full disk, a live copy.

SQLite only, because each of these is about the store being a file on this machine's filesystem
that every process opens itself: its single write lock shared by processes ("database is
locked"), its file and WAL growing on a filesystem that fills up, and the file being copied while
in use. Redis and PostgreSQL keep their data behind a server, where none of the three applies
(their server-side faults are the engine-kill and partition scenarios).

- Eight processes: four producers (one at a time, batches of 100, 1,000 shared unique ids) and four
  workers start together on a file that does not exist yet. Nothing may raise in a producer, and
  a worker may not even log a lock error: with `busy_timeout` at 30 s a logged "locked" means a
  write waited 30 s, so a logged retry counts as escaping here, not only an exception.
- Full disk: the store on a 16 MiB tmpfs mounted for the test, 10 MiB of it taken by a filler file
  written first, so the store (with its WAL of up to about 4 MiB before SQLite checkpoints it) has
  about 6 MiB. Enqueue until it fails; then free the filler and drain.
- Live copy: a plain copy of `jobs.db` alone is not a backup in WAL mode (commits not yet
  checkpointed are only in `jobs.db-wal`; the negative control shows acknowledged jobs missing from
  it), and copying `jobs.db` and `jobs.db-wal` one after the other is not atomic either (a
  checkpoint or a WAL restart between or during the two copies can tear it). What conveyor
  promises is `SQLiteBackend.backup(path)` (SQLite's online backup API, one snapshot): taken under
  load, each copy passes `PRAGMA integrity_check` and holds every job whose enqueue returned before
  the backup started.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import BackendError, Conveyor, JobState
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.errors import ConfigurationError
from tests.conftest import wait_for
from tests.faults import fault_app
from tests.faults.harness import ROOT, Scenario

PER_PRODUCER = 10_000  # plus the 1,000 shared ids each producer also enqueues


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def job_ids(path: Path) -> dict[str, str]:
    """id -> state of every job in the SQLite file at `path`, read without conveyor."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, state FROM conveyor_jobs").fetchall())
    finally:
        conn.close()


def backend(scenario: Scenario) -> SQLiteBackend:
    store = scenario.app.backend
    assert isinstance(store, SQLiteBackend)
    return store


@pytest.mark.timeout(300)
def test_eight_processes_on_one_new_file_never_see_a_lock_error(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    scenario = Scenario(f"sqlite:///{store}", tmp_path)
    try:
        with scenario.workers(4, "-c", "4") as workers:  # all eight start before the file exists
            created, producer_errors = scenario.run_producers(4, PER_PRODUCER, tmp_path, timeout=240)
            assert all(process.poll() is None for process in workers.processes), "a worker died"
            scenario.wait_finished(timeout=180)
        logs = workers.stderr()
        verdict = scenario.verdict()
        print(f"\n8 processes: {verdict.summary()}; worker stderr {len(logs)} chars")
        for text in [*producer_errors, logs]:
            lowered = text.lower()
            assert "locked" not in lowered and "busy" not in lowered, text[-3000:]
            assert "traceback" not in lowered and "store failed" not in lowered, text[-3000:]
            assert "could not reach the store" not in lowered and "could not report" not in lowered, text[-3000:]
        assert len(created) == 4 * PER_PRODUCER + 1000
        assert {job_id: n for job_id, n in created.items() if n != 1} == {}, "each id created exactly once"
        assert verdict.lost == [] and verdict.unexpected == [] and verdict.completed == len(created)
        assert verdict.duplicated == {} and verdict.overlapping == [] and verdict.finished_twice == []
        assert integrity(store) == "ok"
    finally:
        scenario.close()


@pytest.mark.timeout(300)
def test_a_full_disk_fails_enqueue_clearly_corrupts_nothing_and_recovers(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (10 * 2**20))  # written first, so that deleting it frees the disk
        store = disk / "jobs.db"
        scenario = Scenario(f"sqlite:///{store}", tmp_path)  # the ledger stays off the small disk
        try:
            with scenario.workers(1, "-c", "4") as workers:
                # Four long jobs hold the worker, so it is mid-job when the disk fills: their finishes
                # and the heartbeats of their leases (1 s) fall in the full period.
                held = [job.id for job in fault_app.work.map([(6.0,)] * 4)]
                scenario.enqueued += held
                wait_for(lambda: len(scenario.ledger.runs()) == 4, timeout=60, interval=0.05)
                error: BackendError | None = None
                n = 0
                while error is None:
                    try:
                        if n % 2:
                            scenario.enqueued += [job.id for job in fault_app.work.map([(0.0,)] * 100)]
                        else:
                            scenario.enqueued.append(fault_app.work.delay(0.0).id)
                    except BackendError as exc:
                        error = exc
                    n += 1
                usage = shutil.disk_usage(disk)
                sizes = {p.name: p.stat().st_size for p in disk.iterdir()}
                message = str(error)
                print(f"\nfull after {len(scenario.enqueued) - 4} enqueued jobs ({n} calls); {usage.free} bytes "
                      f"free of {usage.total}; files {sizes}\nerror: {message}")
                assert "is full" in message and str(store) in message and "free space" in message
                assert isinstance(error.__cause__, sqlite3.OperationalError)

                # Nothing acknowledged is missing and the file is sound, while the disk is still full.
                stored = job_ids(store)
                assert set(scenario.enqueued) <= set(stored)
                assert len(stored) == len(scenario.enqueued), "only acknowledged enqueues are stored"
                assert integrity(store) == "ok"

                # The worker rides it out: its held jobs returned, but their outcomes cannot be
                # recorded nor their leases renewed, so the store still shows them running, lease lapsed.
                def held_jobs_lapsed() -> bool:
                    runs = [run for run in scenario.ledger.runs() if run.job_id in held]
                    now = time.time()
                    records = [backend(scenario).get(job_id) for job_id in held]
                    return all(run.ended is not None for run in runs) and all(
                        r is not None and r.state == JobState.RUNNING and (r.lease_expires_at or now) < now - 1
                        for r in records)

                wait_for(held_jobs_lapsed, timeout=60, interval=0.1)
                with pytest.raises(BackendError, match="is full"):
                    fault_app.work.delay(0.0)
                assert workers.processes[0].poll() is None, "the worker died on the full disk"

                filler.unlink()
                scenario.enqueued += [job.id for job in fault_app.work.map([(0.0,)] * 100)]
                scenario.enqueued.append(fault_app.work.delay(0.0).id)
                scenario.wait_finished(timeout=180)
                assert workers.processes[0].poll() is None
            logs = workers.stderr()
            verdict = scenario.verdict()
            print(f"after freeing {filler.name}: {verdict.summary()}; worker logged "
                  f"{logs.count('is full')} full-disk warnings")
            assert "is full" in logs and "Traceback" not in logs
            assert verdict.lost == [] and verdict.unexpected == [] and verdict.overlapping == []
            # At least once: a held job whose lease lapsed while full may be rescued and run again.
            assert set(verdict.duplicated) <= set(held)
            assert integrity(store) == "ok"
        finally:
            scenario.close()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.timeout(300)
def test_a_live_copy_is_consistent_only_through_backup(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    scenario = Scenario(f"sqlite:///{store}", tmp_path)
    try:
        # Negative control: a plain copy of jobs.db alone misses commits that are still in jobs.db-wal.
        acknowledged = [job.id for job in fault_app.work.map([(0.0,)] * 50)]
        scenario.enqueued += acknowledged
        plain = tmp_path / "plain-copy.db"
        shutil.copyfile(store, plain)
        conn = sqlite3.connect(plain)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            in_copy = ({row[0] for row in conn.execute("SELECT id FROM conveyor_jobs")}
                       if "conveyor_jobs" in tables else set())
        finally:
            conn.close()
        assert not set(acknowledged) <= in_copy, "jobs.db alone held every acknowledged job"
        print(f"\nplain cp of jobs.db alone: {len(set(acknowledged) & in_copy)} of {len(acknowledged)} "
              f"acknowledged jobs in it (tables: {sorted(tables)})")

        with pytest.raises(ConfigurationError):
            backend(scenario).backup(store)

        stop = tmp_path / "stop"
        outputs = [tmp_path / f"steady-{n}.txt" for n in range(2)]
        producers = [subprocess.Popen([sys.executable, "-m", "tests.faults.steady_producer", str(out), str(stop)],
                                      cwd=ROOT, env={**os.environ, **scenario.env}, stderr=subprocess.PIPE)
                     for out in outputs]
        try:
            with scenario.workers(1, "-c", "4"):
                copies = []
                for n in range(3):
                    wanted = len(job_ids(store)) + 1500

                    def grown(wanted: int = wanted) -> bool:
                        return len(job_ids(store)) >= wanted

                    wait_for(grown, timeout=120, interval=0.1)
                    copy = tmp_path / f"backup-{n}.db"
                    completed_before = {i for i, state in job_ids(store).items() if state == "completed"}
                    started = time.time()
                    backend(scenario).backup(copy)
                    took = time.time() - started
                    in_copy_states = job_ids(copy)
                    acked_before = {line.split()[0] for out in outputs for line in out.read_text().splitlines()
                                    if not line.startswith("!") and float(line.split()[1]) < started}
                    assert integrity(copy) == "ok"
                    assert acked_before <= set(in_copy_states), "a job acknowledged before the backup is missing"
                    assert set(acknowledged) <= set(in_copy_states)
                    assert all(in_copy_states[i] == "completed" for i in completed_before)
                    assert not Path(f"{copy}-wal").exists()
                    copies.append((copy, len(in_copy_states), len(acked_before), took))
                stop.touch()
                for producer in producers:
                    _, stderr = producer.communicate(timeout=60)
                    assert producer.returncode == 0, stderr.decode()
                scenario.enqueued += [line.split()[0] for out in outputs for line in out.read_text().splitlines()
                                      if not line.startswith("!")]
                scenario.wait_finished(timeout=180)
        finally:
            stop.touch()
            for producer in producers:
                if producer.poll() is None:
                    producer.kill()
                    producer.wait()
        for copy, jobs, acked, took in copies:
            print(f"{copy.name}: {jobs} jobs, {acked} acknowledged before it all present, integrity ok, {took:.3f}s")
        # A copy is a store: conveyor opens it and sees its jobs.
        restored = Conveyor(f"sqlite:///{copies[-1][0]}")
        try:
            assert sum(sum(states.values()) for states in restored.counts().values()) == copies[-1][1]
        finally:
            restored.close()
        verdict = scenario.verdict()
        print(verdict.summary())
        assert verdict.lost == [] and verdict.unexpected == [] and verdict.overlapping == []
        assert not any(line.startswith("!") for out in outputs for line in out.read_text().splitlines())
    finally:
        scenario.close()
