"""Jobs as code: make the jobs match a file's entries (apply.plan, apply.commit), and print
jobs as such entries (apply.export).

An entry is the whole truth about the job of its name: a field left out has its default,
which for bwlimit, retries and retry_wait_seconds is the setting's value now. An entry is
checked exactly as `job create` checks a new job and `job edit` the fields it changes (so an
unchanged job whose source is unplugged does not hold back the rest). The plan is decided
whole before anything changes: one bad entry and nothing is done. The commit plans again in
the same request, with no await in between, and makes every step in the request's one
Change: saved in one write, or undone whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bkm import model
from bkmd import access, validate
from bkmd.access import Caller
from bkmd.change import Change
from bkmd.errors import Conflict, InvalidParams, ValidationFailed
from bkmd.job import Job

CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"
ACTIONS = (CREATE, UPDATE, UNCHANGED, DELETE)
# What an existing job's entry may not change: its name is how the entry finds it, and
# `job edit` cannot change a type.
FIXED = ("name", "type")
ENTRIES_MAX = 10_000


@dataclass
class Step:
    action: str
    name: str
    job: Job | None = None  # the job it changes (update, unchanged, delete; create once made)
    values: dict = field(default_factory=dict)  # clean values: a new job's all, an update's changed
    skipped: str | None = None  # why it is not done (the job is running or queued)

    def public(self) -> dict:
        return {
            "action": self.action,
            "name": self.name,
            "id": self.job.id if self.job else None,
            "status": self.job.status if self.job else None,
            "fields": list(self.values) if self.action == UPDATE else [],
            "skipped": self.skipped,
        }


def result(steps: list[Step], committed: bool) -> dict:
    """apply.plan's and apply.commit's answer: each step, and how many of each were (or would
    be) done; a skipped step counts as skipped only."""
    counts = dict.fromkeys((*ACTIONS, "skipped"), 0)
    for step in steps:
        counts["skipped" if step.skipped else step.action] += 1
    return {"plan": [step.public() for step in steps], "counts": counts, "committed": committed}


def plan(daemon, caller: Caller, entries: Any, prune: Any) -> list[Step]:
    """The steps that make the caller's jobs match ``entries``; ValidationFailed naming every
    problem of every entry (``jobs[INDEX].FIELD``), and nothing else, when any is bad."""
    if not isinstance(entries, list) or len(entries) > ENTRIES_MAX:
        raise InvalidParams(f"Invalid params: 'jobs' must be a list of at most {ENTRIES_MAX} job objects")
    if not isinstance(prune, bool):
        raise InvalidParams("Invalid params: 'prune' must be true or false")
    problems: dict[str, str] = {}
    steps: list[Step] = []
    first: dict[str, int] = {}  # each name's first entry
    for index, entry in enumerate(entries):
        step, found = _step(daemon, caller, entry, index, first)
        for name, problem in found.items():
            problems[f"jobs[{index}]" + (f".{name}" if name else "")] = problem
        if step is not None:
            steps.append(step)
    if problems:
        raise ValidationFailed(problems)
    for index, step in enumerate(steps):  # one step per entry, now that none is bad
        if step.job is None and step.name in daemon.jobs.by_name:  # one this caller does not see
            raise Conflict(
                f"a job named {step.name!r} already exists (another user's): give entry {index + 1} another name",
                {"name": step.name},
            )
    if prune:
        named = set(first)
        owned = [j for j in daemon.jobs.visible(caller) if j.name not in named and _owns(caller, j)]
        steps += [Step(DELETE, j.name, j, skipped=_refusal(daemon, "delete", j)) for j in sorted(owned, key=_by_name)]
    return steps


def _by_name(job: Job) -> str:
    return job.name


def _owns(caller: Caller, job: Job) -> bool:
    """--prune deletes only the caller's own jobs on a system bkmd (root's file does not name
    the members' jobs); on a user's bkmd, every job."""
    return not caller.system or (job.owner or {}).get("uid") == caller.uid


def _refusal(daemon, action: str, job: Job) -> str | None:
    """Why the job's status does not allow ``action`` now, in `job edit`'s words; None if it does."""
    try:
        daemon.jobs.check(action, job)
    except Conflict as e:
        return e.message
    return None


def _step(daemon, caller: Caller, entry: Any, index: int, first: dict[str, int]) -> tuple[Step | None, dict]:
    """One entry's step, and its problems by field ("" for the entry itself)."""
    if not isinstance(entry, dict):
        return None, {"": f"must be a mapping of job fields (name, type, source, dest, ...), not {model.brief(entry)}"}
    problems = {
        str(key): f"unknown field; the fields are {', '.join(model.FIELD_NAMES)}"
        for key in entry
        if key not in model.FIELD_NAMES
    }
    given = {key: value for key, value in entry.items() if key in model.FIELD_NAMES}
    name = given.get("name")
    if isinstance(name, str) and name in first:
        problems["name"] = f"{name!r} is the name of entry {first[name] + 1} too: each job once"
    elif isinstance(name, str) and name:
        first[name] = index
    job = daemon.jobs.by_name.get(name) if isinstance(name, str) else None
    if job is None or not caller.sees(job.owner):
        clean, found = validate.check_fields(
            given, creating=True, settings=daemon.settings, run_as=access.run_as(caller.owner())
        )
        return Step(CREATE, name, values=clean), {**found, **problems}
    wanted, found = desired(given, daemon.settings)
    changed = {key: value for key, value in wanted.items() if key not in FIXED and value != current(job, key)}
    if "type" in wanted and wanted["type"] != job.type:
        found["type"] = (
            f"cannot change {job.type} to {wanted['type']}: a job keeps its type;"
            " delete the job, or give this entry another name"
        )
    if changed and not found:
        clean, found = validate.check_fields(
            changed, creating=False, settings=daemon.settings, run_as=access.run_as(job.owner), current=job.spec
        )
        changed = {key: clean[key] for key in changed if key in clean}
    if not changed:
        return Step(UNCHANGED, name, job), {**found, **problems}
    return Step(UPDATE, name, job, changed, _refusal(daemon, "edit", job)), {**found, **problems}


