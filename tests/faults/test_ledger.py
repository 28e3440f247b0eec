"""The ledger checker finds what it is there to find, on runs made up for the purpose."""

from __future__ import annotations

from pathlib import Path

from conveyor import JobState
from tests.faults.ledger import Ledger, Run, check

DONE = JobState.COMPLETED


def test_a_clean_history_passes() -> None:
    runs = [Run("a", 1, 10, 0.0, 1.0, True), Run("b", 1, 10, 0.5, 2.0, True)]
    verdict = check(["a", "b"], {"a": DONE, "b": DONE}, runs)
    assert (verdict.lost, verdict.unexpected, verdict.duplicated, verdict.overlapping) == ([], [], {}, [])


def test_lost_unexpected_duplicated_and_finished_twice_are_reported() -> None:
    runs = [Run("a", 1, 10, 0.0, 1.0, True), Run("a", 2, 11, 2.0, 3.0, True), Run("ghost", 1, 10, 0.0, 1.0, True)]
    verdict = check(["a", "b"], {"a": DONE, "b": JobState.QUEUED}, runs)
    assert verdict.lost == ["b"] and verdict.unexpected == ["ghost"]
    assert verdict.duplicated == {"a": 2} and verdict.finished_twice == ["a"] and verdict.overlapping == []


def test_overlaps_are_found_even_between_runs_that_are_not_neighbours() -> None:
    long, short, late = Run("a", 1, 10, 0.0, 10.0, True), Run("a", 2, 11, 1.0, 2.0, None), Run("a", 3, 12, 5.0, 6.0)
    verdict = check(["a"], {"a": DONE}, [long, short, late])
    assert verdict.overlapping == [(long, short), (long, late)]


def test_a_killed_run_ends_when_its_process_was_killed() -> None:
    killed, rerun = Run("a", 1, 10, 0.0, None), Run("a", 2, 11, 5.0, 6.0, True)
    assert check(["a"], {"a": DONE}, [killed, rerun], kills={10: 4.0}).overlapping == []
    assert check(["a"], {"a": DONE}, [killed, rerun], kills={10: 5.5}).overlapping == [(killed, rerun)]
    assert check(["a"], {"a": DONE}, [killed, rerun]).overlapping == [(killed, rerun)], "never killed: still running"


def test_the_ledger_keeps_runs_across_processes_and_threads(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    run = ledger.start("a", 1)
    ledger.end(run, ok=True)
    ledger.start("b", 1)
    [a, b] = Ledger(tmp_path / "ledger.db").runs()
    assert (a.job_id, a.ok, b.job_id, b.ended) == ("a", True, "b", None)
