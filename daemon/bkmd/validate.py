"""Job field validation: the model's pure rules plus what only the filesystem can tell.

Every field is checked and every problem reported at once, so a bad type never hides a bad
source. The daemon validates (not click), because it is the one that will read and write
those paths.
"""

from __future__ import annotations

import os
from typing import Any

from bkm import model


def _readable(path: str) -> str | None:
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"does not exist: {path}"
    except OSError as e:
        return f"cannot be read: {path}: {e.strerror}"
    need = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
    if not os.access(path, need):
        return f"is not readable: {path}"
    return None


def _source(path: str) -> str | None:
    if os.path.islink(path) and not path.endswith("/"):
        return (
            f"is a symbolic link: rsync would back up the link itself, not the folder it points to;"
            f" give it as {path}/ to back up what it points to"
        )
    return _readable(path)


def _writable(path: str) -> str | None:
    target = path.rstrip("/") or "/"
    if os.path.exists(target):
        need = os.W_OK | (os.X_OK if os.path.isdir(target) else 0)
        return None if os.access(target, need) else f"is not writable: {path}"
    parent = os.path.dirname(target) or "/"
    if not os.path.isdir(parent):
        return f"does not exist and neither does its parent folder: {parent}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"does not exist and its parent folder is not writable: {parent}"
    return None


# What only the filesystem can tell, beyond each field's rule in bkm.model.JOB_FIELDS.
_ON_DISK = {"source": _source, "dest": _writable}


def disk_problems(paths: dict[str, str]) -> dict[str, str]:
    """The filesystem's word on each field's path (source readable, dest writable), as the
    user this process runs as."""
    problems = {field: _ON_DISK[field](path) for field, path in paths.items()}
    return {field: problem for field, problem in problems.items() if problem}


def _disk_problems_as(paths: dict[str, str], run_as) -> dict[str, str]:
    """The same checks in a forked child that has taken the job owner's uid, gid and groups:
    root may read anything, so only the owner's own view says what their transfer will be
    able to do. A fork, not a new program: nothing to find or import, about a millisecond.
    (bkmd is single-threaded, so the child inherits no lock held by another thread.)"""
    import json

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the owner, check, answer, exit; never return
        code = 1
        try:
            os.close(read_end)
            os.setgroups(list(run_as.groups))
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
            os.write(write_end, json.dumps(disk_problems(paths)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    try:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    try:
        if os.waitstatus_to_exitcode(status) == 0:
            return json.loads(b"".join(chunks))
    except ValueError:
        pass
    return dict.fromkeys(paths, f"cannot be checked as {run_as.user}")


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it: local paths with symlinks resolved, remotes
    (host:path) compared as written; a local path is never inside a remote one."""
    if model.is_remote(path) != model.is_remote(folder):
        return False
    if not model.is_remote(path):
        path, folder = os.path.realpath(path), os.path.realpath(folder)
    return (path.rstrip("/") + "/").startswith(folder.rstrip("/") + "/")


def nesting_problem(source: str, dest: str) -> str | None:
    """A destination equal to or inside its source makes every run copy the backup into itself
    (doubling it each night). Local paths only; symlinks resolved."""
    if model.is_remote(source) or model.is_remote(dest) or not inside(dest, source):
        return None
    if inside(source, dest):
        return f"is the source itself ({source}): choose a folder outside it"
    return f"is inside the source ({source}): each run would copy the backup into itself; choose a folder outside it"


def check_fields(
    fields: dict[str, Any], creating: bool, settings, run_as=None, current: dict | None = None
) -> tuple[dict, dict]:
    """(clean values, problems by field) for the fields of bkm.model.JOB_FIELDS. Creating, every
    field is checked and defaults fill the ones not given; updating, only those given, against
    the job's ``current`` fields. Local paths are checked as ``run_as`` (bkmd.access.RunAs)
    when the job runs as another user."""
    clean: dict[str, Any] = {}
    problems: dict[str, str] = {}
    on_disk: dict[str, str] = {}
    for field in model.JOB_FIELDS:
        value = fields.get(field.name)
        if value is None and field.nullable and field.name in fields:
            clean[field.name] = None  # given as null: none (`job edit --no-schedule`)
            continue
        if value is None and not (creating and field.required):
            if creating:
                clean[field.name] = field.default_value(settings)
            continue
        parsed, problem = field.parse(value)
        if problem:
            problems[field.name] = problem
            continue
        clean[field.name] = parsed
        if field.name in _ON_DISK and not model.is_remote(parsed):
            on_disk[field.name] = parsed
    if on_disk:
        found = _disk_problems_as(on_disk, run_as) if run_as is not None else disk_problems(on_disk)
        for field, problem in found.items():
            problems[field] = problem
            clean.pop(field, None)
    if "source" not in problems and "dest" not in problems and ("source" in clean or "dest" in clean):
        merged = {**(current or {}), **clean}
        nested = nesting_problem(merged["source"], merged["dest"])
        if nested:
            problems["dest"] = nested
    problems.update(mode_problems({**(current or {}), **clean}, problems))
    return clean, problems


def mode_problems(merged: dict, found: dict) -> dict[str, str]:
    """What a job's mode does not allow with its other fields."""
    problems = {}
    mode = merged.get("mode")
    if mode == "snapshot" and not {"mode", "type", "dest"} & found.keys():
        dest = merged.get("dest") or ""
        if merged.get("type") != "rsync":
            problems["mode"] = "snapshot mode needs type rsync (rclone cannot hard-link the unchanged files)"
        elif "::" in dest or dest.startswith("rsync://"):
            problems["mode"] = "snapshot mode needs a local or host:path destination, not an rsync daemon's module"
    if merged.get("keep") and mode != "snapshot" and not {"keep", "mode"} & found.keys():
        problems["keep"] = "the --keep-* rules are for snapshot mode only (--mode snapshot)"
    return problems
