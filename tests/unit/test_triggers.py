"""Next-fire times of cron and interval triggers, computed from given instants (no real clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor import ConfigurationError
from conveyor.scheduler.triggers import Cron, Every, Trigger, make_trigger

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(trigger: Trigger, start: datetime, count: int, tz: ZoneInfo | None = None) -> list[datetime]:
    """The next `count` fire times after `start`, as wall-clock datetimes in `tz` (or UTC)."""
    out, t = [], start.timestamp()
    for _ in range(count):
        t = trigger.next_after(t)
        out.append(datetime.fromtimestamp(t, tz or UTC))
    return out


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


def test_five_fields_fire_on_the_minute_in_utc_by_default() -> None:
    got = fires(Cron("15 */6 * * *"), datetime(2026, 5, 1, 5, 0, tzinfo=UTC), 3)
    assert got == [datetime(2026, 5, 1, h, 15, tzinfo=UTC) for h in (6, 12, 18)]


def test_six_fields_have_seconds_first() -> None:
    got = fires(Cron("*/10 * * * * *"), datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC), 3)
    assert [d.second for d in got] == [10, 20, 30]


def test_next_is_strictly_after_and_last_is_at_or_before() -> None:
    cron = Cron("0 * * * *")
    on_the_hour = datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp()
    assert cron.next_after(on_the_hour) == on_the_hour + 3600
    assert cron.last_at_or_before(on_the_hour) == on_the_hour
    assert cron.last_at_or_before(on_the_hour - 0.001) == on_the_hour - 3600


def test_names_ranges_lists_and_steps() -> None:
    got = fires(Cron("0 9 * jan,jul mon-wed"), datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert [(d.month, d.day, d.strftime("%a")) for d in got] == [
        (1, 5, "Mon"), (1, 6, "Tue"), (1, 7, "Wed"), (1, 12, "Mon")]
    assert [d.minute for d in fires(Cron("5-20/5,50 * * * *"), datetime(2026, 1, 1, tzinfo=UTC), 5)] == [
        5, 10, 15, 20, 50]


@pytest.mark.parametrize("sunday", ["0", "7", "sun"])
def test_sunday_is_0_or_7(sunday: str) -> None:
    got = fires(Cron(f"0 12 * * {sunday}"), datetime(2026, 11, 1, 13, tzinfo=UTC), 2)
    assert [d.date().isoformat() for d in got] == ["2026-11-08", "2026-11-15"]


@pytest.mark.parametrize(("alias", "expected"), [
    ("@hourly", datetime(2026, 3, 4, 6, tzinfo=UTC)),
    ("@daily", datetime(2026, 3, 5, tzinfo=UTC)),
    ("@weekly", datetime(2026, 3, 8, tzinfo=UTC)),
    ("@monthly", datetime(2026, 4, 1, tzinfo=UTC)),
    ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_aliases(alias: str, expected: datetime) -> None:
    assert fires(Cron(alias), datetime(2026, 3, 4, 5, 30, tzinfo=UTC), 1) == [expected]


def test_the_31st_fires_only_in_months_that_have_one() -> None:
    got = fires(Cron("0 0 31 * *"), datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert [(d.month, d.day) for d in got] == [(1, 31), (3, 31), (5, 31), (7, 31)]


def test_february_29th_waits_for_a_leap_year() -> None:
    got = fires(Cron("0 0 29 2 *"), datetime(2026, 1, 1, tzinfo=UTC), 2)
    assert [d.year for d in got] == [2028, 2032]


def test_time_zone_fires_at_local_wall_clock_time() -> None:
    got = fires(Cron("0 0 * * *", BERLIN), datetime(2026, 7, 1, tzinfo=UTC), 1, BERLIN)
    assert got == [local(BERLIN, 2026, 7, 2, 0, 0)]
    assert got[0].utcoffset() == timedelta(hours=2)


def test_spring_forward_runs_a_skipped_daily_time_once_at_the_next_real_minute() -> None:
    # 2026-03-29 in Berlin: 02:00 jumps to 03:00, so 02:30 does not exist that day.
    got = fires(Cron("30 2 * * *", BERLIN), local(BERLIN, 2026, 3, 27, 12), 4, BERLIN)
    assert [d.strftime("%m-%d %H:%M %z") for d in got] == [
        "03-28 02:30 +0100", "03-29 03:00 +0200", "03-30 02:30 +0200", "03-31 02:30 +0200"]


def test_fall_back_runs_a_repeated_daily_time_once() -> None:
    # 2026-10-25 in Berlin: 03:00 goes back to 02:00, so 02:30 happens twice.
    got = fires(Cron("30 2 * * *", BERLIN), local(BERLIN, 2026, 10, 23, 12), 4, BERLIN)
    assert [d.strftime("%m-%d %H:%M %z") for d in got] == [
        "10-24 02:30 +0200", "10-25 02:30 +0200", "10-26 02:30 +0100", "10-27 02:30 +0100"]
    # Asked from inside the second pass of the repeated hour, the next run is the next day's.
    second_pass = local(BERLIN, 2026, 10, 25, 2, 10, fold=1)
    assert fires(Cron("30 2 * * *", BERLIN), second_pass, 1, BERLIN) == [local(BERLIN, 2026, 10, 26, 2, 30)]


def test_sub_hourly_cron_follows_real_time_across_both_transitions() -> None:
    spring = fires(Cron("*/30 * * * *", NEW_YORK), local(NEW_YORK, 2026, 3, 8, 1, 0), 3, NEW_YORK)
    assert [d.strftime("%H:%M %z") for d in spring] == ["01:30 -0500", "03:00 -0400", "03:30 -0400"]
    autumn = fires(Cron("*/30 * * * *", NEW_YORK), local(NEW_YORK, 2026, 11, 1, 0, 50), 5, NEW_YORK)
    assert [d.strftime("%H:%M %z") for d in autumn] == [
        "01:00 -0400", "01:30 -0400", "01:00 -0500", "01:30 -0500", "02:00 -0500"]


def test_every_fires_on_multiples_of_the_interval_since_the_epoch() -> None:
    hourly = Every(timedelta(hours=1))
    assert fires(hourly, datetime(2026, 5, 1, 12, 59, 59, tzinfo=UTC), 2) == [
        datetime(2026, 5, 1, 13, tzinfo=UTC), datetime(2026, 5, 1, 14, tzinfo=UTC)]
    assert Every(90).last_at_or_before(1000.0) == 990.0 and Every(90).next_after(990.0) == 1080.0


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"cron": "61 * * * *"}, ["minute", "0-59"]),
    ({"cron": "0 25 * * *"}, ["hour", "0-23"]),
    ({"cron": "0 0 32 * *"}, ["day-of-month"]),
    ({"cron": "0 0 30 2 *"}, ["day-of-month"]),
    ({"cron": "0 0 * 13 *"}, ["month", "JAN-DEC"]),
    ({"cron": "0 0 * * funday"}, ["day-of-week", "SUN-SAT"]),
    ({"cron": "* * *"}, ["3 fields", "five", "six"]),
    ({"cron": "@often"}, ["alias", "@hourly"]),
    ({"cron": ""}, ["cron expression"]),
    ({"cron": "0 0 * * *", "tz": "Mars/Olympus"}, ["tz='Mars/Olympus'", "IANA"]),
    ({"every": 0}, ["every=0", "positive"]),
    ({"every": timedelta(seconds=-5)}, ["every=", "positive"]),
    ({"every": "hourly"}, ["every='hourly'"]),
    ({}, ["exactly one of cron"]),
    ({"cron": "* * * * *", "every": 5}, ["exactly one of cron"]),
    ({"every": 5, "tz": "UTC"}, ["tz applies to cron"]),
])
def test_bad_definitions_name_the_field_and_the_fix(kwargs: dict, names: list[str]) -> None:
    with pytest.raises(ConfigurationError) as error:
        make_trigger(kwargs.get("cron"), kwargs.get("every"), kwargs.get("tz"))
    assert all(name in str(error.value) for name in names), str(error.value)
