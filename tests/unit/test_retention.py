"""Snapshot names and restic-style retention, on made-up times (no clock, no disk)."""

import datetime as dt
from zoneinfo import ZoneInfo

from bkmd.retention import completed, is_partial, keep, name_for, next_name, parse_name


def names(*stamps: str) -> list[str]:
    return [name_for(dt.datetime.fromisoformat(s).timestamp()) for s in stamps]


def test_names_are_utc_and_sortable_and_partial_ones_are_told_apart():
    assert name_for(dt.datetime(2026, 11, 29, 2, 30, tzinfo=dt.timezone.utc).timestamp()) == "2026-11-29T023000Z"
    assert parse_name("2026-11-29T023000Z") == dt.datetime(2026, 11, 29, 2, 30, tzinfo=dt.timezone.utc)
    for other in ("latest", "2026-13-01T000000Z", "2026-11-29T023000Z.partial", "notes.txt", "2026-11-29"):
        assert parse_name(other) is None
    assert is_partial("2026-11-29T023000Z.partial") and not is_partial("x.partial")
    assert completed(["latest", "2026-01-02T000000Z", "2026-01-03T000000Z.partial", "2026-01-01T000000Z"]) == [
        "2026-01-02T000000Z",
        "2026-01-01T000000Z",
    ]


def test_no_rule_keeps_everything():
    all_ = names("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
    assert keep(all_, {}) == (sorted(all_, reverse=True), [])


def test_keep_last_keeps_the_newest_n():
    all_ = names(*(f"2026-01-0{d}T00:00:00+00:00" for d in range(1, 6)))
    kept, removed = keep(all_, {"keep_last": 2})
    assert kept == ["2026-01-05T000000Z", "2026-01-04T000000Z"]
    assert removed == ["2026-01-03T000000Z", "2026-01-02T000000Z", "2026-01-01T000000Z"]


def test_daily_keeps_the_newest_of_each_day_and_rules_combine_as_restics():
    all_ = names(
        "2026-01-01T01:00:00+00:00", "2026-01-01T13:00:00+00:00",  # day 1: 13:00 is its newest
        "2026-01-02T09:00:00+00:00",
        "2026-01-03T08:00:00+00:00", "2026-01-03T20:00:00+00:00",
    )  # fmt: skip
    kept, _ = keep(all_, {"keep_daily": 2})
    assert kept == ["2026-01-03T200000Z", "2026-01-02T090000Z"]
    # keep_last 1 takes the newest; keep_daily 3 the newest of each of the last 3 days: the union.
    kept, removed = keep(all_, {"keep_last": 1, "keep_daily": 3})
    assert kept == ["2026-01-03T200000Z", "2026-01-02T090000Z", "2026-01-01T130000Z"]
    assert removed == ["2026-01-03T080000Z", "2026-01-01T010000Z"]


def test_weeks_are_iso_weeks_and_months_calendar_months():
    all_ = names(
        "2025-12-29T12:00:00+00:00",  # Monday: ISO week 2026-W01
        "2026-01-04T12:00:00+00:00",  # Sunday: still 2026-W01
        "2026-01-05T12:00:00+00:00",  # 2026-W02
        "2026-02-01T12:00:00+00:00",
    )
    assert keep(all_, {"keep_weekly": 3})[0] == ["2026-02-01T120000Z", "2026-01-05T120000Z", "2026-01-04T120000Z"]
    assert keep(all_, {"keep_monthly": 3})[0] == ["2026-02-01T120000Z", "2026-01-05T120000Z", "2025-12-29T120000Z"]


def test_days_are_counted_in_the_settings_zone():
    # 23:30 UTC on the 1st is already the 2nd in Berlin: two runs, one Berlin day.
    all_ = names("2026-01-01T23:30:00+00:00", "2026-01-02T08:00:00+00:00")
    assert keep(all_, {"keep_daily": 1})[0] == ["2026-01-02T080000Z"]  # UTC: two days, the newer one
    # Berlin: one day, whose newest is the 08:00 run; restic keeps the oldest as well while
    # the rule has periods left, so keep_daily 1 (used up) shows the zone.
    assert keep(all_, {"keep_daily": 1}, ZoneInfo("Europe/Berlin"))[0] == ["2026-01-02T080000Z"]
    assert keep(all_, {"keep_hourly": 1}, ZoneInfo("Europe/Berlin"))[0] == ["2026-01-02T080000Z"]


def test_the_oldest_stays_while_a_period_rule_has_periods_left_as_in_restic():
    # restic forget: "If there are not enough snapshots to keep one for each duration related
    # --keep-* option, the oldest snapshot in the group is kept additionally."
    day = names("2026-01-01T08:00:00+00:00", "2026-01-01T20:00:00+00:00")
    assert keep(day, {"keep_daily": 7})[0] == ["2026-01-01T200000Z", "2026-01-01T080000Z"]
    january = names("2026-01-01T00:00:00+00:00", "2026-01-10T00:00:00+00:00", "2026-01-20T00:00:00+00:00")
    assert keep(january, {"keep_monthly": 3})[0] == ["2026-01-20T000000Z", "2026-01-01T000000Z"]
    assert keep(january, {"keep_last": 5})[0] == sorted(january, reverse=True)  # keep_last: no such rule
    assert keep(january, {"keep_last": 1})[0] == ["2026-01-20T000000Z"]


def test_the_newest_always_stays():
    all_ = names("2026-01-01T00:00:00+00:00", "2026-01-01T00:30:00+00:00")
    # keep_monthly 0 and keep_hourly 0 are no rule; keep_weekly 1 keeps only the newest anyway.
    assert keep(all_, {"keep_weekly": 1})[0] == ["2026-01-01T003000Z"]


def test_a_second_run_within_the_same_second_gets_a_later_name():
    t = dt.datetime(2026, 11, 29, 2, 30, tzinfo=dt.timezone.utc).timestamp()
    assert next_name(t, []) == "2026-11-29T023000Z"
    assert next_name(t + 0.4, ["2026-11-29T023000Z"]) == "2026-11-29T023001Z"
    assert next_name(t + 5, ["2026-11-29T023000Z", "bogus"]) == "2026-11-29T023005Z"
