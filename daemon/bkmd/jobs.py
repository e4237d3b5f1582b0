"""The jobs: creating, changing and removing them, and the one place where a status changes.

Requests pass their ``Change``: each step records its undo there and the store is written
when the change is committed. Runs (bkmd.runs, bkmd.recovery) pass none: what they change is
already decided, is marked ``unsaved`` and reaches the store with the next save.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from bkm import model
from bkmd import store
from bkmd.access import Caller
from bkmd.change import Change
from bkmd.errors import Conflict, InvalidParams, JobNotFound
from bkmd.job import Job, event, now

log = logging.getLogger("bkmd.jobs")


class ImpossibleTransition(Exception):
    """A status change the state machine does not allow: a bug in bkmd, never the user's."""


class Jobs:
    def __init__(
        self, store_path: str, records: list[dict], publish: Callable[[str, str, dict], None], default_owner: dict
    ) -> None:
        self.store_path = store_path
        self.publish = publish
        self.by_id: dict[str, Job] = {}
        self.by_name: dict[str, Job] = {}
        # What changed since the last save: ids of jobs assigned to (see Job.__setattr__) and
        # of jobs removed. A save of a few goes to the journal, else the store is written whole.
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()
        self.journal = store.Journal(store_path)
        self.flush_owed = False  # a flushed save failed: the next save is flushed, whoever asks
        for record in records:
            job = Job.from_record(record)
            if job.owner is None:  # written before jobs had owners
                job.owner = dict(default_owner)
            self._add(job)
        self.rev = max((job.rev for job in self.by_id.values()), default=0)
        # Decided changes (a run's end, progress) not yet on disk; from the start when an entry
        # was written by hand (bkmd's own records have "rev"): its filled-in id and times must
        # reach the store, or the next start would make new ones.
        self.unsaved = any("rev" not in record for record in records)
        self.dirty.clear()
        if store.journal_continues(store_path):
            self.unsaved = True  # its changes were loaded: the store is written whole at start
        elif not self.unsaved:
            self.journal.generation = store.store_generation(store_path)  # saves go on from it
        self.on_status: list[Callable[[Job], None]] = []  # told of every status change that stays
        self.on_deleted: list[Callable[[Job], None]] = []  # told once a deletion is saved

    def _add(self, job: Job) -> None:
        self.by_id[job.id] = job
        self.by_name[job.name] = job
        job._sink = self.dirty
        self.dirty.add(job.id)
        self.deleted.discard(job.id)

    def _remove(self, job: Job) -> None:
        del self.by_id[job.id]
        del self.by_name[job.name]
        self.dirty.discard(job.id)
        self.deleted.add(job.id)

    # -- reading ------------------------------------------------------------------------------

    def find(self, ref: object, caller: Caller) -> Job:
        """A job by name, else by id; one the caller may not see does not exist for them."""
        if not isinstance(ref, str) or not ref:
            raise InvalidParams("Invalid params: 'job' must be a job name or id")
        job = self.by_name.get(ref) or self.by_id.get(ref)
        if job is None or not caller.sees(job.owner):
            raise JobNotFound(ref)
        return job

    def visible(self, caller: Caller) -> list[Job]:
        return [job for job in self.by_id.values() if caller.sees(job.owner)]

    def list(self, caller: Caller, statuses: set[str] | None = None) -> list[Job]:
        jobs = self.visible(caller)
        if statuses:
            jobs = [job for job in jobs if job.status in statuses]
        return sorted(jobs, key=lambda job: (job.updated_at, job.rev), reverse=True)

    def counts(self, caller: Caller) -> dict[str, int]:
        counts = dict.fromkeys(model.STATUSES, 0)
        for job in self.visible(caller):
            counts[job.status] += 1
        return counts

    def with_status(self, *statuses: str) -> list[Job]:
        return [job for job in self.by_id.values() if job.status in statuses]

    # -- status -------------------------------------------------------------------------------

    def check(self, action: str, job: Job) -> None:
        """Refuse a request the job's status does not allow (a conflict, exit 5)."""
        if not model.allowed(action, job.status):
            hint = {"edit": "pause it first", "delete": "pause it first"}.get(action, "")
            raise Conflict(
                f"job {job.name!r} is {job.status}: cannot {action} it" + (f"; {hint}" if hint else ""),
                {"status": job.status},
            )

    def set_status(
        self, job: Job, cause: str, status: str, change: Change | None = None, announce: bool = True, **updates
    ) -> None:
        """Every status change passes here and is checked against model.TRANSITIONS; ``updates``
        (last_run, progress, runs, retry_at, queued_by) change with it.

        With a request's ``change``, undoing the change restores all of it as it was, and the
        change is announced (and recorded as activity) only once it is saved. Without one it
        is a run's doing: marked unsaved and announced now (or by the caller, with
        ``announce=False``, once it has saved it). Leaving the queue ends any wait.
        """
        if not model.may_change(cause, job.status, status):
            log.error("internal error: %s cannot turn job %r from %s into %s", cause, job.name, job.status, status)
            raise ImpossibleTransition(f"{cause}: {job.status} -> {status}")
        if change is not None:
            self._clean_on_undo(change, job.id)
        before = (
            job.status, job.updated_at, job.rev, job.last_run, job.progress, job.runs, job.waiting, job.retry_at,
            job.queued_by,
        )  # fmt: skip
        job.status = status
        if status != model.QUEUED:  # leaving the queue ends any wait, and any retry it waited for
            job.waiting = job.retry_at = job.queued_by = None
        for key, value in updates.items():
            setattr(job, key, value)
        self._touch(job)
        if change is None:
            self.unsaved = True
            self._settled(job, announce)
            return
        change.jobs_changed = True
        change.on_undo(lambda: self._restore(job, before))
        change.after_save(lambda: self._settled(job, True))

    def _clean_on_undo(self, change: Change, job_id: str) -> None:
        """Undone, a change leaves the job as it was, so also as unsaved or not as it was: a
        job put back as it is on disk is not written again (after a failed save, the next
        save carries only what changed since). Registered first, so it runs last."""
        was = (job_id in self.dirty, job_id in self.deleted)

        def clean() -> None:
            for known, ids in zip(was, (self.dirty, self.deleted), strict=True):
                if not known:
                    ids.discard(job_id)

        change.on_undo(clean)

    def _restore(self, job: Job, before: tuple) -> None:
        if not model.may_change("undo", job.status, before[0]):
            log.error("internal error: cannot undo job %r from %s back to %s", job.name, job.status, before[0])
            raise ImpossibleTransition(f"undo: {job.status} -> {before[0]}")
        (
            job.status, job.updated_at, job.rev, job.last_run, job.progress, job.runs, job.waiting, job.retry_at,
            job.queued_by,
        ) = before  # fmt: skip

    def _settled(self, job: Job, announce: bool) -> None:
        for callback in self.on_status:
            callback(job)
        if announce:
            self.publish_progress(job)

    def publish_progress(self, job: Job) -> None:
        self.publish("job_update", job.id, event(job))

    def progress_changed(self) -> None:
        self.unsaved = True

    # -- requests -----------------------------------------------------------------------------

    def _touch(self, job: Job) -> None:
        self.rev += 1
        job.rev = self.rev
        job.updated_at = now()

    def create(self, fields: dict, owner: dict, change: Change) -> Job:
        if fields["name"] in self.by_name:
            raise Conflict(f"a job named {fields['name']!r} already exists", {"name": fields["name"]})
        stamp = now()
        job = Job(
            id=uuid.uuid4().hex,
            spec=dict(fields),
            status=model.PENDING,
            created_at=stamp,
            updated_at=stamp,
            owner=owner,
        )
        self.rev += 1
        job.rev = self.rev
        self._clean_on_undo(change, job.id)
        self._add(job)
        change.jobs_changed = True
        change.on_undo(lambda: self._remove(job))
        return job

    def update(self, job: Job, changes: dict, change: Change) -> Job:
        self.check("edit", job)
        new_name = changes.get("name")
        if new_name is not None and new_name != job.name and new_name in self.by_name:
            raise Conflict(f"a job named {new_name!r} already exists", {"name": new_name})
        before = (dict(job.spec), job.updated_at, job.rev)
        self._clean_on_undo(change, job.id)

        def undo() -> None:
            del self.by_name[job.name]
            spec, job.updated_at, job.rev = before
            job.spec = spec
            self.by_name[job.name] = job

        del self.by_name[job.name]
        job.spec = {**job.spec, **changes}
        self.by_name[job.name] = job
        self._touch(job)
        change.jobs_changed = True
        change.on_undo(undo)
        return job

    def delete(self, job: Job, change: Change) -> None:
        self.check("delete", job)
        self._clean_on_undo(change, job.id)
        self._remove(job)
        change.jobs_changed = True
        change.on_undo(lambda: self._add(job))
        # Its files go only once the store no longer has it: a deletion that cannot be saved
        # is undone, and must find its logs where they were.
        for callback in self.on_deleted:
            change.after_save(lambda callback=callback: callback(job))

    # -- saving -------------------------------------------------------------------------------

    def save(self, whole: bool = False, durable: bool = True) -> None:
        """Save every job as memory holds it now (raises OSError; the caller decides): the
        jobs changed since the last save appended to the journal when they are few, else (or
        ``whole``) the whole store written afresh, which ends the journal. A journal append
        that need not be ``durable`` is not flushed to the disk (a crash of bkmd keeps it; one
        of the machine may lose it, whole: see store.Journal); a whole write always is."""
        changed = [self.by_id[job_id] for job_id in self.dirty if job_id in self.by_id]
        gone = [job_id for job_id in self.deleted if job_id not in self.by_id]
        if whole and not (self.unsaved or changed or gone or self.journal.size):
            return  # the store on disk is whole and current
        durable = durable or self.flush_owed
        try:
            if not whole and self.journal.takes(len(changed) + len(gone)):
                self.journal.append([job.record() for job in changed], gone, durable)
            else:
                durable = True  # a whole write always is
                generation = uuid.uuid4().hex
                lines = [job.stored_line(store.job_line) for job in self.by_id.values()]
                store.save_job_lines(self.store_path, lines, generation)
                self.journal.started(generation)
        except OSError:
            self.flush_owed = self.flush_owed or durable
            raise
        if durable:
            self.flush_owed = False
        self.dirty.clear()
        self.deleted.clear()
        self.unsaved = False
