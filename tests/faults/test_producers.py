"""Many producers at once (issue 7, scenario 6), on every engine: four producer processes enqueue
50,000 jobs each while two workers drain. Exactly 200,000 distinct jobs complete, and 1,000 unique
ids that every producer also enqueues make 1,000 jobs, each created by exactly one producer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import Scenario

PER_PRODUCER = 50_000


@pytest.mark.timeout(900)
def test_four_producers_and_two_workers_make_exactly_the_jobs_enqueued(engine_url: str, tmp_path: Path) -> None:
    scenario = Scenario(engine_url, tmp_path)
    try:
        # The fault app's 1 s lease suits the crash scenarios; here nothing crashes, and on a loaded
        # 2-core machine a heartbeat queued behind four producers' writes can miss 1 s (seen on
        # SQLite in CI: 8 jobs rescued from a live worker). A 10 s lease keeps this test on producers.
        with scenario.workers(2, "-c", "8", "--lease", "10", "--heartbeat", "1"):
            created, _ = scenario.run_producers(4, PER_PRODUCER, tmp_path, timeout=600)
            scenario.wait_finished(timeout=300)
        verdict = scenario.verdict()
        print(f"\n{verdict.summary()}")
        assert len(created) == 4 * PER_PRODUCER + 1000
        assert verdict.lost == [] and verdict.unexpected == [] and verdict.completed == len(created)
        assert {job_id: n for job_id, n in created.items() if n != 1} == {}, "each id created exactly once"
        assert verdict.duplicated == {} and verdict.overlapping == []
    finally:
        scenario.close()
