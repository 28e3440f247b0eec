"""The benchmark script keeps working: `benchmarks/bench.py --quick` runs to the end and prints
every row. It asserts nothing about speed; the figures belong in benchmarks/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.timeout(120)
@pytest.mark.parametrize("style", ["rich", "plain"])
def test_quick_benchmark_runs_and_prints_every_row(style: str, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    command = [sys.executable, str(BENCH), "--quick", "--json", str(results), "--dir", str(tmp_path)]
    if style == "plain":
        command.append("--plain")
    done = subprocess.run(command, capture_output=True, text=True, timeout=110)

    assert done.returncode == 0, f"bench.py failed:\n{done.stdout}\n{done.stderr}"
    for label in ROW_LABELS:
        assert label in done.stdout, f"row {label!r} missing from:\n{done.stdout}"
    assert "machine:" in done.stdout
    written = json.loads(results.read_text())
    assert set(written["figures"]) >= {"enqueue_one", "enqueue_bulk", "process", "latency_p50", "latency_p99",
                                       "sqlite_insert", "sqlite_claim_delete"}
    assert [p.name for p in tmp_path.iterdir()] == [results.name], "scratch stores were left behind"
