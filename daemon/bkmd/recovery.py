"""After a crash: ending transfers an earlier bkmd left behind, and interrupted jobs.

A transfer process is written down the moment it starts (``TransferRecords``), so a bkmd
killed in the first seconds of a run still knows, when it starts again, which process to end
before anything could start a second transfer into the same destination.
"""

from __future__ import annotations

import logging
import os

from bkm import model
from bkmd.change import Change
from bkmd.job import Job, now
from bkmd.jobs import Jobs
from bkmd.logs import JobLogs
from bkmd.runner import end_group, process_start_time

log = logging.getLogger("bkmd.recovery")
RESUMING_AFTER_STOP = "resuming: bkmd stopped during this run (resume_after_stop)"


class TransferRecords:
    """One small file per running transfer: ``FOLDER/JOB_ID`` holding "PID START_TICKS".

    Written without fsync, on purpose: it is needed only after bkmd itself dies, and the
    page cache outlives bkmd; after a machine crash the process is gone anyway. An fsync
    here would make the filesystem flush the transfer's own data too (measured on the store:
    +10 % on a 600 MiB copy), and the write costs microseconds.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def write(self, job_id: str, pid: int, start: int | None) -> None:
        path = os.path.join(self.folder, job_id)
        temp = path + ".tmp"
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            with open(temp, "w") as f:
                f.write(f"{pid} {start or 0}\n")
            os.replace(temp, path)
        except OSError as e:
            log.error("cannot record transfer pid %d of job %s in %s: %s", pid, job_id, self.folder, e)

    def remove(self, job_id: str) -> None:
        try:
            os.unlink(os.path.join(self.folder, job_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            log.error("cannot remove the transfer record of job %s: %s", job_id, e)

    def found(self) -> list[tuple[str, int, int]]:
        """(job id, pid, start time) of every transfer recorded and not yet removed."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.endswith(".tmp"):
                continue
            try:
                with open(os.path.join(self.folder, name)) as f:
                    pid, start = (int(part) for part in f.read().split())
            except (OSError, ValueError):
                continue
            found.append((name, pid, start))
        return found


NOT_RESUMED = "not resumed by itself: a {kind} goes on when the same bkm {kind} is run again"


def continued(job: Job) -> tuple[str, int]:
    """The trigger and attempt of a run that goes on after bkmd stopped: those it had."""
    last = job.last_run or {}
    attempt = last.get("attempt")
    return last.get("trigger") or model.MANUAL, attempt if isinstance(attempt, int) and attempt > 0 else 1


def backup_interrupted(job: Job) -> bool:
    """Whether the run bkmd stopped was a backup: a restore or a verify is not started again by
    bkmd (it would need its paths and folder; a person asked for it, a person runs it again)."""
    return (job.last_run or {}).get("trigger") not in (model.RESTORE, model.VERIFY)


class Recovery:
    def __init__(self, jobs: Jobs, logs: JobLogs, records: TransferRecords, settings, runs) -> None:
        self.jobs = jobs
        self.logs = logs
        self.records = records
        self.settings = settings
        self.runs = runs

    def end_survivors(self) -> None:
        """End every transfer an earlier bkmd left running (same pid *and* start time: a
        reused pid is never touched), whatever its job's status says."""
        for name, pid, start in self.records.found():
            job_id = name.split("~", 1)[0]  # a hook's record is JOB_ID~hook-PID
            if start and process_start_time(pid) == start:
                ended = end_group(pid)
                what = "hook" if name != job_id else "transfer"
                self.logs.write(job_id, f"ended the {what} (pid {pid}) left by the previous bkmd: {ended}", "warning")
                log.warning("ended %s pid %d of job %s left by the previous bkmd: %s", what, pid, job_id, ended)
            self.records.remove(name)

    def mark_interrupted(self) -> list[Job]:
        """Nothing is shown running that is not: runs of a previous bkmd become interrupted."""
        found = self.jobs.with_status(model.RUNNING)
        for job in found:
            self.logs.write(job.id, "bkmd stopped during this run: the job is interrupted", "warning")
            last_run, runs = job.last_run, job.runs
            if last_run is not None and last_run.get("finished_at") is None:
                last_run = dict(last_run, finished_at=now(), outcome=model.INTERRUPTED, exit_code=None, error=None)
                runs = (runs + [dict(last_run)])[-self.settings["keep_runs"] :]
            # The progress last saved (at most CHECKPOINT_SECONDS old) is kept: it is where a
            # resume continues from.
            progress = dict(job.progress, speed_bytes=0, eta_seconds=None)
            self.jobs.set_status(
                job, "found running", model.INTERRUPTED, last_run=last_run, progress=progress, runs=runs
            )
        return found

    def apply_on_interrupted(self, change: Change) -> None:
        """The setting on_interrupted: leave them for a person (ask), pause them, or resume them."""
        choice = self.settings["on_interrupted"]
        if choice == "ask":
            return
        for job in self.jobs.with_status(model.INTERRUPTED):
            self.recover(job, change)
            if choice == "resume":
                self._resume(job, change)

    def resume_after_stop(self, change: Change) -> None:
        """Jobs a stopping bkmd paused (daemon stop, SIGTERM, a reboot) start again, when the
        setting resume_after_stop says so; a job a person paused stays paused."""
        if not self.settings["resume_after_stop"]:
            return
        for job in self.jobs.with_status(model.PAUSED):
            if (job.last_run or {}).get("paused_by_stop") and self._resume(job, change):
                change.after_save(lambda job=job: self.logs.write(job.id, RESUMING_AFTER_STOP))

    def _resume(self, job: Job, change: Change) -> bool:
        if not backup_interrupted(job):
            kind = job.last_run["trigger"]
            change.after_save(lambda: self.logs.write(job.id, f"{kind} {NOT_RESUMED.format(kind=kind)}", "warning"))
            return False
        self.runs.start(job, change, *continued(job))
        return True

    def recover(self, job: Job, change: Change) -> Job:
        """Interrupted -> paused: the next start continues the run."""
        self.jobs.check("recover", job)
        self.jobs.set_status(job, "recover", model.PAUSED, change)
        change.after_save(lambda: self.logs.write(job.id, "recovered after bkmd stopped: paused, ready to resume"))
        return job

    def dismiss(self, job: Job, change: Change) -> Job:
        """Interrupted -> failed, with the error "interrupted"."""
        self.jobs.check("dismiss", job)
        last_run = job.last_run
        if last_run is not None:
            last_run = dict(last_run, error="interrupted", finished_at=last_run.get("finished_at") or now())
        self.jobs.set_status(job, "dismiss", model.FAILED, change, last_run=last_run)
        message = "dismissed after bkmd stopped: failed (interrupted)"
        change.after_save(lambda: self.logs.write(job.id, message, "error"))
        return job

    def requeue(self) -> None:
        """Jobs queued when bkmd last stopped queue again, in their order (each begins afresh:
        whether it was to resume is not kept across a restart)."""
        queued = sorted(self.jobs.with_status(model.QUEUED), key=lambda job: (job.updated_at, job.rev))
        for job in queued:
            self.runs.queue.add(job.id, job.retry_at is not None)  # a retry builds on the failed attempt
        self.runs.start_queued()
