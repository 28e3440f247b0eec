"""Half-open connections (issue 7, scenario 15), on the server engines: a worker reaches the store
through a proxy that stops forwarding on every connection it carries without closing any. The
worker must notice within a bounded time, reconnect and consume again; a worker that is alive but
no longer consuming is the bug this catches. Why not SQLite: it has no connection to stall."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import wait_for
from tests.faults.harness import Scenario
from tests.faults.proxy import StallingProxy

CONCURRENCY = 4
NOTICE_BOUND = 20.0  # seconds from the stall until the worker runs a job again, and is woken again
WOKEN = 0.2  # seconds from enqueue to start that only a wake-up gives (the idle worker polls every 1 s)


def start_latency(scenario: Scenario) -> float:
    """Enqueue one job and wait for it to start: seconds from enqueue to start."""
    job_id = scenario.enqueue(1, 0.0)[0]
    enqueued_at = time.time()
    started = wait_for(lambda: [run.started for run in scenario.ledger.runs() if run.job_id == job_id],
                       timeout=10, interval=0.002)
    return started[0] - enqueued_at


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine", ["redis", "postgres"])
def test_a_worker_behind_a_stalled_connection_reconnects_and_consumes_again(
        engine_url: str, tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    proxy = StallingProxy(urlsplit(engine_url).port or 0)
    scenario = Scenario(engine_url, tmp_path)
    try:
        scenario.enqueue(200, 0.01)
        with scenario.workers(1, "-c", str(CONCURRENCY), "--lease", "3", "--heartbeat", "0.5",
                              env={"CONVEYOR_URL": through(engine_url, proxy.port)}):
            assert wait_for(lambda: len(scenario.ledger.runs()) >= 50, timeout=60)
            frozen = proxy.stall()
            stalled_at = time.time()
            after = set(scenario.enqueue(200, 0.01))
            assert wait_for(lambda: any(run.job_id in after for run in scenario.ledger.runs()),
                            timeout=NOTICE_BOUND + 10, interval=0.05), "the worker stopped consuming"
            noticed = min(run.started for run in scenario.ledger.runs() if run.job_id in after) - stalled_at
            scenario.wait_finished(timeout=120)
            # Consuming by polling is not enough: wake-ups (the worker's subscription) must work again,
            # so an idle worker starts a job within milliseconds instead of at its next 1 s poll.
            left = max(1.0, stalled_at + NOTICE_BOUND - time.time())
            assert wait_for(lambda: start_latency(scenario) < WOKEN, timeout=left), "wake-ups never came back"
            woken_again = time.time() - stalled_at
            latencies = sorted(start_latency(scenario) for _ in range(5))
        verdict = scenario.verdict()
        summary = (f"{frozen} connections stalled; consuming again after {noticed:.2f}s, wake-ups after "
                   f"{woken_again:.2f}s (median start latency then {latencies[2] * 1000:.1f} ms); {verdict.summary()}")
        record_property("verdict", summary)
        print(f"\n{summary}")
        assert noticed < NOTICE_BOUND and latencies[2] < WOKEN
        assert verdict.lost == [] and verdict.unexpected == [] and verdict.overlapping == []
        assert verdict.extra_runs <= CONCURRENCY, "more runs again than the stalled worker held"
    finally:
        scenario.close()
        proxy.close()
