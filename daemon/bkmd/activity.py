"""Recent activity (starts, pauses, ends, failures): a small append-only file that outlives
restarts, of which the dashboard shows the newest entries."""

from __future__ import annotations

import collections
import json
import logging
import os

from bkmd.job import Job, now
from bkmd.logs import lines_before

log = logging.getLogger("bkmd.activity")
KEEP = 100
MAX_BYTES = 256 * 1024


class Activity:
    def __init__(self, path: str) -> None:
        self.path = path
        self.recent: collections.deque[dict] = collections.deque(maxlen=KEEP)
        for _, line in lines_before(path, None, KEEP)[0]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.recent.append(entry)

    def record(self, job: Job) -> None:
        run = job.last_run or {}
        detail = None
        if job.status == "failed":
            detail = run.get("error")
        elif job.status == "queued":
            detail = job.waiting
        elif job.status == "completed":
            detail = f"{run.get('bytes', 0)} bytes in {run.get('duration_seconds')} s"
            warnings = run.get("warnings") or []
            if warnings:
                detail += f"; {len(warnings)} warning{'s' if len(warnings) > 1 else ''}: {warnings[0]}"
        figures = {}
        if job.status in ("completed", "failed", "paused") and run.get("finished_at"):
            # The numbers too, for views to show in their own units.
            figures = {"bytes": run.get("bytes", 0), "duration_seconds": run.get("duration_seconds")}
        self.note(job, job.status, detail, **figures)

    def note(self, job: Job, what: str, detail: str | None, **figures) -> None:
        """An entry of its own: a status, or what happened without one ("skipped")."""
        entry = {"time": now(), "job_id": job.id, "name": job.name, "status": what, "detail": detail, **figures}
        self.recent.append(entry)
        try:
            if os.path.exists(self.path) and os.path.getsize(self.path) > MAX_BYTES:
                self._compact()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except OSError as e:
            log.error("cannot write %s: %s", self.path, e)

    def _compact(self) -> None:
        from bkmd.store import atomic_write

        atomic_write(self.path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.recent).encode())

    def newest(self, count: int, jobs: set[str] | None = None) -> list[dict]:
        """The newest ``count`` entries, newest first; with ``jobs``, only those of these job ids."""
        entries = list(self.recent) if jobs is None else [e for e in self.recent if e.get("job_id") in jobs]
        return entries[-count:][::-1]
