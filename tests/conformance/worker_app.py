"""Tasks the worker conformance tests run, importable by worker processes (`tests.conformance.worker_app:app`).

The store URL comes from CONVEYOR_URL (worker processes) or is set by the test fixture."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Retry, current_job

app = Conveyor(lease_seconds=2.0, heartbeat_interval=0.2)


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="async_add")
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@app.task(name="fail_always", max_retries=2, retry_backoff="fixed", retry_delay=0.05, retry_jitter=False)
def fail_always(message: str) -> None:
    raise ValueError(message)


@app.task(name="flaky", max_retries=3, retry_delay=0.02, retry_jitter=False)
def flaky(failures: int) -> int:
    attempt = current_job().attempt
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@app.task(name="not_retryable", max_retries=5, retry_on=(ConnectionError,))
def not_retryable() -> None:
    raise ValueError("bad input is not worth retrying")


@app.task(name="retry_later", max_retries=2)
def retry_later(delay: float) -> int:
    if current_job().attempt == 1:
        raise Retry(delay=delay)
    return current_job().attempt


@app.task(name="bound_retry", bind=True, max_retries=3, default_retry_delay=0.05)
def bound_retry(self: Any, until: int) -> int:
    if self.request.attempt < until:
        try:
            raise ConnectionError("temporary")
        except ConnectionError as exc:
            raise self.retry(exc=exc) from None
    return int(self.request.retries)


@app.task(name="spin", max_retries=0)
def spin(seconds: float) -> str:
    """CPU-bound: never yields, never sleeps."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


@app.task(name="nap", max_retries=0)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@app.task(name="async_nap", max_retries=0)
async def async_nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


class Gauge:
    """How many `gauged` jobs run at once in this process (the tests' in-thread workers), and the most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


GAUGE = Gauge()


@app.task(name="gauged", max_retries=0)
def gauged(seconds: float) -> None:
    with GAUGE:
        time.sleep(seconds)


@app.task(name="async_gauged", max_retries=0)
async def async_gauged(seconds: float) -> None:
    with GAUGE:
        await asyncio.sleep(seconds)


@app.task(name="until_cancelled", max_retries=3)
def until_cancelled(marker: str) -> str:
    Path(marker).touch()
    while not current_job().cancel_requested:
        time.sleep(0.01)
    return "stopped early"


@app.task(name="async_until_cancelled", max_retries=3)
async def async_until_cancelled(marker: str) -> str:
    Path(marker).touch()
    await asyncio.sleep(3600)
    return "never"


@app.task(name="fail_when_told", max_retries=3, retry_delay=0.01, retry_jitter=False)
def fail_when_told(marker: str, go: str) -> None:
    """Touches `marker`, then fails (a retryable error) once the file `go` exists."""
    Path(marker).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    raise ValueError("told to fail")


@app.task(name="progress_then_wait", max_retries=0)
def progress_then_wait(marker: str) -> str:
    current_job().set_progress(40, "resizing")
    while not Path(marker).exists():
        time.sleep(0.01)
    return "ok"


LOOP_THREADS: list[int] = []  # the event loops async_progress_then_wait ran on


@app.task(name="async_progress_then_wait", max_retries=0)
async def async_progress_then_wait(marker: str) -> str:
    LOOP_THREADS.append(threading.get_ident())
    await current_job().aset_progress(40, "resizing")
    while not Path(marker).exists():
        await asyncio.sleep(0.01)
    return "ok"


@app.task(name="crash", max_retries=1, retry_delay=0.01)
def crash() -> None:
    os._exit(13)


@app.task(name="mark_then_nap", max_retries=3)
def mark_then_nap(marker: str, seconds: float) -> int:
    """Appends its pid to `marker` when it starts, so a test can kill that process."""
    with open(marker, "a") as ledger:
        ledger.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return current_job().attempt


@app.task(name="returns_object", max_retries=3)
def returns_object() -> object:
    return object()


@app.task(name="hog", max_retries=0)
def hog(megabytes: int) -> int:
    """Allocates `megabytes` MiB, 16 MiB at a time (the --max-memory test)."""
    chunks = [bytearray(16 * 2**20) for _ in range(megabytes // 16)]
    return len(chunks)
