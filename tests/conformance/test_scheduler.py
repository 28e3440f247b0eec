"""The scheduler's promises on every engine: each tick of each schedule makes exactly one job
however many schedulers race, missed ticks follow their policy, schedules pause, resume and
run on demand. Time is injected (`Scheduler.tick(now)`), except in the end-to-end tests that
run real scheduler processes against the real clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conveyor import ConfigurationError, Conveyor, JobState, ScheduleNotFound, SerializationError
from conveyor.scheduler import Scheduler
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()  # a Monday, on the minute


def noop() -> None:
    return None


def with_schedule(app: Conveyor, **definition: object) -> Conveyor:
    app.schedule("job", noop, **definition)  # type: ignore[arg-type]
    return app


def tick_jobs(app: Conveyor) -> list[str]:
    """Ids of the jobs schedule "job" made, oldest tick first."""
    return sorted(job.id for job in app.jobs(limit=10_000) if job.id.startswith("job@"))


def stamp(t: float) -> str:
    return f"job@{datetime.fromtimestamp(t, UTC).isoformat()}"


def test_a_new_schedule_fires_from_now_on_not_for_the_past(app: Conveyor) -> None:
    scheduler = Scheduler(with_schedule(app, cron="* * * * *"))
    assert scheduler.tick(T0 + 30) == []
    assert [r.id for r in scheduler.tick(T0 + 60)] == [stamp(T0 + 60)]
    assert scheduler.tick(T0 + 61) == []


def test_each_tick_fires_once_however_many_schedulers_race(make_app: Callable[..., Conveyor]) -> None:
    schedulers = [Scheduler(with_schedule(make_app(), every=1)) for _ in range(6)]
    schedulers[0].tick(T0)
    barrier = threading.Barrier(len(schedulers))
    made: list[str] = []

    def race(scheduler: Scheduler) -> None:
        for second in range(1, 41):
            barrier.wait()
            made.extend(r.id for r in scheduler.tick(T0 + second + 0.1))

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = [stamp(T0 + second) for second in range(1, 41)]
    assert sorted(made) == expected
    assert tick_jobs(schedulers[0].app) == expected


def test_store_fires_only_ticks_after_the_last_even_for_a_stale_scheduler(app: Conveyor) -> None:
    # Two schedulers read last_tick = T0; one fires T0+1, then the other fires T0+1 and T0+2 with
    # its stale view (and, here, different job ids): the store makes only the T0+2 job.
    schedule = with_schedule(app, every=1).schedules["job"]
    app.backend.schedule_states(["job"], T0)

    def jobs(*ticks: float, tag: str) -> list:
        return [(t, job) for t in ticks for job in app.schedule_jobs(schedule, f"job@{tag}-{t}")]

    first = app.backend.fire_schedule("job", jobs(T0 + 1, tag="a"), T0 + 1)
    stale = app.backend.fire_schedule("job", jobs(T0 + 1, T0 + 2, tag="b"), T0 + 2)
    late = app.backend.fire_schedule("job", jobs(T0 + 2, tag="c"), T0 + 2)
    assert [r.id for r in first or []] == [f"job@a-{T0 + 1}"]
    assert [r.id for r in stale or []] == [f"job@b-{T0 + 2}"]
    assert late is None
    assert app.backend.schedule_states(["job"])["job"].last_tick == T0 + 2


def test_a_late_scheduler_still_fires_ticks_within_grace(app: Conveyor) -> None:
    scheduler = Scheduler(with_schedule(app, every=1, grace=10))
    scheduler.tick(T0)
    made = scheduler.tick(T0 + 5.5)
    assert [r.id for r in made] == [stamp(T0 + s) for s in range(1, 6)]


@pytest.mark.parametrize(("policy", "expected"), [
    ("skip", []),
    ("latest", [T0 + 3600 * 5]),
    ("all", [T0 + 3600 * h for h in (3, 4, 5)]),  # catch_up=3: the newest three
])
def test_missed_ticks_follow_the_schedules_policy(app: Conveyor, policy: str, expected: list[float]) -> None:
    scheduler = Scheduler(with_schedule(app, cron="0 * * * *", missed=policy, catch_up=3))
    scheduler.tick(T0)
    scheduler.tick(T0 + 3600 * 5 + 600)  # nobody ran for five hours
    assert tick_jobs(app) == [stamp(t) for t in expected]
    assert scheduler.tick(T0 + 3600 * 6) and tick_jobs(app)[-1] == stamp(T0 + 3600 * 6)  # and goes on


def test_paused_schedule_does_not_fire_and_resuming_skips_the_paused_ticks(app: Conveyor) -> None:
    scheduler = Scheduler(with_schedule(app, every=60, missed="all"))
    scheduler.tick(T0)
    app.pause_schedule("job")
    assert scheduler.tick(T0 + 60) == [] and scheduler.tick(T0 + 3600) == []
    assert app.schedule_states()["job"].paused
    app.resume_schedule("job")
    assert not app.schedule_states()["job"].paused
    made = scheduler.tick(app.backend.now() + 60)
    assert len(made) == 1, "ticks passed while paused are not caught up"


def test_run_now_enqueues_at_once_and_leaves_the_ticks(app: Conveyor) -> None:
    scheduler = Scheduler(with_schedule(app, cron="0 0 1 1 *"))
    scheduler.tick(T0)
    job = app.run_schedule("job")
    assert job.status == JobState.QUEUED and job.id.startswith("job@run-")
    state = app.schedule_states()["job"]
    assert state.last_job_id == job.id and state.last_tick == T0
    with pytest.raises(ScheduleNotFound, match="no schedule named 'nope'"):
        app.run_schedule("nope")


def test_state_records_the_last_tick_and_its_job(app: Conveyor) -> None:
    scheduler = Scheduler(with_schedule(app, every=10))
    scheduler.tick(T0)
    [record] = scheduler.tick(T0 + 10.2)
    state = app.schedule_states()["job"]
    assert (state.last_tick, state.last_job_id) == (T0 + 10, record.id)
    assert state.last_fired_at is not None


def test_schedule_arguments_options_and_task_options_reach_the_job(app: Conveyor) -> None:
    @app.periodic(every=60, args=(2,), kwargs={"b": 3}, queue="reports", priority=7, max_retries=5)
    def add(a: int, b: int) -> int:
        return a + b

    scheduler = Scheduler(app)
    scheduler.tick(T0)
    [record] = scheduler.tick(T0 + 60)
    job = app.get_job(record.id)
    assert (job.record.queue, job.record.priority, job.record.max_attempts) == ("reports", 7, 6)
    assert add(2, b=3) == 5
    app.schedule("digest", add, cron="0 9 * * mon", args=(1, 1), queue="emails", priority=1)
    scheduler.tick(T0 + 120)  # first seen: it fires from now on
    [digest] = [r for r in scheduler.tick(T0 + 7 * 86400 - 3 * 3600 + 10) if r.id.startswith("digest@")]
    assert (digest.queue, digest.priority) == ("emails", 1)


def test_bad_schedules_fail_when_defined(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="minute"):
        app.schedule("bad", noop, cron="99 * * * *")
    with pytest.raises(ConfigurationError, match="missed='sometimes'"):
        app.schedule("bad", noop, every=5, missed="sometimes")  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        app.schedule("bad", noop, every=5, args=(object(),))
    app.schedule("twice", noop, every=5)
    with pytest.raises(ConfigurationError, match="two schedules are named 'twice'"):
        app.schedule("twice", noop, every=6)
    assert "bad" not in app.schedules


@pytest.mark.parametrize(("when", "zone"), [("autumn", "Europe/Berlin"), ("spring", "Europe/Berlin")])
def test_daily_job_runs_once_on_daylight_saving_days(app: Conveyor, when: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    day = {"spring": datetime(2026, 3, 29, tzinfo=tz), "autumn": datetime(2026, 10, 25, tzinfo=tz)}[when]
    clock = [day.timestamp() - 2 * 86400]
    scheduler = Scheduler(with_schedule(app, cron="30 2 * * *", tz=zone), clock=lambda: clock[0],
                          max_sleep=86400)
    while clock[0] < day.timestamp() + 3 * 86400:  # the scheduler's own loop, time injected
        scheduler.tick()
        clock[0] += scheduler.seconds_to_next_tick(clock[0])
    days = Counter(datetime.fromisoformat(j.split("@", 1)[1]).astimezone(tz).date() for j in tick_jobs(app))
    assert sorted(days.values()) == [1, 1, 1, 1, 1] and day.date() in days


def test_scheduler_thread_in_the_app_process_fires_and_stops(app: Conveyor) -> None:
    with_schedule(app, every=0.05)
    scheduler = app.start_scheduler()
    try:
        wait_for(lambda: len(tick_jobs(app)) >= 3, timeout=10)
    finally:
        scheduler.stop()
    assert scheduler.stopping.is_set() and not (scheduler._thread and scheduler._thread.is_alive())


def spawn(command: str, url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONVEYOR_URL": url}
    return subprocess.Popen([sys.executable, "-m", "conveyor.cli", command, "tests.conformance.scheduler_app:app",
                             "--log-level", "WARNING", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_three_scheduler_processes_make_one_job_per_tick_and_miss_none(app: Conveyor, engine_url: str) -> None:
    processes = [spawn("scheduler", engine_url) for _ in range(3)]
    try:
        wait_for(lambda: len(tick_jobs_named(app)) >= 3, timeout=20)
        processes[0].send_signal(signal.SIGKILL)  # one dies: the others carry on without a gap
        start = len(tick_jobs_named(app))
        wait_for(lambda: len(tick_jobs_named(app)) >= start + 4, timeout=20)
    finally:
        for process in processes[1:]:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=20)[1].decode() for process in processes]
    assert [p.returncode for p in processes[1:]] == [0, 0], outputs
    ticks = [datetime.fromisoformat(j.split("@", 1)[1]).timestamp() for j in tick_jobs_named(app)]
    assert len(ticks) >= 7
    assert ticks == [ticks[0] + i for i in range(len(ticks))], "one job for every second, none missed"
    assert all(j.record.task == "tests.conformance.scheduler_app.every_second" for j in app.jobs(limit=1000))


def tick_jobs_named(app: Conveyor) -> list[str]:
    return sorted(j.id for j in app.jobs(limit=10_000) if j.id.startswith("every-second@"))


def test_worker_with_scheduler_runs_what_it_schedules(app: Conveyor, engine_url: str) -> None:
    process = spawn("worker", engine_url, "--scheduler", "--max-jobs", "2")
    try:
        assert process.wait(timeout=30) == 0, process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    done = [j for j in app.jobs(state="completed") if j.id.startswith("every-second@")]
    assert len(done) >= 2 and done[0].result(timeout=1) == "tick"
