"""The crash-and-restart scenario both server engines must survive, with the server as a parameter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import BackendError, Conveyor, JobState
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def crash_and_restart_loses_nothing(url: str, ledger: Path, crash: Callable[[], None], restart: Callable[[], None],
                                    unreachable: str) -> None:
    """A worker process runs 4 long jobs with 30 more queued; the server crashes and comes back.
    Every job that was enqueued completes exactly once, the worker rides out the outage without a
    restart of its own, and the producer reconnects."""
    producer = Conveyor(url)
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.conformance.worker_app:app", "-c", "4",
         "--lease", "5", "--heartbeat", "0.5", "--log-level", "ERROR"],
        cwd=ROOT, env={**os.environ, "CONVEYOR_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        running = [producer.enqueue("mark_then_nap", [str(ledger), 1.5]) for _ in range(4)]
        queued = [producer.enqueue("add", [i, 0]) for i in range(30)]
        wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) == 4, timeout=20)
        crash()
        with pytest.raises(BackendError, match=unreachable):
            producer.enqueue("add", [0, 0])
        restart()
        after = [producer.enqueue("add", [i, 100]) for i in range(10)]
        for job in running:
            assert job.result(timeout=30) == 1, "ran once, its outcome recorded once"
        assert [job.result(timeout=30) for job in queued] == list(range(30))
        assert [job.result(timeout=30) for job in after] == [i + 100 for i in range(10)]
        assert len(ledger.read_text().split()) == 4, "no job started twice"
        assert producer.counts()["default"] == {JobState.COMPLETED: 44}
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=30)[1].decode()
        producer.close()
    assert process.returncode == 0, stderr
