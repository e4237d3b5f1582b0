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


# What only the filesystem can tell, beyond each field's rule in bkm.model.JOB_FIELDS.
_ON_DISK = {"source": _readable, "dest": _writable}


def check_fields(fields: dict[str, Any], creating: bool, settings) -> tuple[dict, dict]:
    """(clean values, problems by field) for the fields of bkm.model.JOB_FIELDS. Creating, every
    field is checked and defaults fill the ones not given; updating, only those given."""
    clean: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in model.JOB_FIELDS:
        value = fields.get(field.name)
        if value is None and not (creating and field.required):
            if creating:
                default = settings[field.default_setting] if field.default_setting else field.default
                clean[field.name] = list(default) if isinstance(default, tuple) else default
            continue
        parsed, problem = field.parse(value)
        if problem is None and field.name in _ON_DISK and not model.is_remote(parsed):
            problem = _ON_DISK[field.name](parsed)
        if problem:
            problems[field.name] = problem
        else:
            clean[field.name] = parsed
    return clean, problems
