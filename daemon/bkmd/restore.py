"""Restore requests and snapshot listings: what a restore may write where, checked before
anything runs, and the argv that does it.

A restore copies from the backup (the job's destination, or one of its snapshots) into a
folder ``to`` on this machine. It never writes into the backup, and never into the backed-up
source unless ``to`` names that source exactly (a deliberate "put it back where it was").
"""

from __future__ import annotations

import os
import posixpath

from bkm import model
from bkmd import retention, validate, versions
from bkmd.commands import Commands
from bkmd.errors import InvalidParams, ValidationFailed

PATHS_MAX = 1000


def _clean_paths(paths) -> tuple[list[str], str | None]:
    if paths is None:
        return [], None
    if not isinstance(paths, list) or len(paths) > PATHS_MAX:
        return [], f"must be a list of at most {PATHS_MAX} paths"
    clean = []
    for path in paths:
        if not isinstance(path, str) or not path.strip("/") or "\x00" in path or len(path) > model.PATH_MAX:
            return [], f"each path must be a non-empty path inside the backup (got {model.brief(path)})"
        if path.startswith("/"):
            return [], f"{model.brief(path)} is absolute: paths are relative to the backed-up tree (photos/2024)"
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            return [], f"{model.brief(path)} leaves the backed-up tree"
        clean.append(normal)
    return clean, None


def snapshot_name(job, snapshot) -> tuple[str | None, str | None]:
    """(the folder to restore from, or None for the destination itself; a problem)."""
    if job.mode != "snapshot":
        if snapshot is not None:
            return None, f"job {job.name!r} is in {job.mode} mode: it keeps no snapshots"
        return None, None
    if snapshot is None or snapshot == retention.LATEST:
        return retention.LATEST, None
    if not isinstance(snapshot, str) or retention.parse_name(snapshot) is None:
        return None, f"must be a snapshot's name (2026-11-29T023000Z) or latest (got {model.brief(snapshot)})"
    return snapshot, None


def plan(job, settings, to, paths, snapshot, run_as) -> list[str]:
    """The restore's argv; ValidationFailed (every problem by field) when it must not run."""
    if not isinstance(to, str) or not to:
        raise InvalidParams("Invalid params: 'to' must be a folder's path")
    problems: dict[str, str] = {}
    clean, problem = _clean_paths(paths)
    if problem:
        problems["paths"] = problem
    name, problem = snapshot_name(job, snapshot)
    if problem:
        problems["snapshot"] = problem
    path_problem = model.path_problem(to)
    if path_problem:
        problems["to"] = path_problem
    elif model.is_remote(to):
        problems["to"] = "must be a folder on this machine (bkmd's): restore there, then copy it on"
    elif not os.path.isabs(to):
        problems["to"] = "must be an absolute path"
    else:
        backup = versions.folder(job.dest, name) if name else job.dest
        if not model.is_remote(job.dest) and (validate.inside(to, job.dest) or validate.inside(job.dest, to)):
            problems["to"] = f"overlaps the backup ({job.dest}): restore into a folder outside it"
        elif _overlaps_source(job, to):
            problems["to"] = (
                f"overlaps the backed-up source ({job.source}): give exactly {job.source} to restore over it, "
                "or a folder outside it"
            )
        if "to" not in problems:
            found = validate._disk_problems_as({"dest": to}, run_as) if run_as else validate.disk_problems({"dest": to})
            if found:
                problems["to"] = found["dest"]
        if name and name != retention.LATEST and not model.is_remote(job.dest) and not os.path.isdir(backup):
            problems["snapshot"] = f"no snapshot {name} in {job.dest} (list them with: bkm snapshots {job.name})"
    if problems:
        raise ValidationFailed(problems)
    if job.type == "rsync" and not job.source.endswith("/") and to.rstrip("/") == job.source.rstrip("/"):
        # rsync backed up the folder itself (no trailing slash): the backup holds NAME/...,
        # and NAME/ goes back into the folder that holds it, not into NAME/NAME/.
        to = os.path.dirname(job.source.rstrip("/")) or "/"
    return versions.restore_argv(job, settings, clean, to, name)


def _overlaps_source(job, to: str) -> bool:
    """Whether ``to`` is inside the source, or holds it, without naming it exactly."""
    if model.is_remote(job.source) or to.rstrip("/") == job.source.rstrip("/"):
        return False
    return validate.inside(to, job.source) or validate.inside(job.source, to)


def dry(job, argv: list[str]) -> list[str]:
    """The same restore as the tool's own dry run: it lists, counts and writes nothing."""
    return [argv[0], "-n" if job.type == "rsync" else "--dry-run", *argv[1:]]


async def snapshots(commands: Commands, job, settings) -> list[dict]:
    """The snapshots in the job's destination, newest first (one being written first)."""
    if job.mode != "snapshot":
        raise ValidationFailed({"job": f"job {job.name!r} is in {job.mode} mode: it keeps no snapshots"})
    names, problem = await versions.list_snapshots(commands, job, settings)
    if names is None:
        raise ValidationFailed({"dest": f"cannot list {job.dest}: {problem}"})
    listed = []
    for name in sorted((n for n in names if retention.is_partial(n)), reverse=True):
        listed.append(_entry(job, name, partial=True))
    for i, name in enumerate(retention.completed(names)):
        listed.append(_entry(job, name, latest=i == 0))
    return listed


def _entry(job, name: str, partial: bool = False, latest: bool = False) -> dict:
    when = retention.parse_name(name.removesuffix(retention.PARTIAL_SUFFIX))
    stats = job.snapshot_stats.get(name) or {}
    return {
        "name": name,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "partial": partial,
        "latest": latest,
        "files": stats.get("files"),
        "bytes": stats.get("bytes"),
        "new_bytes": stats.get("new_bytes"),
    }
