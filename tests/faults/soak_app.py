"""The soak scenario's app (`tests.faults.soak_app:app`): short retention, so the store must stay
bounded by it, and one task with three kinds of job. Each first attempt appends its start latency
(seconds from enqueue, one machine's clock) to the file named by $CONVEYOR_SOAK_LOG."""

from __future__ import annotations

import os
import threading
import time

from conveyor import Conveyor, current_job

RETENTION = 5.0
app = Conveyor(result_ttl=RETENTION, failed_ttl=RETENTION, cancelled_ttl=RETENTION)
_lock = threading.Lock()


@app.task(name="soak", max_retries=1, retry_delay=0.01, retry_jitter=False)
def soak(enqueued_at: float, kind: str) -> str:
    """kind: "ok" returns 1 KiB; "fail_once" fails its first attempt; "progress" reports progress."""
    job = current_job()
    if job.attempt == 1:
        line = f"{time.time()} {time.time() - enqueued_at}\n"
        with _lock, open(os.environ["CONVEYOR_SOAK_LOG"], "a") as log:
            log.write(line)
    if kind == "fail_once" and job.attempt == 1:
        raise ConnectionError("the first attempt fails on purpose")
    if kind == "progress":
        job.set_progress(0.5, "half way")
    return "x" * 1024
