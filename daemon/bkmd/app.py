"""What one running bkmd holds: its paths, jobs, settings, and how a change is saved."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from bkm import paths as bkm_paths
from bkmd.errors import Unavailable
from bkmd.jobs import Jobs
from bkmd.settings import Settings

log = logging.getLogger("bkmd")


class Daemon:
    def __init__(self, paths: bkm_paths.Paths, jobs: Jobs, settings: Settings) -> None:
        self.paths = paths
        self.jobs = jobs
        self.settings = settings
        self.pid = os.getpid()
        self.started_monotonic = time.monotonic()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.stopping = asyncio.Event()

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
