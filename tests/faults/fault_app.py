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


# Poison jobs (test_poison.py): each fails on its own; `attempts` is their whole budget.
POISON_ATTEMPTS = 3


@app.task(name="die", max_retries=POISON_ATTEMPTS - 1, retry_delay=0.05, retry_jitter=False)
def die() -> None:
    """Records its run, then ends its own process as a crash would."""
    job = current_job()
    ledger().start(job.id, job.attempt)
    os._exit(70)


@app.task(name="segfault", max_retries=POISON_ATTEMPTS - 1, retry_delay=0.05, retry_jitter=False)
def segfault() -> None:
    job = current_job()
    ledger().start(job.id, job.attempt)
    import ctypes
    ctypes.string_at(0)  # reads address 0: SIGSEGV


@app.task(name="spin", max_retries=POISON_ATTEMPTS - 1, retry_delay=0.05, retry_jitter=False, timeout=0.5)
def spin() -> None:
    job = current_job()
    ledger().start(job.id, job.attempt)
    while True:
        pass


@app.task(name="hog", max_retries=POISON_ATTEMPTS - 1, retry_delay=0.05, retry_jitter=False)
def hog() -> None:
    """Allocates 16 MiB at a time until something stops it."""
    job = current_job()
    ledger().start(job.id, job.attempt)
    chunks = []
    while True:
        chunks.append(bytearray(16 * 2**20))
