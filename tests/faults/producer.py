"""A producer process for the many-producers scenario: `python -m tests.faults.producer N OUT`.

Enqueues N ledgered no-op jobs (half one at a time, half in batches of 100) and then the 1,000
shared unique ids `shared-0`... that every producer also enqueues; writes one line per job to
OUT: its id and whether this producer's enqueue created it."""

from __future__ import annotations

import sys

from tests.faults.fault_app import app, work


def main(count: int, out: str) -> None:
    lines: list[str] = []
    for _ in range(count // 2):
        job = work.delay(0.0)
        lines.append(f"{job.id} {int(job.created)}")
    for _ in range((count - count // 2) // 100):
        lines += [f"{job.id} {int(job.created)}" for job in work.map([(0.0,)] * 100)]
    for n in range(1000):
        job = work.with_options(job_id=f"shared-{n}").delay(0.0)
        lines.append(f"{job.id} {int(job.created)}")
    with open(out, "w") as file:
        file.write("\n".join(lines) + "\n")
    app.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
