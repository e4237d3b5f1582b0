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
import time
from collections.abc import Callable, Iterable

from bkm import model, schedules
from bkmd.job import Job

log = logging.getLogger("bkmd.scheduler")
CHECK_SECONDS = 30.0
# The wall clock moved this much further than the monotonic one between two checks: the
# machine slept or the clock was changed.
JUMP_SECONDS = 5.0
FOREVER = "forever"
# A due run of a job in one of these is skipped: it would overlap the run in progress, jump
# the queue, or override a person's pause (or their choice about an interrupted run).
BUSY = frozenset({model.RUNNING, model.QUEUED, model.PAUSED, model.INTERRUPTED})


class Scheduler:
    def __init__(
        self,
        jobs: Callable[[], Iterable[Job]],
        settings,
        start: Callable[[Job, str], None],
        skip: Callable[[Job, str], None],
        retries_due: Callable[[], None],
        changed: Callable[[], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.start = start
        self.skip = skip
        self.retries_due = retries_due  # the queue looks again at jobs waiting for a retry
        self.changed = changed  # job state (next_run_at) changed outside a request: save it
        self.clock = clock
        self.monotonic = monotonic
        # The last check: due times after it are on time; earlier ones were missed while bkmd
        # did not run (it starts at bkmd's start).
        self._checked = (clock(), monotonic())
        self._wake: asyncio.Event | None = None

    # -- due times ----------------------------------------------------------------------------

    def zone(self):
        return schedules.zone(self.settings["timezone"])

    def next_run(self, job: Job, after: float) -> str | None:
        """The first due time after ``after`` that no schedule pause holds back, or None."""
        if not job.schedule or job.schedule_paused_until == FOREVER:
            return None
        if job.schedule_paused_until:
            after = max(after, schedules.parse_time(job.schedule_paused_until))
        try:
            due = schedules.parse(job.schedule).next_after(after, self.zone())
        except ValueError as e:  # a hand-edited store; the store's checks let any string through
            log.error("job %r: schedule %r: %s", job.name, job.schedule, e)
            return None
        return schedules.time_text(due)

    def plan(self, job: Job) -> None:
        """Due times from now (a schedule set or changed, a pause set or ended, another zone)."""
        job.next_run_at = self.next_run(job, self.clock())

    def following(self, job: Job, due: float, now: float) -> str | None:
        """The due time after the one that just fell due: an @every schedule keeps its rhythm
        from the due time, unless that is already past too (then from now: one catch-up)."""
        spec = schedules.parse(job.schedule)
        if spec.every is not None and not job.schedule_paused_until and due + spec.every > now:
            return schedules.time_text(due + spec.every)
        return self.next_run(job, now)

    # -- checking -----------------------------------------------------------------------------

    def check(self) -> float:
        """Start, skip or catch up whatever fell due; seconds until the next check."""
        now, mono = self.clock(), self.monotonic()
        last_wall, last_mono = self._checked
        drift = (now - last_wall) - (mono - last_mono)
        jumped = drift > JUMP_SECONDS
        self._checked = (now, mono)
        changed = False
        nearest = now + CHECK_SECONDS
        retry_due = False
        for job in list(self.jobs()):
            if job.retry_at is not None and job.status == model.QUEUED:
                at = schedules.parse_time(job.retry_at)
                retry_due |= at <= now
                nearest = min(nearest, at)
            if not job.schedule:
                if job.next_run_at is not None or job.schedule_paused_until is not None:
                    job.next_run_at = job.schedule_paused_until = None
                    changed = True
                continue
            paused = job.schedule_paused_until
            if paused not in (None, FOREVER) and schedules.parse_time(paused) <= now:
                job.schedule_paused_until = None
                log.info("job %r: schedule pause ended", job.name)
                changed = True
            if job.next_run_at is None or drift < -JUMP_SECONDS:
                # New to the scheduler, or the clock went back: due times from now.
                planned = self.next_run(job, now)
                if planned != job.next_run_at and (job.next_run_at is None or planned is not None):
                    job.next_run_at = planned
                    changed = True
                if job.next_run_at is None:
                    continue
            due = schedules.parse_time(job.next_run_at)
            if due > now:
                nearest = min(nearest, due)
                continue
            on_time = due > last_wall and not jumped
            job.next_run_at = self.following(job, due, now)
            changed = True
            if job.next_run_at is not None:
                nearest = min(nearest, schedules.parse_time(job.next_run_at))
            self._due(job, model.SCHEDULE if on_time else model.CATCH_UP)
        if changed:
            self.changed()
        if retry_due:
            self.retries_due()
        return max(0.0, min(CHECK_SECONDS, nearest - self.clock()))

    def _due(self, job: Job, trigger: str) -> None:
        if trigger == model.CATCH_UP and not self.settings["catch_up"]:
            self.skip(job, "missed while bkmd was not running or the machine slept (catch_up is off)")
        elif job.status in BUSY:
            self.skip(job, f"still {job.status}")
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
