"""The scheduler's decisions with injected clocks: daylight-saving days, suspends, catch-up,
skips, schedule pauses. No sleeping: the clocks are numbers the test moves."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from bkmd.job import Job
from bkmd.scheduler import CHECK_SECONDS, Scheduler
from helpers import job_record

from bkm import model, schedules

BERLIN = ZoneInfo("Europe/Berlin")
UTC = datetime.timezone.utc


def at(*args: int, zone=UTC) -> float:
    return datetime.datetime(*args, tzinfo=zone).timestamp()


class Clocks:
    """A wall clock and a monotonic one; a suspend moves only the wall clock."""

    def __init__(self, wall: float) -> None:
        self.wall, self.mono = wall, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def suspend(self, seconds: float) -> None:
        self.wall += seconds


class World:
    def __init__(self, start: float, *specs: str, timezone: str = "Europe/Berlin", catch_up: bool = True) -> None:
        self.clocks = Clocks(start)
        self.settings = {"timezone": timezone, "catch_up": catch_up}
        self.jobs = [
            Job.from_record(job_record(id=f"{i:032x}", name=f"j{i}", schedule=spec)) for i, spec in enumerate(specs)
        ]
        self.started: list[tuple[str, str, float]] = []  # (job, trigger, wall time)
        self.skipped: list[tuple[str, str]] = []
        self.saves = 0
        self.scheduler = Scheduler(
            lambda: self.jobs,
            self.settings,
            lambda job, trigger: self.started.append((job.name, trigger, self.clocks.wall)),
            lambda job, reason, trigger: self.skipped.append((job.name, reason)),
            lambda: None,
            self._saved,
            clock=lambda: self.clocks.wall,
            monotonic=lambda: self.clocks.mono,
        )

    def _saved(self) -> None:
        self.saves += 1

    def run_until(self, end: float) -> None:
        """What bkmd's loop does: check, then wait as long as the check says (never more than
        CHECK_SECONDS), on the monotonic clock."""
        while self.clocks.wall < end:
            wait = self.scheduler.check()
            assert 0 <= wait <= CHECK_SECONDS
            self.clocks.advance(max(wait, 0.001))

    def local_starts(self) -> list[str]:
        return [datetime.datetime.fromtimestamp(t, BERLIN).isoformat(timespec="minutes") for _, _, t in self.started]


def test_spring_forward_runs_the_skipped_time_once_at_the_jump():
    world = World(at(2026, 3, 28, 12), "30 2 * * *")
    world.run_until(at(2026, 3, 31, 12))
    assert world.local_starts() == ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00", "2026-03-31T02:30+02:00"]
    assert {trigger for _, trigger, _ in world.started} == {"schedule"}


def test_fall_back_runs_the_repeated_time_once():
    world = World(at(2026, 10, 24, 12), "30 2 * * *")
    world.run_until(at(2026, 10, 27, 12))
    assert world.local_starts() == ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00", "2026-10-27T02:30+01:00"]


def test_an_hourly_cron_runs_both_real_hours_of_the_fall_back_night():
    world = World(at(2026, 10, 25, 0, 30, zone=BERLIN), "0 * * * *")
    world.run_until(at(2026, 10, 25, 4, 30, zone=BERLIN))
    # 01:00, 02:00 (summer time), 02:00 (winter time), 03:00, 04:00: five real hours.
    assert world.local_starts() == [
        "2026-10-25T01:00+02:00",
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T03:00+01:00",
        "2026-10-25T04:00+01:00",
    ]


@pytest.mark.parametrize("start", [at(2026, 3, 28, 12), at(2026, 10, 24, 12)])
def test_every_hour_keeps_real_hours_across_both_changes(start):
    world = World(start, "@every 1h")
    world.run_until(start + 48 * 3600 + 1)
    times = [t for _, _, t in world.started]
    assert len(times) == 48
    assert {round(b - a) for a, b in zip(times, times[1:], strict=False)} == {3600}


def test_a_suspend_of_six_hours_gives_one_catch_up_run_not_six():
    world = World(at(2026, 11, 29, 20), "@every 1h", "0 * * * *")
    world.run_until(at(2026, 11, 29, 23, 0, 30))
    before = len(world.started)
    world.clocks.suspend(6 * 3600)  # asleep from 23:00:30 to 05:00:30
    world.scheduler.check()
    caught = world.started[before:]
    assert sorted((name, trigger) for name, trigger, _ in caught) == [("j0", "catch-up"), ("j1", "catch-up")]
    # And then the rhythm goes on from now, with no burst.
    world.run_until(world.clocks.wall + 3 * 3600 + 1)
    after = world.started[before + 2 :]
    assert [trigger for _, trigger, _ in after] == ["schedule"] * 6


def test_catch_up_off_runs_nothing_missed_and_says_so():
    world = World(at(2026, 11, 29, 20), "@every 1h", catch_up=False)
    world.run_until(at(2026, 11, 29, 21, 30))
    count = len(world.started)
    world.clocks.suspend(6 * 3600)
    world.scheduler.check()
    assert len(world.started) == count
    assert world.skipped == [("j0", "missed while bkmd was not running or the machine slept (catch_up is off)")]
    world.run_until(world.clocks.wall + 3600 + 1)
    assert [trigger for _, trigger, _ in world.started[count:]] == ["schedule"]


def test_a_due_time_missed_while_bkmd_was_down_is_caught_up_once():
    """The store kept next_run_at; bkmd starts long after it: one catch-up."""
    start = at(2026, 11, 29, 12)
    world = World(start, "@every 3s")
    world.jobs[0].next_run_at = schedules.time_text(start - 10)
    world.scheduler.check()
    assert [(name, trigger) for name, trigger, _ in world.started] == [("j0", "catch-up")]
    assert schedules.parse_time(world.jobs[0].next_run_at) == start + 3
    world.clocks.advance(3)
    world.scheduler.check()
    assert [trigger for _, trigger, _ in world.started] == ["catch-up", "schedule"]


@pytest.mark.parametrize("status", [model.RUNNING, model.QUEUED, model.PAUSED])
def test_a_due_run_of_a_busy_job_is_skipped_and_recorded(status):
    world = World(at(2026, 11, 29, 12), "@every 1m")
    world.jobs[0].status = status
    world.run_until(at(2026, 11, 29, 12, 2, 30))
    assert world.started == []
    assert world.skipped == [("j0", f"still {status}")] * 2


@pytest.mark.parametrize("trigger", [model.RESTORE, model.VERIFY])
def test_a_job_paused_in_a_restore_or_a_verify_still_gets_its_backups(trigger):
    world = World(at(2026, 11, 29, 12), "@every 1m")
    world.jobs[0].status = model.PAUSED
    world.jobs[0].last_run = {"trigger": trigger, "outcome": "paused"}
    world.run_until(at(2026, 11, 29, 12, 1, 30))
    assert world.skipped == [] and [(n, t) for n, t, _ in world.started] == [("j0", "schedule")]


def test_a_paused_schedule_starts_nothing_and_a_pause_for_a_while_ends_by_itself():
    world = World(at(2026, 11, 29, 12), "@every 10m")
    job = world.jobs[0]
    job.schedule_paused_until = "forever"
    world.scheduler.plan(job)
    assert job.next_run_at is None
    world.run_until(at(2026, 11, 29, 13))
    assert world.started == []
    job.schedule_paused_until = schedules.time_text(at(2026, 11, 29, 14))
    world.scheduler.plan(job)
    assert job.next_run_at == "2026-11-29T14:10:00Z"  # the first due time after the pause, from now
    world.run_until(at(2026, 11, 29, 14, 15))
    assert job.schedule_paused_until is None  # ended by itself
    assert [t for _, _, t in world.started] == [at(2026, 11, 29, 14, 10)]


def test_the_clock_set_back_plans_from_the_new_time():
    world = World(at(2026, 11, 29, 12), "@every 1h")
    world.scheduler.check()
    world.clocks.wall -= 86400  # a clock set back a day
    world.clocks.mono += 1
    world.scheduler.check()
    assert schedules.parse_time(world.jobs[0].next_run_at) == pytest.approx(world.clocks.wall + 3600, abs=1)


def test_a_job_without_schedule_has_no_due_time():
    world = World(at(2026, 11, 29, 12), None)
    world.jobs[0].next_run_at = "2026-11-29T12:00:00Z"  # left from a removed schedule
    world.run_until(at(2026, 11, 29, 13))
    assert world.jobs[0].next_run_at is None and world.started == []


def test_a_queued_retry_wakes_the_scheduler_when_due():
    world = World(at(2026, 11, 29, 12), None)
    due = []
    world.scheduler.retries_due = lambda: due.append(world.clocks.wall)
    job = world.jobs[0]
    job.status, job.retry_at = model.QUEUED, schedules.time_text(at(2026, 11, 29, 12, 0, 7))
    wait = world.scheduler.check()
    assert wait == pytest.approx(7, abs=0.01)
    world.clocks.advance(wait)
    world.scheduler.check()
    assert due == [at(2026, 11, 29, 12, 0, 7)]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * * *", "has 4 fields; cron needs 5"),
        ("0 0 * * * *", "has 6 fields; cron needs 5"),
        ("@reboot", "unknown name '@reboot'"),
        ("@every", "@every needs a duration"),
        ("@every 0s", "@every needs at least 1s"),
        ("@every 5", "@every must be a whole number with a unit"),
        ("0 0 31 2 *", "is not a valid cron expression"),
        ("", "must be a 5-field cron"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(text, problem):
    parsed, message = model.JOB_FIELDS[[f.name for f in model.JOB_FIELDS].index("schedule")].parse(text)
    assert parsed is None and problem in message


@pytest.mark.parametrize(
    "text, kept", [(" 30  2 * * * ", "30 2 * * *"), ("@DAILY", "@daily"), ("@every 90S", "@every 90s")]
)
def test_a_good_schedule_is_kept_tidy(text, kept):
    assert schedules.parse(text).text == kept


def test_durations():
    assert [schedules.duration(t) for t in ("90s", "15m", "26h", "7d")] == [90, 900, 93600, 604800]
    for bad in ("", "5", "1.5h", "-1m", "1w", "٣s"):
        with pytest.raises(ValueError):
            schedules.duration(bad)


def test_a_store_written_before_schedules_loads_with_their_defaults(tmp_path):
    from bkmd import store

    path = tmp_path / "jobs.yaml"
    path.write_text("version: 1\njobs:\n- {name: old, type: rsync, source: /s, dest: /d}\n")
    (loaded,) = store.load_jobs(str(path))
    assert (loaded["schedule"], loaded["retries"], loaded["retry_wait_seconds"]) == (None, 0, 60)
    job = Job.from_record(loaded)
    assert job.public()["next_run_at"] is None and job.retry_at is None


def test_an_interrupted_job_is_resumed_by_its_schedule_not_left_behind():
    world = World(at(2026, 11, 29, 12), "@every 1m")
    world.jobs[0].status = model.INTERRUPTED
    world.run_until(at(2026, 11, 29, 12, 1, 30))
    assert [(name, trigger) for name, trigger, _ in world.started] == [("j0", "schedule")]


@pytest.mark.parametrize("catch_up", [True, False])
def test_a_due_time_after_waking_is_on_time_not_a_catch_up(catch_up):
    """Asleep from 23:00 to 02:29:50; the loop's 30 s wait ends at 02:30:20: the 02:30 run
    fell due while the machine was awake."""
    world = World(at(2026, 11, 29, 23, zone=BERLIN), "30 2 * * *", catch_up=catch_up)
    wait = world.scheduler.check()
    assert wait == CHECK_SECONDS
    world.clocks.suspend(at(2026, 11, 30, 2, 29, 50, zone=BERLIN) - world.clocks.wall)
    world.clocks.advance(wait)
    world.scheduler.check()
    assert [trigger for _, trigger, _ in world.started] == ["schedule"] and world.skipped == []


def test_a_retry_that_is_due_but_waits_for_a_slot_does_not_spin():
    world = World(at(2026, 11, 29, 12), None)
    due = []
    world.scheduler.retries_due = lambda: due.append(1)
    world.jobs[0].status, world.jobs[0].retry_at = model.QUEUED, "2026-11-29T11:59:00Z"
    assert world.scheduler.check() == CHECK_SECONDS  # the queue takes it when a slot frees
    assert due == [1]


def test_the_clock_set_back_an_hour_does_not_run_a_cron_time_twice():
    world = World(at(2026, 11, 30, 2, 0, zone=BERLIN), "30 2 * * *")
    world.run_until(at(2026, 11, 30, 2, 31, zone=BERLIN))
    assert len(world.started) == 1
    world.clocks.wall -= 3600  # 01:31 again
    world.clocks.mono += 1
    world.run_until(at(2026, 11, 30, 3, 0, zone=BERLIN))
    assert len(world.started) == 1
    assert world.jobs[0].next_run_at == "2026-12-01T01:30:00Z"


def test_a_store_ahead_of_the_clock_at_start_is_brought_back():
    """The clock was ahead when bkmd wrote its store and was corrected while it was down."""
    start = at(2026, 11, 29, 12)
    world = World(start, "@every 1h", "0 3 * * *")
    world.jobs[0].next_run_at = schedules.time_text(start + 6 * 86400)
    world.jobs[1].next_run_at = schedules.time_text(start + 6 * 86400)
    world.scheduler.check()
    assert world.jobs[0].next_run_at == schedules.time_text(start + 3600)
    assert world.jobs[1].next_run_at == "2026-11-30T02:00:00Z"


def test_a_pause_keeps_an_every_schedules_rhythm():
    start = at(2026, 11, 29, 12)
    world = World(start, "@every 1h")
    world.scheduler.check()
    assert world.jobs[0].next_run_at == "2026-11-29T13:00:00Z"
    world.jobs[0].schedule_paused_until = schedules.time_text(start + 2 * 3600)
    world.scheduler.plan(world.jobs[0], keep_rhythm=True)
    assert world.jobs[0].next_run_at == "2026-11-29T15:00:00Z"  # 13:00 and 14:00 skipped, no more


def test_one_jobs_bad_time_does_not_stop_the_others():
    world = World(at(2026, 11, 29, 12), "@every 1m", "@every 1m")
    world.jobs[0].next_run_at = "2026-11-29 12:00:00"  # a hand edit in the wrong form
    world.run_until(at(2026, 11, 29, 12, 1, 30))
    assert [name for name, _, _ in world.started] == ["j1"]
