"""One job as bkmd holds it: the fields a person set (bkm.model.JOB_FIELDS) and its state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bkm import model
from bkm.masking import mask_url
from bkm.schedules import parse_time


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_record(trigger: str, attempt: int, resumed: bool, **fields) -> dict:
    """A run's record (last_run, runs[]) as it begins; ``fields`` set what is known already
    (a skipped run is over as it begins). One shape for every kind of run."""
    record = {
        "started_at": now(),
        "finished_at": None,
        "outcome": None,
        "exit_code": None,
        "error": None,
        "warnings": [],
        "bytes": 0,
        "duration_seconds": None,
        "files": None,  # files and folders in scope, when the tool states them (rsync)
        "resumed": resumed,
        "trigger": trigger,
        "attempt": attempt,
    }
    record.update(fields)
    return record


def empty_progress() -> dict:
    return {"percent": 0.0, "bytes_transferred": 0, "total_bytes": 0, "speed_bytes": 0, "eta_seconds": None}


@dataclass(slots=True)
class Job:
    id: str
    # The fields of bkm.model.JOB_FIELDS, by name; read them as attributes (job.source).
    spec: dict
    status: str
    created_at: str
    updated_at: str
    progress: dict = field(default_factory=empty_progress)
    last_run: dict | None = None
    # Earlier runs, newest last, at most the setting keep_runs.
    runs: list[dict] = field(default_factory=list)
    # Store-wide change counter: orders jobs changed within the same second.
    rev: int = 0
    # Who created it ({"uid", "user", "gid"}): whom it runs as, and who may see it (bkmd.access).
    owner: dict | None = None
    # Why a queued job waits ("waiting for photos: same destination"), else None.
    waiting: str | None = None
    # Its schedule's next due time (UTC text), kept by bkmd.scheduler; None without schedule.
    next_run_at: str | None = None
    # No scheduled runs until this time (UTC text), or "forever"; None: not paused.
    schedule_paused_until: str | None = None
    # A queued job waiting to retry a run that failed for a transient reason: when.
    retry_at: str | None = None
    # When a run of it last completed (UTC text): stale after max_age_seconds.
    last_success_at: str | None = None
    # Whether people were told it is stale: one notification per stale episode.
    stale_noted: bool = False
    # Runs by outcome since the job was created (bkm_job_runs_total).
    run_counts: dict = field(default_factory=dict)
    # What queued the job ({"trigger": model.SCHEDULE, "attempt": 1}): its run records it when
    # it leaves the queue, also after a restart.
    queued_by: dict | None = None
    # Snapshot mode: the folder ("….partial") a run is writing until it completes; a paused,
    # interrupted or failed run's next attempt writes into it again.
    snapshot_partial: str | None = None
    # rsync, local: bkmd kept a stopped run's unfinished file in .rsync-partial/ (Run.keeper),
    # so the next run is given --partial-dir to build on it; cleared when such a run completes.
    partial_kept: bool = False
    # Snapshot mode: what each snapshot held when it was made, by folder name
    # ({"files", "bytes", "new_bytes"}, from rsync's --stats).
    snapshot_stats: dict = field(default_factory=dict)
    # The last `bkm verify`: {"at", "ok", "counts", "differ", "missing", "extra", "error"}.
    last_verify: dict | None = None
    # This job's store line, until a field changes (see __setattr__ and stored_line).
    _stored: str | None = field(default=None, repr=False, compare=False)
    # Where the ids of changed jobs are collected for the next save (Jobs.dirty), once added.
    _sink: set | None = field(default=None, repr=False, compare=False)

    def __getattr__(self, name: str):
        # Only called for names that are not attributes: the job's fields.
        try:
            return self.spec[name]
        except KeyError:
            raise AttributeError(name) from None

    def stale(self, now: float | None = None) -> bool:
        """Whether its last success (or, never run, its creation) is older than max_age."""
        if not self.max_age_seconds:
            return False
        since = self.last_success_at or self.created_at
        try:
            then = parse_time(since)
        except ValueError:
            return False
        return (time.time() if now is None else now) - then > self.max_age_seconds

    def public(self, masked: bool = True) -> dict:
        """The contract's job object; secrets in its URLs masked unless asked (the store)."""
        fields = {name: _copy(self.spec[name]) for name in model.FIELD_NAMES}
        if masked:
            fields["notify"] = [mask_url(url) for url in fields["notify"]]
            if fields["healthcheck"]:
                fields["healthcheck"] = mask_url(fields["healthcheck"])
        return {
            "id": self.id,
            **fields,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "progress": dict(self.progress),
            "last_run": dict(self.last_run) if self.last_run else None,
            "owner": {"uid": self.owner["uid"], "user": self.owner["user"]} if self.owner else None,
            "waiting": self.waiting,
            "next_run_at": self.next_run_at,
            "schedule_paused_until": self.schedule_paused_until,
            "retry_at": self.retry_at,
            "last_success_at": self.last_success_at,
            "stale": self.stale(),
            "last_verify": _copy(self.last_verify) if self.last_verify else None,
        }

    def detail(self) -> dict:
        """The public fields plus the run history (job.get only: lists stay small)."""
        data = self.public()
        data["runs"] = [dict(run) for run in self.runs]
        return data

    def record(self) -> dict:
        record = self.public(masked=False)
        del record["stale"]  # computed from the clock
        # Two places keep the float out of exponent form, which YAML 1.1 would read as text.
        record["progress"]["percent"] = round(float(record["progress"].get("percent") or 0.0), 2)
        record["runs"] = self.runs
        record["rev"] = self.rev
        record["owner"] = self.owner
        record["queued_by"] = self.queued_by
        record["stale_noted"] = self.stale_noted
        record["run_counts"] = self.run_counts
        record["snapshot_partial"] = self.snapshot_partial
        record["partial_kept"] = self.partial_kept
        record["snapshot_stats"] = self.snapshot_stats
        return record

    def __setattr__(self, name: str, value: object) -> None:
        # Every change replaces a field's value (bkmd never changes a job's dict or list in
        # place), so any assignment is what makes the store line stale: checking 10,000 jobs'
        # fields at every save instead cost a single create 30 ms.
        object.__setattr__(self, name, value)
        if name == "_stored" or name == "_sink":
            return
        object.__setattr__(self, "_stored", None)
        try:
            sink = Job._sink.__get__(self, Job)  # unset while __init__ runs
        except AttributeError:
            return
        if sink is not None:
            sink.add(self.id)

    def stored_line(self, make: Callable[[dict], str]) -> str:
        """The job's line in the store, made again only when a field was assigned since."""
        if self._stored is None:
            object.__setattr__(self, "_stored", make(self.record()))
        return self._stored

    @classmethod
    def from_record(cls, record: dict) -> Job:
        progress = empty_progress()
        if isinstance(record.get("progress"), dict):
            progress.update(record["progress"])
        runs = record.get("runs")
        return cls(
            id=record["id"],
            spec={
                f.name: _copy(record[f.name]) if f.name in record or f.default_setting else model.fresh(f.default)
                for f in model.JOB_FIELDS
            },
            status=record["status"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
            progress=progress,
            last_run=record.get("last_run"),
            runs=runs if isinstance(runs, list) else [],
            rev=int(record.get("rev") or 0),
            owner=record.get("owner") if isinstance(record.get("owner"), dict) else None,
            waiting=_text(record.get("waiting")),
            next_run_at=_time(record.get("next_run_at")),
            schedule_paused_until=_time(record.get("schedule_paused_until"), "forever"),
            retry_at=_time(record.get("retry_at")),
            queued_by=_queued_by(record.get("queued_by")),
            last_success_at=_time(record.get("last_success_at")) or _last_success(runs),
            stale_noted=record.get("stale_noted") is True,
            run_counts=_counts(record.get("run_counts"), runs),
            snapshot_partial=_text(record.get("snapshot_partial")),
            # A store written before bkmd kept files itself: rsync kept them, for these.
            partial_kept=record["partial_kept"] is True
            if "partial_kept" in record
            else record.get("status") in (model.PAUSED, model.INTERRUPTED),
            snapshot_stats=record["snapshot_stats"] if isinstance(record.get("snapshot_stats"), dict) else {},
            last_verify=record["last_verify"] if isinstance(record.get("last_verify"), dict) else None,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: object, *words: str) -> str | None:
    """A stored time (UTC text, as bkmd writes it), or one of ``words``; anything else (a hand
    edit gone wrong) is None: the scheduler plans such a time afresh."""
    if not isinstance(value, str) or value in words:
        return value if isinstance(value, str) else None
    try:
        parse_time(value)
    except ValueError:
        return None
    return value


def _counts(value: object, runs: object) -> dict:
    """Runs by outcome; for a job stored before they were counted, those of its history."""
    if isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    counts: dict[str, int] = {}
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict) and isinstance(run.get("outcome"), str):
            counts[run["outcome"]] = counts.get(run["outcome"], 0) + 1
    return counts


