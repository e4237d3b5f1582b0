"""Statuses and the job field rules that need no filesystem (both programs use them)."""

from __future__ import annotations

PENDING = "pending"
QUEUED = "queued"
RUNNING = "running"
PAUSED = "paused"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"

STATUSES = (PENDING, QUEUED, RUNNING, PAUSED, COMPLETED, FAILED, INTERRUPTED)
# A job in one of these has (or is about to have) a transfer process.
ACTIVE = frozenset({QUEUED, RUNNING})
# What live views (watch, the dashboard, subscriptions) show, in the order they show it.
SHOWN = (RUNNING, QUEUED, PAUSED)

# What each request may be made from (the contract's status diagram). Other status changes
# (queued -> running, running -> completed/failed/paused) follow from a run, not a request.
ALLOWED_FROM = {
    "start": frozenset({PENDING, PAUSED, FAILED, COMPLETED, INTERRUPTED}),
    "pause": frozenset({RUNNING, QUEUED}),
    "edit": frozenset(STATUSES) - ACTIVE,
    "delete": frozenset(STATUSES) - ACTIVE,
    "recover": frozenset({INTERRUPTED}),
    "dismiss": frozenset({INTERRUPTED}),
}
# A start from one of these continues the earlier run instead of beginning afresh.
RESUMES_FROM = frozenset({PAUSED, INTERRUPTED})


def allowed(action: str, status: str) -> bool:
    return status in ALLOWED_FROM[action]


JOB_TYPES = ("rsync", "rclone")
NAME_MAX = 128
PATH_MAX = 4096
EXCLUDES_MAX = 1000
BWLIMIT_MAX = 2**31 - 1


def brief(value: object, limit: int = 60) -> str:
    """repr() cut short, so an error message never echoes a megabyte of input back."""
    try:
        text = repr(value)
    except RecursionError:
        return "<too deeply nested>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _control_chars(text: str) -> list[str]:
    # C0, DEL, C1 and the Unicode line/paragraph separators all break a one-line display.
    return [c for c in text if c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029"]


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def name_problem(name: object) -> str | None:
    if name is None or name == "":
        return "is required"
    if not isinstance(name, str):
        return "must be a string"
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters (got {len(name)})"
    if "/" in name:
        return "must not contain '/'"
    if _control_chars(name):
        return "must not contain control characters"
    if name.startswith("-"):
        return "must not start with '-'"
    if _not_utf8(name):
        return "must be valid UTF-8"
    return None


def type_problem(job_type: object) -> str | None:
    if job_type is None or job_type == "":
        return "is required"
    if job_type not in JOB_TYPES:
        return f"must be one of {', '.join(JOB_TYPES)} (got {brief(job_type)})"
    return None


def is_remote(path: str) -> bool:
    """True for rsync/rclone remote syntax: a colon before the first slash (host:path, remote:)."""
    head, colon, _ = path.partition(":")
    return bool(colon) and "/" not in head


def path_problem(path: object) -> str | None:
    """Syntax only; whether a local path exists is the daemon's business."""
    if path is None or path == "":
        return "is required"
    if not isinstance(path, str):
        return "must be a string"
    if path.startswith("-"):
        return "must not start with '-' (it would be read as an option)"
    if "\x00" in path:
        return "must not contain a NUL byte"
    if len(path) > PATH_MAX:
        return f"must be at most {PATH_MAX} characters"
    if _not_utf8(path):
        return "must be valid UTF-8"
    if not is_remote(path) and not path.startswith("/"):
        return "must be an absolute local path or a remote (host:path, remote:path)"
    return None


def parse_bwlimit(value: object) -> tuple[int | None, str | None]:
    """A whole number of KiB/s, 0 for unlimited; accepts an int or a string of digits."""
    if isinstance(value, bool):
        return None, "must be a whole number of KiB/s (0 = unlimited)"
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isdigit() and digits.isascii():
            value = int(text)
    if not isinstance(value, int):
        return None, f"must be a whole number of KiB/s, 0 = unlimited (got {brief(value)})"
    if value < 0:
        return None, f"must be 0 (unlimited) or more KiB/s (got {value})"
    if value > BWLIMIT_MAX:
        return None, f"must be at most {BWLIMIT_MAX} KiB/s"
    return value, None


def excludes_problem(excludes: object) -> str | None:
    if not isinstance(excludes, list):
        return "must be a list of patterns"
    if len(excludes) > EXCLUDES_MAX:
        return f"must have at most {EXCLUDES_MAX} patterns"
    for pattern in excludes:
        if not isinstance(pattern, str) or pattern == "":
            return "each pattern must be a non-empty string"
        if "\x00" in pattern or "\n" in pattern or "\r" in pattern:
            return f"pattern {brief(pattern)} must not contain NUL or line breaks"
        if len(pattern) > PATH_MAX:
            return f"each pattern must be at most {PATH_MAX} characters"
        if _not_utf8(pattern):
            return "each pattern must be valid UTF-8"
    return None
