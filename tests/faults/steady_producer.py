"""A producer that enqueues without pause until told to stop, riding out outages as an app would:
`python -m tests.faults.steady_producer OUT STOP`.

Enqueues ledgered no-op jobs one at a time until the file STOP exists. Appends to OUT one line per
enqueue that returned, `<job id> <unix time it returned>`, flushed at once, so a job is claimed as
enqueued only after its enqueue returned. An enqueue that raises BackendError (the store is down)
is tried again after 50 ms; each failure is a line `! <unix time>`."""

from __future__ import annotations

import os
import sys
import time

from conveyor import BackendError
from tests.faults.fault_app import app, work


def main(out: str, stop: str) -> None:
    with open(out, "a", buffering=1) as lines:
        while not os.path.exists(stop):
            try:
                job = work.delay(0.002)
            except BackendError:
                lines.write(f"! {time.time()}\n")
                time.sleep(0.05)  # an app's own retry; what is tested is that the next call works
                continue
            lines.write(f"{job.id} {time.time()}\n")
    app.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