def current(job: Job, name: str) -> Any:
    """A job's field as an entry would give it (a hand-written store may leave out hook kinds)."""
    value = job.spec[name]
    return {**model.no_hooks(), **value} if name == "hooks" else value


def desired(given: dict, settings) -> tuple[dict, dict]:
    """Every field as an entry means it (its rule applied; left out or null: its default), and
    the problems; the pure rules only (the filesystem's word is check_fields')."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for spec in model.JOB_FIELDS:
        value = given.get(spec.name)
        if value is None and not spec.required:
            values[spec.name] = spec.default_value(settings)
            continue
        parsed, problem = spec.parse(value)
        if problem:
            problems[spec.name] = problem
        else:
            values[spec.name] = parsed
    return values, problems


def commit(daemon, caller: Caller, change: Change, entries: Any, prune: Any) -> list[Step]:
    """Plan again, now, and make every step that is not skipped, all in ``change``."""
    steps = plan(daemon, caller, entries, prune)
    jobs, scheduler = daemon.jobs, daemon.scheduler
    for step in steps:
        if step.skipped or step.action == UNCHANGED:
            continue
        if step.action == CREATE:
            step.job = jobs.create(step.values, caller.owner(), change)
            scheduler.plan(step.job)  # a creation undone takes its due time with it
        elif step.action == UPDATE:
            jobs.update(step.job, step.values, change)
            if "schedule" in step.values:
                paused = step.job.schedule_paused_until if step.values["schedule"] else None
                scheduler.replan(step.job, change, paused)
        else:
            jobs.delete(step.job, change)
    change.after_save(scheduler.wake)
    return steps


def entry(job: Job) -> dict:
    """A job as a file's entry. Name, type, source and dest are always written, and so are the
    fields whose default is a setting (bwlimit, retries, retry_wait_seconds): the setting may
    differ by the time (or on the machine) the file is applied, and the file must still say
    what the job is. Other fields only when they differ from their fixed default (no excludes,
    no schedule, no hooks...), and hooks only the kinds that have commands. URLs whole."""
    written: dict[str, Any] = {}
    for spec in model.JOB_FIELDS:
        value = current(job, spec.name)
        if not spec.required and spec.default_setting is None and value == model.fresh(spec.default):
            continue
        if spec.name == "hooks":
            value = {kind: list(commands) for kind, commands in value.items() if commands}
        written[spec.name] = list(value) if isinstance(value, list) else value
    return written


def _own(job: Job, caller: Caller) -> bool:
    return not caller.system or (job.owner or {}).get("uid") == caller.uid


def export(daemon, caller: Caller, refs: Any) -> dict:
    """The caller's own jobs (those named, or every one) as entries, sorted by name, with their
    URLs' secrets. A file carries no owner: whoever applies it owns what it creates, and runs
    its hooks. So on a system bkmd even root exports only root's jobs (a member's hooks, applied
    by root, would run as root); the others are counted in ``others``."""
    if refs is None:
        chosen = daemon.jobs.visible(caller)
    elif isinstance(refs, list):
        chosen = list({job.id: job for job in (daemon.jobs.find(ref, caller) for ref in refs)}.values())
        theirs = [job for job in chosen if not _own(job, caller)]
        if theirs:
            owner = (theirs[0].owner or {}).get("user") or "another user"
            raise ValidationFailed(
                {"jobs": f"job {theirs[0].name!r} belongs to {owner}: export it as {owner} (applied by you, "
                 "its hooks would run as you)"}
            )  # fmt: skip
    else:
        raise InvalidParams("Invalid params: 'jobs' must be a list of job names or ids")
    mine = [job for job in chosen if _own(job, caller)]
    return {"jobs": [entry(job) for job in sorted(mine, key=_by_name)], "others": len(chosen) - len(mine)}
