"""Runs: starting, queueing, pausing and finishing transfers.

A start or pause is a request: it changes state inside its ``Change`` and the transfer is
spawned only once that change is saved. A run's end is a decided fact, saved in the
background. Every status change goes through ``Jobs.set_status``; what an end means is
judged by ``bkmd.outcome``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import shlex
import signal
import threading
import time
import uuid
from collections.abc import Callable

from bkm import model, schedules
from bkmd import access, hooks, outcome, retention, runner, validate, versions
from bkmd.change import Change, Later
from bkmd.commands import Commands
from bkmd.engines import engine as engine_for
from bkmd.errors import Conflict
from bkmd.hooks import Hooks
from bkmd.job import Job, now, run_record
from bkmd.jobs import Jobs
from bkmd.logs import JobLogs
from bkmd.notify import Notifier
from bkmd.progress import Tracker
from bkmd.queue import RunQueue
from bkmd.recovery import NOT_RESUMED, TransferRecords
from bkmd.runner import Transfer

log = logging.getLogger("bkmd.runs")
STOP_GRACE = 10.0
RAN_THROUGH = frozenset({0, 23, 24})  # rsync's exits after it went through every file
KEEP_SECONDS = 5.0  # at most this long to keep a stopped run's unfinished file (Run._keep_then_stop)
IDLE_SHOWN = 10.0  # seconds without progress after which views say so
RETRY_WAIT_CAP = 3600
NOTIFY_DRAIN = 3.0  # seconds a stopping bkmd waits for pings and notifications under way
SNAPSHOT_STATS_MAX = 1000  # snapshots whose stats a job keeps (the newest)
FOUND_MAX = 100_000  # a verify's lines kept for its verdict (its counts stop growing there)


def _in_thread(work: Callable, *args) -> asyncio.Future:
    """``work(*args)`` in a thread of its own that does not hold up bkmd's exit (the default
    executor's would, on a hung file system), as a future of this loop."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result=None, error: BaseException | None = None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result = work(*args)
        except BaseException as e:
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=run, name="bkmd-keep", daemon=True).start()
    return future


