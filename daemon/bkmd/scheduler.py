"""The scheduler: when each scheduled job falls due, by the wall clock, and what happens then.

It knows schedules, due times and schedule pauses; it asks the run machinery to start a job
(``start``) or records why it did not (``skip``), and never touches a transfer itself.

asyncio's clock is monotonic and stops while the machine sleeps: a timer armed at 23:00 for
02:30 would fire hours late after a suspend. So the loop only ever waits for the next due
time or CHECK_SECONDS, whichever is sooner, and then reads the wall clock (``clock``) again.
A due time that passed while bkmd was not running, or while the wall clock jumped (a suspend,
a clock change), is a catch-up: run once however many were missed, when the setting catch_up
allows. The clocks are injected, so daylight-saving days and suspends are unit tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable

from bkm import model, schedules
from bkmd.change import Change
from bkmd.job import Job

log = logging.getLogger("bkmd.scheduler")
CHECK_SECONDS = 30.0
# The wall clock moved this much further than the monotonic one between two checks: the
# machine slept or the clock was changed.
JUMP_SECONDS = 5.0
FOREVER = "forever"
RETRY_CAP = 3600  # the longest wait before a retry (bkmd.runs)
# A due run of a job in one of these is skipped: it would overlap the run in progress, jump
# the queue, or override a person's pause. (An interrupted job's scheduled run resumes it: a
# crash must not silently end a job's schedule.)
BUSY = frozenset({model.RUNNING, model.QUEUED, model.PAUSED})


def _paused_aside(job: Job) -> bool:
    """A job paused in a restore or a verify: its backups are due all the same (the restore
    goes on when a person runs it again)."""
    return job.status == model.PAUSED and (job.last_run or {}).get("trigger") in (model.RESTORE, model.VERIFY)


class Scheduler:
    def __init__(
        self,
        jobs: Callable[[], Iterable[Job]],
        settings,
        start: Callable[[Job, str], None],
        skip: Callable[[Job, str, str], None],
        retries_due: Callable[[], None],
        changed: Callable[[], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        stale: Callable[[Job], None] = lambda job: None,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.start = start
        self.skip = skip
        self.retries_due = retries_due  # the queue looks again at jobs waiting for a retry
        self.changed = changed  # job state (next_run_at) changed outside a request: save it
        self.stale = stale  # a job just became stale (once per episode)
        self.clock = clock
        self.monotonic = monotonic
        # The last check: due times after it are on time; earlier ones were missed while bkmd
        # did not run (it starts at bkmd's start).
        self._checked = (clock(), monotonic())
        self._first = True  # the first check also brings due times in the store back to now
        self._wake: asyncio.Event | None = None

    # -- due times ----------------------------------------------------------------------------

    def zone(self):
        return schedules.zone(self.settings["timezone"])

    def next_run(self, job: Job, after: float) -> str | None:
        """The first due time after ``after`` that no schedule pause holds back, or None. An
        @every schedule keeps its rhythm from its current due time when it has one."""
        if not job.schedule or job.schedule_paused_until == FOREVER:
            return None
        if job.schedule_paused_until:
            after = max(after, schedules.parse_time(job.schedule_paused_until))
        try:
            spec = schedules.parse(job.schedule)
            if spec.every is not None and job.next_run_at is not None:
                slot = schedules.parse_time(job.next_run_at)
                if slot > after:
                    return job.next_run_at
                # The first slot of the rhythm after ``after``: a pause of 2 h on an hourly
                # job skips two runs, not three.
                return schedules.time_text(slot + math.ceil((after - slot) / spec.every + 1e-9) * spec.every)
            return schedules.time_text(spec.next_after(after, self.zone()))
        except ValueError as e:  # a hand-edited store; the store's checks let any string through
            log.error("job %r: schedule %r: %s", job.name, job.schedule, e)
            return None

    def plan(self, job: Job, keep_rhythm: bool = False) -> None:
        """Due times from now (a schedule set or changed, a pause set or ended, another zone);
        an @every schedule keeps its rhythm only when asked (a pause), else starts it now."""
        if not keep_rhythm:
            job.next_run_at = None
        job.next_run_at = self.next_run(job, self.clock())

    def replan(self, job: Job, change: Change, paused_until: str | None, keep_rhythm: bool = False) -> None:
        """A request changed a schedule or its pause: due times from now, undone with the
        request's ``change``; the loop looks again once the change is saved."""
        before = (job.next_run_at, job.schedule_paused_until)

        def undo() -> None:
            job.next_run_at, job.schedule_paused_until = before

        change.on_undo(undo)
        change.jobs_changed = True
        job.schedule_paused_until = paused_until
        self.plan(job, keep_rhythm)
        change.after_save(self.wake)

    def following(self, job: Job, due: float, now: float) -> str | None:
        """The due time after the one that just fell due: an @every schedule keeps its rhythm
        from the due time, unless that is already past too (then from now: one catch-up)."""
        spec = schedules.parse(job.schedule)
        if spec.every is not None and due + spec.every <= now:
            job.next_run_at = None  # the rhythm starts again from now
        return self.next_run(job, now)

    def _clamped(self, job: Job, now: float) -> str | None:
        """After the wall clock went back (or was found ahead of the store at start): a due
        time further away than the schedule's own gap from now comes back to its first due time
        from now. A nearer one stays, so a cron time that has run is not run again when the
        clock is set back an hour."""
        stored = schedules.parse_time(job.next_run_at)
        spec = schedules.parse(job.schedule)
        if spec.every is not None:
            return job.next_run_at if stored <= now + spec.every else schedules.time_text(now + spec.every)
        first = self.next_run(job, now)
        if first is None:
            return None
        second = self.next_run(job, schedules.parse_time(first))
        return job.next_run_at if second is None or stored <= schedules.parse_time(second) else first

    # -- checking -----------------------------------------------------------------------------

    def check(self) -> float:
        """Start, skip or catch up whatever fell due; seconds until the next check."""
        now, mono = self.clock(), self.monotonic()
        last_wall, last_mono = self._checked
        drift = (now - last_wall) - (mono - last_mono)
        # Due times after this were surely on time: bkmd was running and the machine awake
        # (after a suspend, only the monotonic time since the last check is sure to be awake).
        awake_since = now - (mono - last_mono) if drift > JUMP_SECONDS else last_wall
        clamp = drift < -JUMP_SECONDS or self._first
        self._first = False
        self._checked = (now, mono)
        changed = False
        nearest = now + CHECK_SECONDS
        retry_due = False
        for job in list(self.jobs()):
            try:
                if job.retry_at is not None and job.status == model.QUEUED:
                    at = schedules.parse_time(job.retry_at)
                    if clamp and at > now + RETRY_CAP:
                        job.retry_at, changed = schedules.time_text(now + RETRY_CAP), True
                    elif at <= now:
                        retry_due = True  # started when a slot is free (never a busy wait for one)
                    else:
                        nearest = min(nearest, at)
                changed |= self._check_schedule(job, now, awake_since, clamp)
                if job.max_age_seconds:
                    changed |= self._check_stale(job, now)
                    since = schedules.parse_time(job.last_success_at or job.created_at)
                    if since + job.max_age_seconds >= now:
                        nearest = min(nearest, since + job.max_age_seconds + 1)
                elif job.stale_noted:
                    job.stale_noted, changed = False, True
                if job.next_run_at is not None:
                    nearest = min(nearest, schedules.parse_time(job.next_run_at))
            except ValueError as e:  # one job's bad time (a hand edit) must not stop the others
                log.error("job %r: cannot schedule it: %s", job.name, e)
        if changed:
            self.changed()
        if retry_due:
            self.retries_due()
        return max(0.0, min(CHECK_SECONDS, nearest - self.clock()))

    def _check_stale(self, job: Job, now: float) -> bool:
        """Tell people once when a job becomes stale; its next success ends the episode."""
        stale = job.stale(now)
        if stale == job.stale_noted:
            return False
        job.stale_noted = stale
        if stale:
            self.stale(job)
        return True

    def _check_schedule(self, job: Job, now: float, awake_since: float, clamp: bool) -> bool:
        """Start or skip ``job`` when its schedule fell due; whether its schedule state changed."""
        if not job.schedule:
            if job.next_run_at is None and job.schedule_paused_until is None:
                return False
            job.next_run_at = job.schedule_paused_until = None
            return True
        changed = False
        paused = job.schedule_paused_until
        if paused not in (None, FOREVER) and schedules.parse_time(paused) <= now:
            job.schedule_paused_until = None
            log.info("job %r: schedule pause ended", job.name)
            changed = True
        if job.next_run_at is None:
            planned = self.next_run(job, now)
            if planned is None:
                return changed
            job.next_run_at, changed = planned, True
        elif clamp:
            kept = self._clamped(job, now)
            if kept != job.next_run_at:
                job.next_run_at, changed = kept, True
                if kept is None:
                    return changed
        due = schedules.parse_time(job.next_run_at)
        if due > now:
            return changed
        job.next_run_at = self.following(job, due, now)
        self._due(job, model.SCHEDULE if due > awake_since else model.CATCH_UP)
        return True

    def _due(self, job: Job, trigger: str) -> None:
        if trigger == model.CATCH_UP and not self.settings["catch_up"]:
            self.skip(job, "missed while bkmd was not running or the machine slept (catch_up is off)", trigger)
        elif job.status in BUSY and not _paused_aside(job):
            self.skip(job, f"still {job.status}", trigger)
        else:
            self.start(job, trigger)

    # -- the loop -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Check now: a schedule, a pause or a retry changed."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            try:
                wait = self.check()
            except Exception:  # a bug must not end scheduling for every job
                log.exception("internal error in the scheduler")
                wait = CHECK_SECONDS
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait + 0.01)
            except asyncio.TimeoutError:  # noqa: UP041 (TimeoutError itself only from Python 3.11)
                pass
            self._wake.clear()
