"""The benchmark script keeps working: `benchmarks/bench.py --quick` runs to the end and prints
every row, for SQLite, for Redis (on a redis-server of its own, stopped afterwards) and for
PostgreSQL (on a cluster of its own, stopped and removed afterwards). It asserts nothing about
speed; the figures belong in benchmarks/README.md."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"

ROW_LABELS = [
    "enqueue one at a time (task.delay)",
    "enqueue in bulk (task.map)",
    "processed by 1 worker process (-c 8, no-op)",
    "worker peak RSS (VmHWM)",
    "enqueue-to-start latency p50 (idle worker)",
    "enqueue-to-start latency p99 (idle worker)",
    "baseline: raw sqlite3 insert, 1 row/txn",
    "baseline: raw sqlite3 claim+delete, 1 row/txn",
]

REDIS_ROW_LABELS = [
    *ROW_LABELS[:6],
    "processed by 1 worker process (-c 8, 1 INCR/job)",
    "processed by 1 worker process (-c 8, no-op counted in process)",
    "baseline: raw redis-py LPUSH, 1 per round trip",
    "baseline: raw redis-py RPOP, 1 per round trip",
    "baseline: raw redis-py LPUSH, 100 per round trip",
    "baseline: raw redis-py RPOP, 100 per round trip",
]

HUEY_ROW_LABELS = [
    "peer: huey enqueue one at a time (task())",
    "peer: huey processed by 1 consumer (-w 8 -k thread, 1 INCR/job)",
    "peer: huey processed by 1 consumer (-w 8 -k thread, no-op counted in process)",
    "peer: huey enqueue-to-start latency p50 (idle consumer)",
    "peer: huey enqueue-to-start latency p99 (idle consumer)",
]


POSTGRES_ROW_LABELS = [
    *ROW_LABELS[:6],
    "baseline: raw psycopg INSERT, 1 row per round trip",
    "baseline: raw psycopg claim (DELETE ... SKIP LOCKED), 1 row per round trip",
]

PROCRASTINATE_ROW_LABELS = [
    "peer: procrastinate enqueue one at a time (defer)",
    "peer: procrastinate processed by 1 worker (-c 8, async no-op)",
    "peer: procrastinate worker peak RSS (VmHWM)",
    "peer: procrastinate enqueue-to-start latency p50 (idle worker)",
    "peer: procrastinate enqueue-to-start latency p99 (idle worker)",
]


def run_quick(tmp_path: Path, *options: str) -> tuple[str, dict[str, Any]]:
    results = tmp_path / "results.json"
    command = [sys.executable, str(BENCH), "--quick", "--json", str(results), "--dir", str(tmp_path), *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"bench.py failed:\n{done.stdout}\n{done.stderr}"
    assert "machine:" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == [results.name], "scratch stores were left behind"
    return done.stdout, json.loads(results.read_text())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("style", ["rich", "plain"])
def test_quick_benchmark_runs_and_prints_every_row(style: str, tmp_path: Path) -> None:
    stdout, written = run_quick(tmp_path, *(["--plain"] if style == "plain" else []))
    for label in ROW_LABELS:
        assert label in stdout, f"row {label!r} missing from:\n{stdout}"
    assert set(written["figures"]) >= {"enqueue_one", "enqueue_bulk", "process", "latency_p50",
                                       "latency_p99", "sqlite_insert", "sqlite_claim_delete"}


@pytest.mark.timeout(120)
def test_quick_redis_benchmark_runs_on_its_own_server_and_stops_it(tmp_path: Path) -> None:
    stdout, written = run_quick(tmp_path, "--engine", "redis", "--plain")
    for label in REDIS_ROW_LABELS:
        assert label in stdout, f"row {label!r} missing from:\n{stdout}"
    figures = written["figures"]
    assert set(figures) >= {"enqueue_one", "enqueue_bulk", "process", "process_incr", "latency_p50",
                            "latency_p99", "redis_lpush", "redis_rpop", "redis_lpush_pipelined",
                            "redis_rpop_pipelined"}
    if importlib.util.find_spec("huey") is not None:
        for label in HUEY_ROW_LABELS:
            assert label in stdout, f"row {label!r} missing from:\n{stdout}"
        assert "vs huey" in stdout
    else:
        assert "peer rows skipped: huey is not importable" in stdout
    with socket.socket() as sock, pytest.raises(OSError):  # the benchmark's redis-server is gone
        sock.settimeout(1)
        sock.connect(("127.0.0.1", written["extras"]["redis_port"]))


@pytest.mark.timeout(120)
def test_quick_postgres_benchmark_runs_on_its_own_server_and_stops_it(tmp_path: Path) -> None:
    stdout, written = run_quick(tmp_path, "--engine", "postgres", "--plain")
    for label in POSTGRES_ROW_LABELS:
        assert label in stdout, f"row {label!r} missing from:\n{stdout}"
    figures = written["figures"]
    assert set(figures) >= {"enqueue_one", "enqueue_bulk", "process", "worker_rss", "latency_p50", "latency_p99",
                            "pg_insert", "pg_claim_delete"}
    assert "fsync=off" in stdout
    if importlib.util.find_spec("procrastinate") is not None:
        for label in PROCRASTINATE_ROW_LABELS:
            assert label in stdout, f"row {label!r} missing from:\n{stdout}"
        assert "vs procrastinate" in stdout
        assert set(figures) >= {"procrastinate_enqueue_one", "procrastinate_process", "procrastinate_latency_p50"}
    else:
        assert "peer rows skipped: procrastinate is not importable" in stdout
        assert not any(key.startswith("procrastinate_") for key in figures)
    extras = written["extras"]
    assert not Path(extras["postgres_dir"]).exists(), "the PostgreSQL cluster's directory was left behind"
    with socket.socket() as sock, pytest.raises(OSError):  # the benchmark's server is gone
        sock.settimeout(1)
        sock.connect(("127.0.0.1", extras["postgres_port"]))


COMPARE = BENCH.parent / "compare.py"


@pytest.mark.timeout(600)
def test_the_comparison_runs_conveyor_and_a_peer_from_its_own_venv(tmp_path: Path) -> None:
    """`benchmarks/compare.py --quick` on one engine with one peer: it builds (or reuses) the peers'
    own virtual environment, measures both in one run, prints the table and the ratios, and writes
    its results file. Nothing about speed is asserted."""
    out = tmp_path / "compare.json"
    result = subprocess.run([sys.executable, str(COMPARE), "--quick", "--engines", "sqlite", "--libraries",
                             "conveyor,huey", "--json", str(out), "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "conveyor" in result.stdout and "huey" in result.stdout
    data = json.loads(out.read_text())
    assert data, "an empty results file"


PROFILE = BENCH.with_name("profile.py")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["drain", "bulk"])
def test_the_profiler_samples_a_worker_and_a_producer(path: str, tmp_path: Path) -> None:
    out = tmp_path / "profile"
    jobs = "2000" if path == "drain" else "20000"  # a bulk enqueue of 2,000 is over in ~30 ms: too few samples
    done = subprocess.run([sys.executable, str(PROFILE), "--engine", "sqlite", "--path", path, "--jobs", jobs,
                           "--rate", "1000", "--out", str(out)], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"profile.py failed:\n{done.stdout}\n{done.stderr}"
    assert f"sqlite {path}: {jobs} jobs" in done.stdout
    stacks = (out / "stacks.txt").read_text()
    hot = "Worker._record_and_claim" if path == "drain" else "Conveyor.enqueue_calls"
    assert hot in stacks, f"{hot} never sampled:\n{stacks[:2000]}"
    assert "own time:" in (out / "summary.txt").read_text()


def test_a_backlog_only_run_is_timed_in_tenths_of_its_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(COMPARE.parent))
    compare = importlib.import_module("compare")
    assert (compare.parse_args(["--backlog-only"]).backlog_every, compare.parse_args(["--backlog"]).backlog_every) \
        == (100_000, 100_000)
    assert compare.parse_args(["--backlog-only", "--quick"]).backlog_every == 2_000
