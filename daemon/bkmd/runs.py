"""Runs: starting, queueing, pausing and finishing transfers, and what each outcome means.

Every status change goes through ``Jobs.set_status``; this module decides which one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable

from bkm import model
from bkmd.engines import engine as engine_for
from bkmd.job import Job, now
from bkmd.jobs import Jobs
from bkmd.logs import JobLogs
from bkmd.progress import Tracker
from bkmd.runner import Transfer, end_group, process_start_time

log = logging.getLogger("bkmd.runs")
STOP_GRACE = 10.0


class Run:
    """One attempt at a job: its process, parser, progress and record."""

    def __init__(self, job: Job, resume: bool) -> None:
        self.job = job
        self.engine = engine_for(job.type)
        self.parser = self.engine.Parser()
        progress = job.progress if resume else {}
        self.tracker = Tracker(
            self.engine.TOTAL_COVERS_TREE,
            base_bytes=int(progress.get("bytes_transferred") or 0),
            base_percent=float(progress.get("percent") or 0.0),
        )
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.started = time.monotonic()
        self.record = {
            "started_at": now(),
            "finished_at": None,
            "exit_code": None,
            "error": None,
            "warnings": [],
            "bytes": 0,
            "duration_seconds": None,
            "resumed": resume,
        }
        self.transfer: Transfer | None = None
        self.changed = False
        self.stalled = False
        self.ticker: asyncio.Task | None = None


class Runs:
    def __init__(self, jobs: Jobs, settings, logs: JobLogs, save: Callable[[], None]) -> None:
        self.jobs = jobs
        self.settings = settings
        self.logs = logs
        self.save = save  # writes the store now, logging failures: for changes a run (not a request) made
        self.active: dict[str, Run] = {}
        self.queue: collections.deque[str] = collections.deque()
        self.resume_on_start: dict[str, bool] = {}  # queued job id -> whether its run resumes

    # -- requests -----------------------------------------------------------------------------

    def start(self, job: Job) -> Job:
        self.jobs.check("start", job)
        resume = job.status in model.RESUMES_FROM
        previous = (job.status, job.updated_at, job.rev, job.last_run, job.progress)
        if len(self.active) < self.settings["max_concurrent_jobs"]:
            run = self._launch(job, resume)
            # The process is spawned by a task that runs only after this request is saved; if
            # saving fails, the undo cancels it before anything was started.
            self.jobs.on_undo(lambda: self._unlaunch(run, previous))
        else:
            self.queue.append(job.id)
            self.resume_on_start[job.id] = resume
            self.jobs.set_status(job, model.QUEUED)
            self.jobs.on_undo(lambda: self._unqueue(job, previous))
        return job

    async def pause(self, job: Job) -> Job:
        self.jobs.check("pause", job)
        if job.status == model.QUEUED:
            if job.id in self.queue:
                self.queue.remove(job.id)
            self.resume_on_start.pop(job.id, None)
            self.jobs.set_status(job, model.PAUSED)
            return job
        run = self.active.get(job.id)
        if run is not None and run.transfer is not None:
            await run.transfer.stop(STOP_GRACE)
        return job

    # -- lifecycle ----------------------------------------------------------------------------

    def _launch(self, job: Job, resume: bool) -> Run:
        run = Run(job, resume)
        self.active[job.id] = run
        argv = run.engine.argv(job, self.settings)
        env = run.engine.environment(dict(os.environ))
        run.transfer = Transfer(
            argv,
            env,
            on_started=lambda pid, start: self._started(run, pid, start),
            on_output=lambda stream, data: self._output(run, stream, data),
            on_exit=lambda code, error: self._exited(run, code, error),
        )
        job.last_run = run.record
        job.progress = run.tracker.as_dict()
        self.logs.write(job.id, f"run started{' (resuming)' if resume else ''}: {' '.join(argv)}")
        self.jobs.set_status(job, model.RUNNING)
        run.transfer.start()
        run.ticker = asyncio.get_running_loop().create_task(self._tick(run))
        return run

    def _unlaunch(self, run: Run, previous: tuple) -> None:
        for task in (run.transfer.task, run.ticker):
            if task is not None:
                task.cancel()
        self.active.pop(run.job.id, None)
        self._restore(run.job, previous)

    def _unqueue(self, job: Job, previous: tuple) -> None:
        if job.id in self.queue:
            self.queue.remove(job.id)
        self.resume_on_start.pop(job.id, None)
        self._restore(job, previous)

    def _restore(self, job: Job, previous: tuple) -> None:
        job.status, job.updated_at, job.rev, job.last_run, job.progress = previous
        self.jobs.publish_progress(job)

    def _started(self, run: Run, pid: int, start: int | None) -> None:
        # Saved with the next checkpoint, not now: an fsync while the transfer writes makes
        # the filesystem flush the transfer's data too (measured: +10 % on a 600 MiB copy).
        # Until then PR_SET_PDEATHSIG alone ends the process if bkmd dies.
        run.job.pid, run.job.pid_start = pid, start
        self.jobs.progress_changed()

    def _output(self, run: Run, stream: str, data: bytes) -> None:
        samples, lines = run.parser.feed(stream, data)
        self._take(run, samples, lines)

    def _take(self, run: Run, samples: list, lines: list[str]) -> None:
        clock = time.monotonic()
        for sample in samples:
            run.tracker.apply(sample, clock)
            run.changed = True
        for line in lines:
            run.lines.append(line)
            self.logs.write(run.job.id, line, "output")

    async def _tick(self, run: Run) -> None:
        """At most one progress event per progress_interval, and only when something moved;
        and the stall watchdog: no progress for stall_timeout seconds fails the run."""
        moved_at, moved = time.monotonic(), run.tracker.bytes
        while True:
            await asyncio.sleep(self.settings["progress_interval"])
            clock = time.monotonic()
            if run.tracker.bytes != moved:
                moved_at, moved = clock, run.tracker.bytes
            limit = self.settings["stall_timeout"]
            if limit and clock - moved_at > limit and not run.stalled and run.transfer is not None:
                run.stalled = True
                self.logs.write(run.job.id, f"no progress for {limit} s: stopping the transfer", "error")
                asyncio.get_running_loop().create_task(run.transfer.stop(STOP_GRACE))
            if run.changed:
                run.changed = False
                run.job.progress = run.tracker.as_dict()
                self.jobs.progress_changed()
                self.jobs.publish_progress(run.job)

    def _exited(self, run: Run, code: int | None, spawn_error: str | None) -> None:
        job = run.job
        self._take(run, *run.parser.finish())
        if run.ticker is not None:
            run.ticker.cancel()
        self.active.pop(job.id, None)
        record = run.record
        record["finished_at"] = now()
        record["exit_code"] = code
        record["duration_seconds"] = round(time.monotonic() - run.started, 3)
        if run.stalled:
            status, record["error"] = model.FAILED, "stalled"
            run.tracker.speed, run.tracker.eta = 0.0, None
            summary = f"failed: stalled (no progress for {self.settings['stall_timeout']} s)"
        elif run.transfer is not None and run.transfer.stop_requested:
            status = model.PAUSED
            run.tracker.speed, run.tracker.eta = 0.0, None
            summary = "paused: transfer stopped, partial data kept"
        elif spawn_error is not None:
            status, record["error"] = model.FAILED, spawn_error
            summary = f"failed: {spawn_error}"
        else:
            outcome = run.engine.outcome(code, list(run.lines), run.parser, job)
            status, record["error"], record["warnings"] = outcome.status, outcome.error, outcome.warnings
            if status == model.COMPLETED:
                run.tracker.complete(getattr(run.parser, "total_exact", None))
            else:
                run.tracker.speed, run.tracker.eta = 0.0, None
            summary = f"{status}: exit code {code}" + (f", {outcome.error}" if outcome.error else "")
        record["bytes"] = run.tracker.bytes - run.tracker.base_bytes
        job.progress = run.tracker.as_dict()
        job.last_run = record
        job.runs = (job.runs + [dict(record)])[-self.settings["keep_runs"] :]
        job.pid = job.pid_start = None
        for warning in record["warnings"]:
            self.logs.write(job.id, warning, "warning")
        self.logs.write(
            job.id,
            f"run {summary}; {record['bytes']} bytes in {record['duration_seconds']} s",
            "error" if status == model.FAILED else "info",
        )
        self.jobs.set_status(job, status, announce=False)
        self.save()  # saved before anyone hears of it: `--wait` returning means it is on disk
        self.jobs.publish_progress(job)
        self._start_queued()

    def _start_queued(self) -> None:
        while self.queue and len(self.active) < self.settings["max_concurrent_jobs"]:
            job = self.jobs.by_id.get(self.queue.popleft())
            if job is not None and job.status == model.QUEUED:
                self._launch(job, self.resume_on_start.pop(job.id, False))

    # -- daemon start and stop ----------------------------------------------------------------

    def mark_interrupted(self) -> list[Job]:
        """Nothing is shown running that is not: runs of a previous bkmd become interrupted,
        after any transfer of theirs that outlived it is ended (same pid *and* start time:
        a reused pid is never touched)."""
        found = self.jobs.with_status(model.RUNNING)
        for job in found:
            if job.pid and job.pid_start and process_start_time(job.pid) == job.pid_start:
                ended = end_group(job.pid)
                self.logs.write(
                    job.id, f"ended the transfer (pid {job.pid}) left by the previous bkmd: {ended}", "warning"
                )
            self.logs.write(job.id, "bkmd stopped during this run: the job is interrupted", "warning")
            if job.last_run is not None and job.last_run.get("finished_at") is None:
                job.last_run = dict(job.last_run, finished_at=now(), error=None)
            job.pid = job.pid_start = None
            job.progress = dict(job.progress, speed_bytes=0, eta_seconds=None)
            self.jobs.set_status(job, model.INTERRUPTED)
        return found

    def apply_on_interrupted(self) -> None:
        """The setting on_interrupted: leave them for a person (ask), pause them, or resume them."""
        choice = self.settings["on_interrupted"]
        if choice == "ask":
            return
        for job in self.jobs.with_status(model.INTERRUPTED):
            self.recover(job)
            if choice == "resume":
                self.start(job)

    def recover(self, job: Job) -> Job:
        """Interrupted -> paused: the next start continues the run."""
        self.jobs.check("recover", job)
        self.logs.write(job.id, "recovered after bkmd stopped: paused, ready to resume")
        self.jobs.set_status(job, model.PAUSED)
        return job

    def dismiss(self, job: Job) -> Job:
        """Interrupted -> failed, with the error "interrupted"."""
        self.jobs.check("dismiss", job)
        if job.last_run is not None:
            job.last_run = dict(job.last_run, error="interrupted", finished_at=job.last_run.get("finished_at") or now())
        self.logs.write(job.id, "dismissed after bkmd stopped: failed (interrupted)", "error")
        self.jobs.set_status(job, model.FAILED)
        return job

    def requeue(self) -> None:
        """Jobs queued when bkmd last stopped queue again, in their order."""
        queued = sorted(self.jobs.with_status(model.QUEUED), key=lambda job: (job.updated_at, job.rev))
        self.queue.extend(job.id for job in queued)
        self._start_queued()

    async def stop_all(self) -> None:
        """Pause every running job (partial data kept); queued ones stay queued for next time."""
        self.queue.clear()
        runs = [run for run in self.active.values() if run.transfer is not None]
        await asyncio.gather(*(run.transfer.stop(STOP_GRACE) for run in runs))

    def setting_changed(self) -> None:
        self._start_queued()
