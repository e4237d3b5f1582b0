"""What one running bkmd holds: its paths, jobs, runs, settings, and how changes are saved."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from bkm import model
from bkm import paths as bkm_paths
from bkmd import access, hooks
from bkmd.activity import Activity
from bkmd.change import Change
from bkmd.dryrun import DryRuns
from bkmd.errors import MethodError, Unavailable
from bkmd.events import Events
from bkmd.job import now, run_record
from bkmd.jobs import Jobs
from bkmd.logs import JobLogs
from bkmd.metrics import Listener
from bkmd.recovery import Recovery, TransferRecords
from bkmd.runner import Transfer
from bkmd.runs import Runs
from bkmd.scheduler import Scheduler
from bkmd.settings import Settings
from bkmd.store import StoreError

log = logging.getLogger("bkmd")
CHECKPOINT_SECONDS = 10.0


class Daemon:
    def __init__(
        self, paths: bkm_paths.Paths, records: list[dict], settings: Settings, transfer_factory=Transfer
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.events = Events()
        self.jobs = Jobs(paths.store, records, self.events.publish, access.daemon_owner())
        self.logs = JobLogs(paths.logs, settings)
        self.logs.listeners.append(self._announce_log_line)
        self.activity = Activity(os.path.join(paths.state_dir, "activity.log"))
        self.jobs.on_status.append(self.activity.record)
        self.jobs.on_deleted.append(lambda job: self.logs.remove(job.id))
        transfers = TransferRecords(os.path.join(paths.state_dir, "transfers"))
        self.runs = Runs(self.jobs, settings, self.logs, self.save_in_background, transfers, transfer_factory)
        self.recovery = Recovery(self.jobs, self.logs, transfers, settings, self.runs)
        self.scheduler = Scheduler(
            lambda: self.jobs.by_id.values(),
            settings,
            self._scheduled_start,
            self._skip,
            self.runs.start_queued,
            self._scheduled_changes,
            stale=self._stale,
        )
        self.runs.retry_planned = self.scheduler.wake
        self.runs.zone = self.scheduler.zone  # retention counts days in the settings' zone
        self.dry_runs = DryRuns(settings, transfer_factory)
        self.metrics = Listener(self._metrics_text)
        settings.on_change.append(self._listen)
        # A saved settings change may free slots (max_concurrent_jobs): start queued jobs; and
        # another timezone moves cron due times.
        settings.on_change.append(self.runs.start_queued)
        settings.on_change.append(self._replan)
        self.pid = os.getpid()
        self.started_monotonic = time.monotonic()
        self.started_at = now()
        self.stopping = asyncio.Event()

    def _announce_log_line(self, job_id: str, line: str) -> None:
        job = self.jobs.by_id.get(job_id)
        params = {"job_id": job_id, "name": job.name if job else None, "line": line}
        self.events.publish("log_line", job_id, params)

    def _scheduled_start(self, job, trigger: str) -> None:
        """A due run starts as a request would (saved before the transfer is spawned)."""
        change = Change()
        try:
            self.runs.start(job, change, trigger)
            self.commit([change])
        except MethodError as e:
            change.undo()
            self.logs.write(job.id, f"scheduled run not started: {e.message}", "error")

    def _skip(self, job, reason: str, trigger: str) -> None:
        """A due run that does not happen is recorded like a run: in the history (outcome
        skipped; last_run stays the last real run), the job log and the activity."""
        record = run_record(trigger, 1, False, outcome="skipped", error=reason, duration_seconds=0.0, count=1)
        stamp = record["finished_at"] = record["started_at"]
        last = job.runs[-1] if job.runs else {}
        self.logs.write(job.id, f"skipped a scheduled run: {reason}", "warning")
        if last.get("outcome") == "skipped" and last.get("error") == reason:
            # One record for a streak of skips (an @every 1m job during a 4-hour run): the
            # history keeps its real runs.
            record = dict(last, finished_at=stamp, count=int(last.get("count") or 1) + 1)
            job.runs = job.runs[:-1] + [record]
        else:
            job.runs = (job.runs + [record])[-self.settings["keep_runs"] :]
            self.activity.note(job, "skipped", reason)
        self.jobs.progress_changed()

    def _metrics_text(self) -> bytes:
        from bkmd import metrics

        return metrics.text(self.jobs.by_id.values(), self.started_at)

    def _listen(self) -> None:
        """metrics_listen as it is now (at start, and after a settings change)."""
        self._listening = asyncio.get_running_loop().create_task(self.metrics.apply(self.settings["metrics_listen"]))

    def _stale(self, job) -> None:
        since = job.last_success_at
        reason = f"no success for over {job.max_age_seconds} s" + (f" (last at {since})" if since else "")
        self.logs.write(job.id, f"stale: {reason}", "warning")
        self.activity.note(job, "stale", reason)
        self.runs.notifier.stale(job, since)

    def _scheduled_changes(self) -> None:
        self.jobs.progress_changed()
        self.save_in_background()

    def _replan(self) -> None:
        """Cron due times read the wall clock of the setting timezone, which may have changed."""
        for job in self.jobs.by_id.values():
            if job.schedule and not job.schedule.startswith("@every"):
                before = job.next_run_at
                self.scheduler.plan(job)
                if job.next_run_at != before:
                    self.jobs.progress_changed()
        self.scheduler.wake()

    def commit(self, changes: list[Change]) -> None:
        """Save requests' changes (one write for all); if the disk refuses, undo each of them
        (and nothing else) in memory too and raise ``Unavailable`` ("could not save", exit 1)."""
        settings_saved = False
        try:
            if any(change.settings_changed for change in changes):
                self.settings.save()
                settings_saved = True
            if any(change.jobs_changed for change in changes):
                self.jobs.save()
        except OSError as e:
            for change in reversed(changes):
                change.undo()
            if settings_saved:  # the settings file must not keep what was just undone
                try:
                    self.settings.save()
                except OSError as again:
                    log.error("could not restore %s: %s", self.paths.settings, again.strerror or again)
            where = e.filename or self.paths.store
            log.error("could not save %s: %s; the change was undone", where, e.strerror or e)
            raise Unavailable(f"could not save the change: {where}: {e.strerror or e}", {"errno": e.errno}) from None
        for change in changes:
            change.saved()

    def start_up(self) -> None:
        """What a starting bkmd decides before serving: survivors of an earlier bkmd ended,
        its runs interrupted, on_interrupted applied, the queue restored."""
        self.recovery.end_survivors()
        for job in self.recovery.mark_interrupted():
            # Its run's end is known now: on-failure and after hooks, a fail ping, a notice.
            env = hooks.environment(job, job.last_run or {}, model.FAILED, "interrupted: bkmd stopped during the run")
            self.runs.hooks.run_later(job, ["on_failure", "after"], env)
            self.runs.notifier.interrupted(job, self.logs.tail(job.id))
        change = Change()
        self.recovery.apply_on_interrupted(change)
        self.recovery.resume_after_stop(change)
        try:
            self.commit([change])
        except Unavailable:
            pass  # logged; the jobs stay interrupted, for a person to recover
        self.recovery.requeue()
        self.save_in_background()

    def reload_settings(self) -> dict:
        """settings.yaml read again (SIGHUP, `bkm settings reload`); a file that does not parse
        is reported and the settings in use are kept."""
        try:
            found = self.settings.reload()
        except StoreError as e:
            log.error("not reloading settings: %s; the settings in use are kept", e)
            raise Unavailable(f"{e}; the settings in use are kept", {"settings": self.paths.settings}) from None
        log.info("reloaded settings from %s: %s", self.paths.settings, ", ".join(found["changed"]) or "no change")
        return found

    def save_in_background(self, durable: bool = True) -> bool:
        """Save what runs (not requests) decided; a failure is logged, undoes nothing, and the
        next checkpoint tries again. ``durable``: see Jobs.save."""
        if not self.jobs.unsaved:
            return True
        try:
            self.jobs.save(durable=durable)
        except OSError as e:
            log.error(
                "could not save %s: %s; will try again in %.0f s",
                e.filename or self.paths.store,
                e.strerror or e,
                CHECKPOINT_SECONDS,
            )
            return False
        return True

    async def checkpoints(self) -> None:
        """Progress lives in memory; it (and any save that failed) reaches the store this often.
        Not flushed to the disk: on the disk a backup writes to, each flush (ext4 commits every
        pending change of the file system with it) held a copy of 100,000 small files up by
        about 0.1 s; what a crash of the machine could lose here is progress, which the next
        status change, flushed, makes durable with it."""
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            self.save_in_background(durable=False)

    async def stop(self) -> None:
        await asyncio.gather(self.runs.stop_all(), self.dry_runs.stop_all(), self.metrics.close())
        # Whole, so that a stopped bkmd leaves jobs.yaml complete, to read or edit by hand.
        try:
            self.jobs.save(whole=True)
        except OSError as e:
            log.error("could not save %s: %s", e.filename or self.paths.store, e.strerror or e)
