"""The jobs the fault suite runs (`tests.faults.fault_app:app`): each records its run in the
ledger named by $CONVEYOR_LEDGER. The store URL comes from $CONVEYOR_URL."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor, current_job
from tests.faults.ledger import Ledger

app = Conveyor(lease_seconds=1.0, heartbeat_interval=0.2)
_ledger: Ledger | None = None


def ledger() -> Ledger:
    global _ledger
    if _ledger is None:
        _ledger = Ledger(os.environ["CONVEYOR_LEDGER"])
    return _ledger


@app.task(name="work", max_retries=10, retry_delay=0.05, retry_jitter=False)
def work(seconds: float, fail_first: bool = False) -> int:
    """Sleeps `seconds` between writing its start and its end; with `fail_first`, its first attempt
    fails after the sleep (so the outcome to record is a retry)."""
    job = current_job()
    run = ledger().start(job.id, job.attempt)
    time.sleep(seconds)
    failing = fail_first and job.attempt == 1
    ledger().end(run, ok=not failing)
    if failing:
        raise ConnectionError("the first attempt fails on purpose")
    return job.attempt