def _last_success(runs: object) -> str | None:
    """From the history, for a job stored before last_success_at was kept."""
    for run in reversed(runs if isinstance(runs, list) else []):
        if isinstance(run, dict) and run.get("outcome") == model.COMPLETED:
            return _time(run.get("finished_at"))
    return None


def _queued_by(value: object) -> dict | None:
    if isinstance(value, dict) and isinstance(value.get("trigger"), str) and isinstance(value.get("attempt"), int):
        return {"trigger": value["trigger"], "attempt": value["attempt"]}
    return None


def _copy(value: object) -> object:
    return list(value) if isinstance(value, list) else value


def event(job: Job) -> dict:
    """The contract's job_update event."""
    progress = job.progress
    return {
        "event": "job_update",
        "job_id": job.id,
        "name": job.name,
        "status": job.status,
        "percent": progress.get("percent", 0.0),
        "bytes_transferred": progress.get("bytes_transferred", 0),
        "total_bytes": progress.get("total_bytes", 0),
        "speed_bytes": progress.get("speed_bytes", 0),
        "eta_seconds": progress.get("eta_seconds"),
        # False while the tool has not given the total yet (rsync still lists the tree): the
        # percent is held or a safe lower bound and the ETA null. Progress saved before this
        # field existed, and a job that never ran, have none: their totals were never guesses.
        "total_known": bool(progress.get("total_known", True)),
        "time": now(),
        "waiting": job.waiting,
        "idle_seconds": progress.get("idle_seconds"),
    }