class Run:
    """One attempt at a job: its transfer, parser, progress and record."""

    def __init__(
        self,
        job: Job,
        resume: bool,
        transfer_factory: Callable[..., Transfer],
        runs: Runs,
        trigger: str = model.MANUAL,
        attempt: int = 1,
        kind: str = "backup",
        argv: list[str] | None = None,
        force: bool = False,
    ) -> None:
        self.job = job
        self.resume = resume
        # "backup", or a run of the backup's other uses: "restore" (``argv`` given) and "verify".
        self.kind = kind
        self.force = force  # a mirror's guard is skipped this once
        # A restore or a verify that goes well leaves the job as its backups left it (a failed
        # backup must not read "completed" because a restore went well).
        self.status_before = job.status
        self.engine = engine_for(job.type)
        self.parser = self.engine.Parser()
        self.found: list[str] = []  # a verify's output lines: what differs
        self.pending_out = ""  # rclone check's unfinished last line
        self.verify_result: dict | None = None
        progress = job.progress if resume else {}
        self.tracker = Tracker(
            self.engine.TOTAL_COVERS_TREE,
            base_bytes=int(progress.get("bytes_transferred") or 0),
            base_percent=float(progress.get("percent") or 0.0),
            base_total=int(progress.get("total_bytes") or 0) or None,
            resumed=resume,
        )
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.started = time.monotonic()
        self.record = run_record(trigger, attempt, resume)
        if job.healthcheck and kind == "backup":
            # The healthchecks run id, in the record from the start (a run found interrupted
            # later fails with it): a retry goes on with its first attempt's.
            earlier = job.runs[-1] if job.runs else {}
            same = trigger == model.RETRY and earlier.get("rid")
            self.record["rid"] = earlier["rid"] if same else uuid.uuid4().hex
        run_as = access.run_as(job.owner)  # None: as bkmd itself
        # bkmd keeps the file in flight itself if it stops this run, where it can: rsync, asked
        # to, would look for kept data of every file on every run. Not for another user's run:
        # bkmd would be moving files in their tree with its own rights. The run after one that
        # kept something is given --partial-dir (and --no-W) to build on it, and rsync then
        # keeps its own at a stop.
        self.keeper = (
            kind == "backup"
            and argv is None
            and not job.partial_kept
            and run_as is None
            and self.engine.can_keep_partial(job, runs.settings)
        )
        self.kept = False  # whether a stop kept an unfinished file
        self.keeping: asyncio.Task | None = None
        if argv is not None:
            self.argv = argv
        elif kind == model.VERIFY:
            self.argv = self.engine.verify_argv(job, runs.settings, versions.verify_target(job), job.mode == "mirror")
        else:
            # --no-W lets a local run build on kept data: only where rsync will look for it.
            builds_on = job.partial_kept or (resume and not self.keeper)
            self.argv = versions.backup_argv(job, runs.settings, builds_on, job.snapshot_partial, self.keeper)
        env = self.engine.environment(dict(os.environ))
        self.transfer = transfer_factory(
            self.argv,
            run_as.environment(env) if run_as else env,
            on_started=lambda pid, start: runs._started(self, pid, start),
            on_output=lambda stream, data: runs._output(self, stream, data),
            on_exit=lambda code, error: runs._exited(self, code, error),
            run_as=run_as,
        )
        self.stop_reason: str | None = None  # an outcome.* reason once bkmd stops it
        self.changed = False
        self.moved_at = time.monotonic()  # when bytes last moved or files were last checked
        self.marker: tuple | None = None
        self.ticker: asyncio.Task | None = None
        self.before: asyncio.Task | None = None  # the before hooks and the guard, while they run
        self.finishing: asyncio.Task | None = None  # a snapshot's renaming and retention
        self.stop_hook = runs.hooks.stop_before
        self.stop_commands = runs.commands.stop_job

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        process = self.transfer.process
        alive = process is not None and process.returncode is None
        if self.keeper and alive and self.keeping is None and not self.transfer.stop_requested:
            self.keeping = asyncio.get_running_loop().create_task(self._keep_then_stop(process.pid))
        elif self.keeping is None:
            self.transfer.request_stop(STOP_GRACE)
        if self.before is not None:
            self.stop_hook(self.job.id)  # a before hook still running
            self.stop_commands(self.job.id)  # or the mirror's guard

    async def _keep_then_stop(self, pgid: int) -> None:
        """rsync deletes its unfinished file when it ends without --partial-dir: the transfer
        is held (SIGSTOP) while the file is moved aside, in a thread with a deadline (a hung
        destination must not hang bkmd), and then ended as every stop is. Never in the way of
        the stop itself."""
        late = threading.Event()  # set when the deadline passed: the thread then moves nothing
        try:
            os.killpg(pgid, signal.SIGSTOP)
            kept = await asyncio.wait_for(_in_thread(self._keep, pgid, late), KEEP_SECONDS)
            self.kept = bool(kept)
            for path in kept:
                log.info("job %r: kept the unfinished %s for the next run", self.job.name, path)
        except ProcessLookupError:
            pass  # already gone
        except asyncio.TimeoutError:
            late.set()
            log.warning("job %r: keeping the unfinished file took over %.0f s: stopped", self.job.name, KEEP_SECONDS)
        except Exception:
            log.exception("job %r: keeping the unfinished file", self.job.name)
        finally:
            try:
                self.transfer.request_stop(STOP_GRACE)
            finally:
                try:
                    os.killpg(pgid, signal.SIGCONT)  # the SIGTERM is taken as it wakes
                except ProcessLookupError:
                    pass

    def _keep(self, pgid: int, late: threading.Event) -> list[str]:
        # SIGSTOP takes effect as each process leaves the system call it is in.
        members = runner.stopped_group(pgid, 0.5)
        written = [path for pid in members for path in runner.files_open_for_writing(pid)]
        job = self.job
        dest = versions.folder(job.dest, job.snapshot_partial) if job.mode == "snapshot" else job.dest
        return self.engine.keep_partial(written, dest, job.source, late)


