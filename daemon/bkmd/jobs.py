"""The jobs: the one place where a job is created, changed, removed or changes status.

Changes happen in memory and are recorded in an undo log; ``commit`` writes the store once
for everything changed since the last commit, or, if it cannot, undoes those changes so
memory never claims what the disk does not hold.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bkm import model
from bkmd import store
from bkmd.errors import Conflict, InvalidParams, JobNotFound


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def empty_progress() -> dict:
    return {"percent": 0.0, "bytes_transferred": 0, "total_bytes": 0, "speed_bytes": 0, "eta_seconds": None}


@dataclass(slots=True)
class Job:
    id: str
    name: str
    type: str
    source: str
    dest: str
    bwlimit: int
    excludes: list[str]
    status: str
    created_at: str
    updated_at: str
    progress: dict = field(default_factory=empty_progress)
    last_run: dict | None = None
    # Store-wide change counter: orders jobs changed within the same second.
    rev: int = 0

    def public(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "source": self.source,
            "dest": self.dest,
            "bwlimit": self.bwlimit,
            "excludes": list(self.excludes),
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "progress": dict(self.progress),
            "last_run": dict(self.last_run) if self.last_run else None,
        }

    def record(self) -> dict:
        record = self.public()
        # Two places keep the float out of exponent form, which YAML 1.1 would read as text.
        record["progress"]["percent"] = round(float(record["progress"].get("percent") or 0.0), 2)
        record["rev"] = self.rev
        return record

    @classmethod
    def from_record(cls, record: dict) -> Job:
        progress = empty_progress()
        if isinstance(record.get("progress"), dict):
            progress.update(record["progress"])
        return cls(
            id=record["id"],
            name=record["name"],
            type=record["type"],
            source=record["source"],
            dest=record["dest"],
            bwlimit=record["bwlimit"],
            excludes=list(record["excludes"]),
            status=record["status"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
            progress=progress,
            last_run=record.get("last_run"),
            rev=int(record.get("rev", 0)),
        )


class Jobs:
    def __init__(self, store_path: str, records: list[dict]) -> None:
        self.store_path = store_path
        self.by_id: dict[str, Job] = {}
        self.by_name: dict[str, Job] = {}
        for record in records:
            self._add(Job.from_record(record))
        self.rev = max((job.rev for job in self.by_id.values()), default=0)
        self._undo: list[Callable[[], None]] = []

    def _add(self, job: Job) -> None:
        self.by_id[job.id] = job
        self.by_name[job.name] = job

    def _remove(self, job: Job) -> None:
        del self.by_id[job.id]
        del self.by_name[job.name]

    # -- reading ------------------------------------------------------------------------------

    def find(self, ref: Any) -> Job:
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

    # -- changing -----------------------------------------------------------------------------

    def _touch(self, job: Job) -> None:
        self.rev += 1
        job.rev = self.rev
        job.updated_at = now()

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
        if job.status in model.ACTIVE:
            raise Conflict(f"job {job.name!r} is {job.status}; pause it before editing it")
        new_name = changes.get("name")
        if new_name is not None and new_name != job.name and new_name in self.by_name:
            raise Conflict(f"a job named {new_name!r} already exists", {"name": new_name})
        before = {
            key: getattr(job, key) for key in ("name", "source", "dest", "bwlimit", "excludes", "updated_at", "rev")
        }

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
        if job.status in model.ACTIVE:
            raise Conflict(f"job {job.name!r} is {job.status}; pause it before deleting it")
        self._remove(job)
        self._undo.append(lambda: self._add(job))

    # -- saving -------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self._undo)

    def save(self) -> None:
        store.save_jobs(self.store_path, (job.record() for job in self.by_id.values()))
        self._undo.clear()

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()
