"""What one running bkmd holds: its paths, jobs, runs, settings, and how a change is saved."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from bkm import paths as bkm_paths
from bkmd.activity import Activity
from bkmd.errors import Unavailable
from bkmd.events import Events
from bkmd.job import now
from bkmd.jobs import Jobs
from bkmd.logs import JobLogs
from bkmd.runs import Runs
from bkmd.settings import Settings

log = logging.getLogger("bkmd")
CHECKPOINT_SECONDS = 10.0


class Daemon:
    def __init__(self, paths: bkm_paths.Paths, records: list[dict], settings: Settings) -> None:
        self.paths = paths
        self.settings = settings
        self.events = Events()
        self.jobs = Jobs(paths.store, records, self.events.publish)
        self.logs = JobLogs(paths.logs, settings)
        self.logs.listeners.append(self._announce_log_line)
        self.activity = Activity(os.path.join(paths.state_dir, "activity.log"))
        self.jobs.on_status.append(self.activity.record)
        self.jobs.on_deleted.append(lambda job: self.logs.remove(job.id))
        self.runs = Runs(self.jobs, settings, self.logs, self.save_quietly)
        self.pid = os.getpid()
        self.started_monotonic = time.monotonic()
        self.started_at = now()
        self.stopping = asyncio.Event()

    def _announce_log_line(self, job_id: str, line: str) -> None:
        job = self.jobs.by_id.get(job_id)
        params = {"job_id": job_id, "name": job.name if job else None, "line": line}
        self.events.publish("log_line", job_id, params)

    def commit(self) -> None:
        """Write what changed; if the disk refuses, undo it in memory too and tell the caller."""
        try:
            if self.jobs.dirty:
                self.jobs.save()
            if self.settings.dirty:
                self.settings.save()
        except OSError as e:
            self.jobs.rollback()
            self.settings.rollback()
            where = e.filename or self.paths.store
            log.error("could not save %s: %s; the change was undone", where, e.strerror or e)
            raise Unavailable(f"could not save the change: {where}: {e.strerror or e}", {"errno": e.errno}) from None

    def save_quietly(self) -> None:
        """Save what runs (not requests) changed; a failure is logged and retried next time."""
        if self.jobs.dirty or self.settings.dirty:
            try:
                self.commit()
            except Unavailable:
                pass

    async def checkpoints(self) -> None:
        """Progress lives in memory; running jobs' progress reaches the store this often."""
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            if self.runs.active:
                self.save_quietly()

    async def stop(self) -> None:
        await self.runs.stop_all()
        self.save_quietly()
