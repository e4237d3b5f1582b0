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


def check_source(path: Any) -> str | None:
    problem = model.path_problem(path)
    if problem or model.is_remote(path):
        return problem
    return _readable(path)


def check_dest(path: Any) -> str | None:
    problem = model.path_problem(path)
    if problem or model.is_remote(path):
        return problem
    return _writable(path)


def check_fields(fields: dict[str, Any], creating: bool, default_bwlimit: int) -> tuple[dict, dict]:
    """(clean values, problems by field). Fields left out of an update are not checked."""
    clean: dict[str, Any] = {}
    problems: dict[str, str] = {}
    checks = {
        "name": model.name_problem,
        "type": model.type_problem,
        "source": check_source,
        "dest": check_dest,
    }
    for field, check in checks.items():
        if field in fields or creating:
            value = fields.get(field)
            problem = check(value)
            if problem:
                problems[field] = problem
            else:
                clean[field] = value
    if "bwlimit" in fields and fields["bwlimit"] is not None:
        bwlimit, problem = model.parse_bwlimit(fields["bwlimit"])
        if problem:
            problems["bwlimit"] = problem
        else:
            clean["bwlimit"] = bwlimit
    elif creating:
        clean["bwlimit"] = default_bwlimit
    if "excludes" in fields and fields["excludes"] is not None:
        problem = model.excludes_problem(fields["excludes"])
        if problem:
            problems["excludes"] = problem
        else:
            clean["excludes"] = list(fields["excludes"])
    elif creating:
        clean["excludes"] = []
    return clean, problems
