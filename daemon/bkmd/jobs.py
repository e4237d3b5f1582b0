"""The jobs: the one place where a job is created, changed, removed or changes status.

Requests change memory and record how to undo it; ``commit`` (in app.py) writes the store
once per request, or undoes the change if it cannot. Runs report back here through
``bkmd.runs``, which also only asks this module to change a status.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from bkm import model
from bkmd import store
from bkmd.errors import Conflict, InvalidParams, JobNotFound
from bkmd.job import Job, event, now

log = logging.getLogger("bkmd.jobs")


class Jobs:
    def __init__(self, store_path: str, records: list[dict], publish: Callable[[str, str, dict], None]) -> None:
        self.store_path = store_path
        self.publish = publish
        self.by_id: dict[str, Job] = {}
        self.by_name: dict[str, Job] = {}
        for record in records:
            self._add(Job.from_record(record))
        self.rev = max((job.rev for job in self.by_id.values()), default=0)
        self._undo: list[Callable[[], None]] = []
        self._changed = False  # changes that need saving but cannot be undone (status, progress)
        self.on_status: list[Callable[[Job], None]] = []  # told of every status change
        self.on_deleted: list[Callable[[Job], None]] = []  # told once a deletion is saved
        self._after_save: list[Callable[[], None]] = []

    def _add(self, job: Job) -> None:
        self.by_id[job.id] = job
        self.by_name[job.name] = job

    def _remove(self, job: Job) -> None:
        del self.by_id[job.id]
        del self.by_name[job.name]

    # -- reading ------------------------------------------------------------------------------

    def find(self, ref: object) -> Job:
        """A job by name, else by id."""
        if not isinstance(ref, str) or not ref:
            raise InvalidParams("Invalid params: 'job' must be a job name or id")
        job = self.by_name.get(ref) or self.by_id.get(ref)
        if job is None:
            raise JobNotFound(ref)
        return job

    def list(self, statuses: set[str] | None = None) -> list[Job]:
        jobs = self.by_id.values()
        if statuses:
            jobs = [job for job in jobs if job.status in statuses]
        return sorted(jobs, key=lambda job: (job.updated_at, job.rev), reverse=True)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(model.STATUSES, 0)
        for job in self.by_id.values():
            counts[job.status] += 1
        return counts

    def with_status(self, *statuses: str) -> list[Job]:
        return [job for job in self.by_id.values() if job.status in statuses]

    # -- changing -----------------------------------------------------------------------------

    def _touch(self, job: Job) -> None:
        self.rev += 1
        job.rev = self.rev
        job.updated_at = now()

    def check(self, action: str, job: Job) -> None:
        if not model.allowed(action, job.status):
            hint = {"edit": "pause it first", "delete": "pause it first"}.get(action, "")
            raise Conflict(
                f"job {job.name!r} is {job.status}: cannot {action} it" + (f"; {hint}" if hint else ""),
                {"status": job.status},
            )

    def set_status(self, job: Job, status: str, announce: bool = True) -> None:
        """Every status change passes here: stamped, saved with the next commit, announced
        (by the caller, with ``announce=False``, when it must save first)."""
        job.status = status
        self._touch(job)
        self._changed = True
        for callback in self.on_status:
            callback(job)
        if announce:
            self.publish_progress(job)

    def publish_progress(self, job: Job) -> None:
        self.publish("job_update", job.id, event(job))

    def progress_changed(self) -> None:
        self._changed = True

    def on_undo(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def create(self, fields: dict) -> Job:
        if fields["name"] in self.by_name:
            raise Conflict(f"a job named {fields['name']!r} already exists", {"name": fields["name"]})
        stamp = now()
        job = Job(
            id=uuid.uuid4().hex,
            name=fields["name"],
            type=fields["type"],
            source=fields["source"],
            dest=fields["dest"],
            bwlimit=fields["bwlimit"],
            excludes=fields["excludes"],
            status=model.PENDING,
            created_at=stamp,
            updated_at=stamp,
        )
        self.rev += 1
        job.rev = self.rev
        self._add(job)
        self._undo.append(lambda: self._remove(job))
        return job

    def update(self, job: Job, changes: dict) -> Job:
        self.check("edit", job)
        new_name = changes.get("name")
        if new_name is not None and new_name != job.name and new_name in self.by_name:
            raise Conflict(f"a job named {new_name!r} already exists", {"name": new_name})
        fields = ("name", "source", "dest", "bwlimit", "excludes", "updated_at", "rev")
        before = {key: getattr(job, key) for key in fields}

        def undo() -> None:
            del self.by_name[job.name]
            for key, value in before.items():
                setattr(job, key, value)
            self.by_name[job.name] = job

        del self.by_name[job.name]
        for key, value in changes.items():
            setattr(job, key, value)
        self.by_name[job.name] = job
        self._touch(job)
        self._undo.append(undo)
        return job

    def delete(self, job: Job) -> None:
        self.check("delete", job)
        self._remove(job)
        self._undo.append(lambda: self._add(job))
        # Its files go only once the store no longer has it: a deletion that cannot be saved
        # is undone, and must find its logs where they were.
        self._after_save.extend(lambda callback=callback: callback(job) for callback in self.on_deleted)

    # -- saving -------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self._undo) or self._changed

    def save(self) -> None:
        store.save_jobs(self.store_path, (job.record() for job in self.by_id.values()))
        self._undo.clear()
        self._changed = False
        actions, self._after_save = self._after_save, []
        for action in actions:
            action()

    def rollback(self) -> None:
        self._after_save.clear()
        while self._undo:
            self._undo.pop()()
