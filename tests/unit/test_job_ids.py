"""Job ids look like a uuid4's hex, never repeat, and sort by the time they were made: a store's id
index then grows at its end (see docs/benchmarks.md, the 1,000,000-job backlog)."""

from __future__ import annotations

import re
import time

from conveyor.job import new_job_id


def test_ids_are_32_hex_digits_unique_and_in_the_order_they_were_made() -> None:
    before = new_job_id()
    time.sleep(0.002)  # a later millisecond: ids within one millisecond are ordered only by chance
    after = [new_job_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", job_id) for job_id in [before, *after])
    assert len(set(after)) == len(after)
    assert all(before < job_id for job_id in after)
    assert after[0][:12] <= after[-1][:12]