class Runs:
    def __init__(
        self,
        jobs: Jobs,
        settings,
        logs: JobLogs,
        save_in_background: Callable[[], object],
        records: TransferRecords,
        transfer_factory: Callable[..., Transfer] = Transfer,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.logs = logs
        self.save = save_in_background
        self.records = records
        self.transfer_factory = transfer_factory
        self.active: dict[str, Run] = {}
        self.queue = RunQueue()
        self.retry_planned: Callable[[], None] = lambda: None  # the scheduler watches retry_at
        self.hooks = Hooks(logs, settings, records, transfer_factory)
        self.notifier = Notifier(logs, settings)
        self.commands = Commands(transfer_factory)
        self.zone: Callable[[], object] = lambda: None  # the settings' time zone (retention's days)
        self.clock = time.time  # retry_at is wall-clock time: a retry survives a restart

    # -- requests -----------------------------------------------------------------------------

    def start(
        self,
        job: Job,
        change: Change,
        trigger: str = model.MANUAL,
        attempt: int = 1,
        force: bool = False,
        argv: list[str] | None = None,
    ) -> Job:
        """A run of ``job``: a backup; a restore (trigger RESTORE, its ``argv``); a verify
        (trigger VERIFY). ``force``: a mirror's guard is skipped this once."""
        self.jobs.check("start", job)
        kind = trigger if trigger in (model.RESTORE, model.VERIFY) else "backup"
        if kind == model.RESTORE and argv is None:  # never a backup under a restore's name
            raise ValueError("a restore run needs its argv")
        # Only a backup goes on from where the last one stopped (a paused restore is not one).
        last = (job.last_run or {}).get("trigger")
        resume = job.status in model.RESUMES_FROM and kind == "backup" and last not in (model.RESTORE, model.VERIFY)
        updates = {}
        if kind == "backup" and job.mode == "snapshot" and not job.snapshot_partial:
            name = retention.next_name(self.clock(), job.snapshot_stats)
            updates["snapshot_partial"] = name + retention.PARTIAL_SUFFIX
        waiting = self._wait_reason(job)
        if waiting is None:
            before = job.status
            if updates:
                job.snapshot_partial = updates["snapshot_partial"]  # the run's argv names it
            run = Run(job, resume, self.transfer_factory, self, trigger, attempt, kind, argv, force)
            run.status_before = before
            self.jobs.set_status(
                job, "start", model.RUNNING, change, last_run=run.record, progress=run.tracker.as_dict(), **updates
            )
            self.active[job.id] = run
            change.on_undo(lambda: self.active.pop(job.id, None))
            change.after_save(lambda: self._spawn(run))
        else:
            self.queue.add(job.id, resume)
            change.on_undo(lambda: self.queue.remove(job.id))
            queued_by = {"trigger": trigger, "attempt": attempt}
            if force:
                queued_by["force"] = True
            if argv is not None:
                queued_by["argv"] = list(argv)
            if kind != "backup":
                queued_by["before"] = job.status
            self.jobs.set_status(job, "start", model.QUEUED, change, waiting=waiting, queued_by=queued_by, **updates)
            change.after_save(lambda: self.logs.write(job.id, f"queued: {waiting}"))
        return job

    def _wait_reason(self, job: Job) -> str | None:
        """Why ``job`` cannot start now, or None: its retry is not due yet, no free slot, or a
        running job writes to the same destination (or one inside the other): two transfers
        never write there at once."""
        if job.retry_at is not None and schedules.parse_time(job.retry_at) > self.clock():
            return job.waiting or f"retry at {job.retry_at}"
        for other in self.active.values():
            if validate.inside(job.dest, other.job.dest) or validate.inside(other.job.dest, job.dest):
                return f"waiting for {other.job.name}: same destination"
        if len(self.active) >= self.settings["max_concurrent_jobs"]:
            return f"waiting for a free slot ({self.settings['max_concurrent_jobs']} running)"
        return None

    def pause(self, job: Job, change: Change) -> Job | Later:
        """A queued job leaves the queue; a running one is sent SIGTERM now, inside the change,
        and the answer waits, after the commit, for its run to end."""
        self.jobs.check("pause", job)
        if job.status == model.QUEUED:
            if job.retry_at is not None:
                change.after_save(lambda: self.logs.write(job.id, "paused: the retry is cancelled"))
            position = self.queue.position(job.id)
            resume = self.queue.remove(job.id)
            if position is not None:
                change.on_undo(lambda: self.queue.put_back(job.id, bool(resume), position))
            self.jobs.set_status(job, "pause", model.PAUSED, change)
            return job
        run = self.active[job.id]
        if run.finishing is not None:
            raise Conflict(
                f"job {job.name!r} is naming its finished snapshot (and removing old ones): cannot pause it now",
                {"status": job.status},
            )
        run.stop(outcome.PAUSE)

        async def answer() -> Job:
            await run.transfer.done.wait()
            return job

        return Later(answer)

    # -- lifecycle ----------------------------------------------------------------------------

    def _spawn(self, run: Run) -> None:
        what = "" if run.kind == "backup" else f" ({run.kind})"
        resuming = " (resuming)" if run.resume else ""
        self.logs.write(run.job.id, f"run started{what}{resuming}: {shlex.join(run.argv)}")
        if run.force and run.kind == "backup" and run.job.mode == "mirror":
            self.logs.write(run.job.id, "mirror guard: skipped this once (--force)", "warning")
        if run.kind == "backup":
            self.notifier.run_started(run.job, run.record)
        if run.job.hooks.get("before") or self._guarded(run):
            run.before = asyncio.get_running_loop().create_task(self._before(run))
        else:
            self._go(run)

    @staticmethod
    def _guarded(run: Run) -> bool:
        return run.kind == "backup" and run.job.mode == "mirror" and not run.force

    def _go(self, run: Run) -> None:
        run.transfer.start()
        run.ticker = asyncio.get_running_loop().create_task(self._tick(run))

    async def _before(self, run: Run) -> None:
        """The before hooks, then a mirror's guard, then the transfer; a failing hook or a
        refusing guard fails the run and no transfer starts (a pause meanwhile pauses it)."""
        problem = None
        if run.job.hooks.get("before"):
            problem = await self.hooks.run(run.job, "before", hooks.environment(run.job, run.record, model.RUNNING))
        if problem is None and run.stop_reason is None and self._guarded(run):
            problem = await versions.mirror_guard(self.commands, run.job, self.settings)
            if problem is not None:
                self.logs.write(run.job.id, problem, "error")
        run.before = None
        if run.stop_reason is not None:
            run.transfer.abandon(None)
        elif problem is not None:
            run.transfer.abandon(problem)
        else:
            self._go(run)

    def _started(self, run: Run, pid: int, start: int | None) -> None:
        # On disk before anything else happens: a bkmd killed now must find this process later.
        self.records.write(run.job.id, pid, start)

    def _output(self, run: Run, stream: str, data: bytes) -> None:
        if run.kind == model.VERIFY and stream == "out" and run.job.type == "rclone":
            # rclone check's list of every file (--combined), not log lines: kept for the verdict.
            run.pending_out += data.decode("utf-8", "replace")
            *lines, run.pending_out = run.pending_out.split("\n")
            self._found(run, lines)
            return
        samples, lines = run.parser.feed(stream, data)
        self._take(run, samples, lines)

    def _found(self, run: Run, lines: list[str]) -> None:
        """A verify's lines: each difference is logged; files that are the same are not."""
        for line in lines:
            if not line or line.startswith("= "):
                continue
            if len(run.found) < FOUND_MAX:
                run.found.append(line)
            self.logs.write(run.job.id, line, "output")

    def _take(self, run: Run, samples: list, lines: list[str]) -> None:
        clock = time.monotonic()
        for sample in samples:
            run.tracker.apply(sample, clock)
            run.changed = True
            # Moving bytes or checking files (a no-op run of a big tree moves no bytes for
            # minutes) both count as progress for the stall watchdog.
            marker = (sample.bytes, sample.checked)
            if marker != run.marker:
                run.marker, run.moved_at = marker, clock
        for line in lines:
            run.lines.append(line)
            if run.kind == model.VERIFY and run.job.type == "rsync" and len(run.found) < FOUND_MAX:
                run.found.append(line)
            why = run.engine.expected(line, run.stop_reason is not None)
            if why is None:
                self.logs.write(run.job.id, line, "output")
            else:  # said as what it is, so that nobody reads it as an error
                self.logs.write(run.job.id, f"{line}  (expected: {why})", "note")

    async def _tick(self, run: Run) -> None:
        """At most one progress event per progress_interval, and only when something moved or
        the run is idle (``idle_seconds`` then counts up instead of a speed decaying towards
        zero); and the stall watchdog: no progress for stall_timeout seconds fails the run."""
        while True:
            await asyncio.sleep(self.settings["progress_interval"])
            idle = time.monotonic() - run.moved_at
            # A verify reads a big file whole before it says a word: no stall watchdog for it.
            limit = self.settings["stall_timeout"] if run.kind != model.VERIFY else 0
            if limit and idle > limit and run.stop_reason is None:
                self.logs.write(run.job.id, f"no progress for {limit} s: stopping the transfer", "error")
                run.stop(outcome.STALL)
            if idle >= IDLE_SHOWN:
                run.tracker.speed, run.tracker.eta = 0.0, None
                run.job.progress = {**run.tracker.as_dict(), "idle_seconds": int(idle)}
                self.jobs.publish_progress(run.job)
            elif run.changed:
                run.changed = False
                run.job.progress = run.tracker.as_dict()
                self.jobs.progress_changed()
                self.jobs.publish_progress(run.job)

    def _exited(self, run: Run, code: int | None, spawn_error: str | None) -> None:
        job = run.job
        self._take(run, *run.parser.finish())
        if run.pending_out:
            self._found(run, [run.pending_out])
        if run.ticker is not None:
            run.ticker.cancel()
        self.records.remove(job.id)
        record, verdict = self._judged(run, code, spawn_error)
        if run.kind == "backup" and job.mode == "snapshot" and verdict.status == model.COMPLETED:
            # Still running (and in its slot) until the snapshot has its name and `latest`.
            run.finishing = asyncio.get_running_loop().create_task(self._finish_snapshot(run, record, verdict))
            return
        self._conclude(run, record, verdict)

    async def _finish_snapshot(self, run: Run, record: dict, verdict: outcome.Verdict) -> None:
        job = run.job
        partial = job.snapshot_partial
        updates: dict = {}
        try:
            name, problem, removed = await versions.finish_snapshot(
                self.commands, job, self.settings, partial, self.zone(), self.clock
            )
        except Exception as e:  # noqa: BLE001 - the run must end, whatever went wrong here
            log.exception("job %r: finishing snapshot %s", job.name, partial)
            name, problem, removed = None, f"snapshot: could not finish it: {e}", []
        renamed = name is not None
        if renamed:
            stats = {k: v for k, v in job.snapshot_stats.items() if k not in removed}
            # Every snapshot this job made has an entry (its counts when rsync stated them): the
            # next one's name must come after it.
            stats[name] = run.engine.snapshot_stats(list(run.lines)) or {}
            updates = {"snapshot_partial": None, "snapshot_stats": dict(sorted(stats.items())[-SNAPSHOT_STATS_MAX:])}
            gone = f"; removed by retention: {', '.join(removed)}" if removed else ""
            self.logs.write(job.id, f"snapshot {name} is complete; latest points to it{gone}")
        if problem is not None and not problem.startswith(versions.RETENTION):
            self.logs.write(job.id, problem, "error")
            verdict = outcome.Verdict(model.FAILED, error=problem, summary=f"failed: {problem}")
            record = {**record, "outcome": model.FAILED, "error": problem}
        elif problem is not None:  # the snapshot is whole; only retention did not happen
            self.logs.write(job.id, problem, "warning")
            record = {**record, "warnings": [*record["warnings"], problem]}
        run.finishing = None
        self._conclude(run, record, verdict, **updates)

    def _conclude(self, run: Run, record: dict, verdict: outcome.Verdict, **updates) -> None:
        """The run is over: the outcome saved, then hooks, notifications, the next runs."""
        job = run.job
        self.active.pop(job.id, None)
        backup = run.kind == "backup"
        retry = self._retry_wait(run, verdict) if backup else None
        if retry is not None:
            self._retry_later(run, record, retry)
            self.hooks.run_later(job, ["after"], hooks.environment(job, record, model.FAILED))
            return
        if backup and verdict.status == model.COMPLETED:
            # A success ends a stale episode: the next one is told again. A restore or a
            # verify is no backup: it never counts as one.
            updates.update(last_success_at=record["finished_at"], stale_noted=False)
        if run.verify_result is not None:
            updates["last_verify"] = run.verify_result
        status = verdict.status
        kept = run.status_before in (model.COMPLETED, model.FAILED)
        if not backup and kept and (status == model.COMPLETED or run.kind == model.RESTORE and status == model.FAILED):
            # What the job's backups said still holds: a restore (done or not) or a verify that
            # found all well says nothing new about them; its own record says how it went.
            status = run.status_before
        self._ended(run, record, "run ended", status, **updates)
        # After the outcome is saved; the final one (no retry follows).
        first = {model.COMPLETED: ["on_success"], model.FAILED: ["on_failure"]}.get(verdict.status, [])
        self.hooks.run_later(job, (first if backup else []) + ["after"], hooks.environment(job, record, verdict.status))
        if backup:
            self.notifier.run_ended(job, record, self.logs.tail(job.id))
        self.retry_planned()  # the scheduler looks again (a stale episode may have ended)
        self.start_queued()

    def _ended(self, run: Run, record: dict, cause: str, status: str, **updates) -> None:
        """The run's record joins the history, the job takes ``status``, saved before anyone
        hears of it: `--wait` returning means it is on disk (when it can be)."""
        job = run.job
        counts = dict(job.run_counts)
        if run.kind == "backup":  # bkm_job_runs_total counts backups
            counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
            if run.kept:
                updates["partial_kept"] = True
            elif job.partial_kept and not run.keeper and run.stop_reason is None and record["exit_code"] in RAN_THROUGH:
                updates["partial_kept"] = False  # rsync went through the tree: it used what was kept
        self.jobs.set_status(
            job,
            cause,
            status,
            announce=False,
            last_run=record,
            progress=run.tracker.as_dict(),
            runs=(job.runs + [dict(record)])[-self.settings["keep_runs"] :],
            run_counts=counts,
            **updates,
        )
        self.save()
        self.jobs.publish_progress(job)

    def _judged(self, run: Run, code: int | None, spawn_error: str | None) -> tuple[dict, outcome.Verdict]:
        """The run's record and verdict, logged."""
        job = run.job
        verdict = outcome.judge(
            run.engine,
            code,
            list(run.lines),
            run.parser,
            job,
            run.stop_reason,
            spawn_error,
            self.settings["stall_timeout"],
            source_gone=run.kind == "backup" and not model.is_remote(job.source) and not os.path.exists(job.source),
        )
        if run.kind == model.VERIFY and verdict.status != model.PAUSED:
            verdict = self._verified(run, code, spawn_error, verdict)
        theirs = {*job.tool_args, *self.settings["rclone_args"]}  # includes of a person's own
        asked = [
            a.split("=", 1)[1]
            for a in run.argv
            if a.startswith("--include=") and not a.endswith("/**") and a not in theirs
        ]
        seen = getattr(run.parser, "files_seen", None)  # rclone's; rsync fails by itself (exit 23)
        if run.kind == model.RESTORE and verdict.status == model.COMPLETED and asked and seen == 0:
            # rclone finds nothing to copy where rsync fails (exit 23): say so, as rsync does.
            error = f"nothing in the backup matches {', '.join(p.removeprefix('/') for p in asked)}"
            verdict = outcome.Verdict(model.FAILED, error=error, summary=f"failed: {error}")
        tracker = run.tracker
        if verdict.status == model.COMPLETED:
            tracker.complete(run.parser.total_exact)
        else:
            tracker.speed, tracker.eta = 0.0, None
        record = dict(
            run.record,
            finished_at=now(),
            outcome=verdict.status,
            # A pause's exit code is the signal's echo (20, -15, 255 over ssh), not a result.
            exit_code=None if verdict.status == model.PAUSED else code,
            error=verdict.error,
            warnings=verdict.warnings,
            # What was sent: the tool's own figure when it gives one (rsync counts a vanished
            # or unchanged file as done in its progress, not as sent).
            bytes=run.parser.sent_exact if run.parser.sent_exact is not None else tracker.bytes - tracker.base_bytes,
            duration_seconds=round(time.monotonic() - run.started, 3),
            files=run.parser.files_exact,
            paused_by_stop=run.stop_reason == outcome.STOP,
        )
        for warning in verdict.warnings:
            self.logs.write(job.id, warning, "warning")
        self.logs.write(
            job.id,
            f"run {verdict.summary}; {record['bytes']} bytes in {record['duration_seconds']} s",
            "error" if verdict.status == model.FAILED else "info",
        )
        return record, verdict

    def _verified(self, run: Run, code: int | None, spawn_error: str | None, verdict) -> outcome.Verdict:
        """A verify's verdict: completed when the tool compared everything and found nothing;
        failed when something differs, is missing or (mirror) extra, or the tool failed."""
        if spawn_error is None and run.stop_reason is None and run.engine.verify_complete(code, list(run.lines)):
            run.verify_result = versions.verify_result(run.job, run.engine.verify_items(run.found), now())
            counts = run.verify_result["counts"]
            if run.verify_result["ok"]:
                return outcome.Verdict(model.COMPLETED, summary="completed: the backup is the same as the source")
            error = f"verify: {counts['differ']} differ, {counts['missing']} missing at the backup" + (
                f", {counts['extra']} extra" if run.job.mode == "mirror" else ""
            )
            return outcome.Verdict(model.FAILED, error=error, summary=f"failed: {error}")
        run.verify_result = {
            "at": now(), "ok": False, "counts": None, "differ": [], "missing": [], "extra": [], "error": verdict.error,
        }  # fmt: skip
        return verdict

    def _retry_wait(self, run: Run, verdict: outcome.Verdict) -> int | None:
        """Seconds before the next attempt, or None: no retry (not a transient failure, or the
        job's retries are used up). retry_wait doubles with each attempt, up to an hour."""
        attempt = run.record["attempt"]
        if not (verdict.status == model.FAILED and verdict.transient) or attempt > run.job.retries:
            return None
        return min(run.job.retry_wait_seconds * 2 ** (attempt - 1), RETRY_WAIT_CAP)

    def _retry_later(self, run: Run, record: dict, wait: int) -> None:
        """The failed attempt is recorded; the job waits in the queue, retry_at set, until the
        scheduler sees it due (a pause cancels it)."""
        job = run.job
        attempt = record["attempt"]
        at = schedules.time_text(self.clock() + wait)
        waiting = f"retry {attempt} of {job.retries} at {at}"
        self.logs.write(job.id, f"{record['error']}: a transient failure; {waiting} (in {wait} s)", "warning")
        self.queue.add(job.id, True)
        retry = {"trigger": model.RETRY, "attempt": attempt + 1}
        self._ended(run, record, "retry later", model.QUEUED, waiting=waiting, retry_at=at, queued_by=retry)
        self.retry_planned()
        self.start_queued()

    def start_queued(self) -> None:
        """Start queued jobs, oldest first, that may start now (a run's doing, saved in the
        background); the others say what they wait for."""
        started = False
        for job_id, resume in self.queue.items():
            job = self.jobs.by_id.get(job_id)
            if job is None or job.status != model.QUEUED:
                self.queue.remove(job_id)
                continue
            waiting = self._wait_reason(job)
            if waiting is not None:
                if waiting != job.waiting:
                    job.waiting = waiting
                    self.jobs.progress_changed()
                    self.jobs.publish_progress(job)
                continue
            self.queue.remove(job_id)
            queued_by = job.queued_by or {"trigger": model.MANUAL, "attempt": 1}
            trigger = queued_by["trigger"]
            kind = trigger if trigger in (model.RESTORE, model.VERIFY) else "backup"
            argv = queued_by.get("argv")
            if kind == model.RESTORE and not isinstance(argv, list):  # never a backup in its place
                self.jobs.set_status(job, "pause", model.PAUSED)
                self.logs.write(job.id, f"restore {NOT_RESUMED.format(kind='restore')}", "warning")
                started = True
                continue
            run = Run(
                job, resume and kind == "backup", self.transfer_factory, self, trigger, queued_by["attempt"], kind,
                argv if isinstance(argv, list) else None, queued_by.get("force") is True,
            )  # fmt: skip
            if queued_by.get("before") in model.STATUSES:
                run.status_before = queued_by["before"]
            self.active[job.id] = run
            self.jobs.set_status(job, "dequeue", model.RUNNING, last_run=run.record, progress=run.tracker.as_dict())
            self._spawn(run)
            started = True
        if started:
            self.save()

    async def stop_all(self) -> None:
        """Pause every running job (partial data kept); queued ones stay queued for next time;
        then hooks are stopped and deliveries under way get a moment to finish."""
        self.queue.clear()
        runs = list(self.active.values())
        for run in runs:
            run.stop(outcome.STOP)
        await asyncio.gather(*(run.transfer.done.wait() for run in runs))
        # A snapshot being named is let finish (a rename and a link); guards are stopped.
        finishing = [run.finishing for run in runs if run.finishing is not None]
        if finishing:
            await asyncio.wait(finishing, timeout=versions.COMMAND_TIMEOUT)
        await self.commands.stop_all()
        await self.hooks.stop_all()
        await self.notifier.drain(NOTIFY_DRAIN)
