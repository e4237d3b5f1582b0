"""Statuses and the job field rules that need no filesystem (both programs use them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

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

# A start is allowed from these (a completed backup runs again: backups recur).
STARTABLE = frozenset({PENDING, PAUSED, FAILED, COMPLETED, INTERRUPTED})
# A start from one of these continues the earlier run instead of beginning afresh.
RESUMES_FROM = frozenset({PAUSED, INTERRUPTED})

# What started a run (its record's "trigger").
MANUAL, SCHEDULE, CATCH_UP, RETRY = "manual", "schedule", "catch-up", "retry"
# Runs that are not backups: they copy back, or compare, and never count as a success.
RESTORE, VERIFY = "restore", "verify"

# Every status change bkmd makes, by its cause: the statuses it may come from and those it
# may lead to (the contract's status diagram). bkmd's Jobs.set_status is the only place a
# status changes and refuses anything not in this table; undoing a change that could not be
# saved is the reverse of one of these.
TRANSITIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "start": (STARTABLE, frozenset({RUNNING, QUEUED})),
    "dequeue": (frozenset({QUEUED}), frozenset({RUNNING})),
    "pause": (frozenset({QUEUED}), frozenset({PAUSED})),  # a running job pauses when its run ends
    "run ended": (frozenset({RUNNING}), frozenset({COMPLETED, FAILED, PAUSED})),
    # A run that failed for a transient reason waits in the queue for its retry.
    "retry later": (frozenset({RUNNING}), frozenset({QUEUED})),
    "found running": (frozenset({RUNNING}), frozenset({INTERRUPTED})),  # a run of an earlier bkmd
    "recover": (frozenset({INTERRUPTED}), frozenset({PAUSED})),
    "dismiss": (frozenset({INTERRUPTED}), frozenset({FAILED})),
}


def may_change(cause: str, before: str, after: str) -> bool:
    """Whether ``cause`` may turn ``before`` into ``after``; cause "undo" reverses any change."""
    if cause == "undo":
        return any(after in sources and before in targets for sources, targets in TRANSITIONS.values())
    sources, targets = TRANSITIONS.get(cause, ((), ()))
    return before in sources and after in targets


# What each request may be made from. Edit and delete change no status.
ALLOWED_FROM = {
    "start": STARTABLE,
    "pause": ACTIVE,
    "edit": frozenset(STATUSES) - ACTIVE,
    "delete": frozenset(STATUSES) - ACTIVE,
    "recover": TRANSITIONS["recover"][0],
    "dismiss": TRANSITIONS["dismiss"][0],
}


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
    if not name.strip():
        return "must not be blank"
    if name != name.strip():
        return "must not start or end with a space"
    if looks_like_id(name):
        return "must not look like a job id (32 hexadecimal digits)"
    if _not_utf8(name):
        return "must be valid UTF-8"
    return None


def looks_like_id(text: str) -> bool:
    """Job ids are 32 lowercase hex digits; a name of that shape would hide a job's id."""
    return len(text) == 32 and all(c in "0123456789abcdefABCDEF" for c in text)


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


def _checked(problem: Callable[[object], str | None]) -> Callable[[object], tuple[object, str | None]]:
    return lambda value: (value, problem(value))


def _parse_excludes(value: object) -> tuple[object, str | None]:
    problem = excludes_problem(value)
    return (None, problem) if problem else (list(value), None)  # type: ignore[arg-type]


class Field:
    """One job field a person sets: its JSON name and type, its rule, whether `job edit` may
    change it and its default. Every field is declared here once; the daemon's job record,
    validation, the store's checks and the RPC parameters all follow this table.
    (A plain class: the client imports this module and dataclasses cost start-up time.)"""

    __slots__ = ("name", "kind", "parse", "editable", "default", "default_setting", "nullable")

    def __init__(
        self,
        name: str,
        kind: type,
        parse: Callable[[object], tuple[object, str | None]],
        editable: bool = True,
        default: object = None,
        default_setting: str | None = None,
        nullable: bool = False,
    ) -> None:
        self.name, self.kind, self.parse, self.editable = name, kind, parse, editable
        self.default, self.default_setting = default, default_setting
        # None is a value of its own (no schedule); `job edit` sets it to remove one.
        self.nullable = nullable

    @property
    def required(self) -> bool:
        return self.default is None and self.default_setting is None and not self.nullable

    def default_value(self, settings) -> object:
        """What the field is when it is not given: its setting's value, or its own default."""
        return fresh(settings[self.default_setting] if self.default_setting else self.default)


RETRIES_MAX = 10
RETRY_WAIT_MAX = 3600  # the waits double up to an hour: a first wait longer than that never happens


def _parse_schedule(value: object) -> tuple[object, str | None]:
    from bkm import schedules

    try:
        return schedules.parse(value).text, None
    except ValueError as e:
        return None, str(e)


def parse_retries(value: object) -> tuple[int | None, str | None]:
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RETRIES_MAX:
        return None, f"must be a whole number from 0 to {RETRIES_MAX} (got {brief(value)})"
    return value, None


def parse_wait(value: object) -> tuple[int | None, str | None]:
    """Seconds: a whole number (JSON) or a duration with a unit (90s, 15m)."""
    if isinstance(value, str):
        from bkm import schedules

        try:
            value = schedules.duration(value)
        except ValueError as e:
            return None, str(e)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= RETRY_WAIT_MAX:
        return None, f"must be from 1s to 1h (got {brief(value)})"
    return value, None


HOOK_KINDS = ("before", "after", "on_success", "on_failure")
HOOKS_MAX = 20  # commands of one kind
URLS_MAX = 20
URL_MAX = 2048


def no_hooks() -> dict:
    return {kind: [] for kind in HOOK_KINDS}


def parse_hooks(value: object) -> tuple[dict | None, str | None]:
    """{"before": [CMD, ...], "after": [...], "on_success": [...], "on_failure": [...]}; a kind
    left out has no commands. A command is one line of /bin/sh."""
    if not isinstance(value, dict):
        return None, f"must be a mapping of {', '.join(HOOK_KINDS)} to lists of commands"
    unknown = [k for k in value if k not in HOOK_KINDS]
    if unknown:
        return None, f"unknown hook {brief(unknown[0])}; hooks are {', '.join(HOOK_KINDS)}"
    hooks = no_hooks()
    for kind, commands in value.items():
        if not isinstance(commands, list) or len(commands) > HOOKS_MAX:
            return None, f"{kind} must be a list of at most {HOOKS_MAX} commands"
        for command in commands:
            if not isinstance(command, str) or not command.strip():
                return None, f"each {kind} command must be a non-empty string"
            if "\x00" in command or len(command) > PATH_MAX or _not_utf8(command):
                return None, f"{kind} command {brief(command)}: valid UTF-8 without NUL, at most {PATH_MAX} bytes"
        hooks[kind] = list(commands)
    return hooks, None


def _url_problem(url: object, http_only: bool) -> str | None:
    """What is wrong with a URL; it is quoted masked (it may hold a password or a token)."""
    if not isinstance(url, str) or not url:
        return "must be a URL"
    from bkm.masking import mask_url

    shown = brief(mask_url(url))
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not rest or not scheme.replace("+", "").isalnum():
        example = "https://hc-ping.com/UUID" if http_only else "ntfy://host/topic"
        return f"must be a URL such as {example} (got {shown})"
    if http_only and scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL (got {shown})"
    if len(url) > URL_MAX or any(c.isspace() for c in url) or _control_chars(url) or _not_utf8(url):
        return f"must be one line of at most {URL_MAX} characters without spaces"
    return None


def parse_healthcheck(value: object) -> tuple[str | None, str | None]:
    problem = _url_problem(value, http_only=True)
    return (None, problem) if problem else (value.rstrip("/"), None)  # type: ignore[union-attr]


def parse_notify(value: object) -> tuple[list | None, str | None]:
    if not isinstance(value, list) or len(value) > URLS_MAX:
        return None, f"must be a list of at most {URLS_MAX} Apprise URLs"
    for url in value:
        problem = _url_problem(url, http_only=False)
        if problem:
            return None, problem
    return list(value), None


def parse_max_age(value: object) -> tuple[int | None, str | None]:
    """Seconds (a whole number, or a duration such as 26h); 0 means never stale (None)."""
    if isinstance(value, str):
        if value.strip() == "0":
            return None, None
        from bkm import schedules

        try:
            value = schedules.duration(value)
        except ValueError as e:
            return None, str(e)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None, f"must be a duration such as 26h or 7d, 0 for never (got {brief(value)})"
    return value or None, None


TOOL_ARGS_MAX = 100


def parse_tool_args(value: object) -> tuple[list | None, str | None]:
    """Extra arguments for this job's tool, placed after the settings' rsync_args/rclone_args
    and before "--" (so never read as a path); they run as the job's owner, like the tool."""
    if not isinstance(value, list) or len(value) > TOOL_ARGS_MAX:
        return None, f"must be a list of at most {TOOL_ARGS_MAX} arguments"
    for arg in value:
        if not isinstance(arg, str) or not arg or "\x00" in arg or _not_utf8(arg) or len(arg) > PATH_MAX:
            return None, f"each argument must be a non-empty string without NUL (got {brief(arg)})"
        if arg == "--":
            return None, '"--" would end the options early: bkm puts it before the paths itself'
    return list(value), None


MODES = ("copy", "mirror", "snapshot")
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly")
KEEP_MAX = 100000


def parse_mode(value: object) -> tuple[str | None, str | None]:
    if value not in MODES:
        return None, f"must be one of {', '.join(MODES)} (got {brief(value)})"
    return value, None  # type: ignore[return-value]


def parse_keep(value: object) -> tuple[dict | None, str | None]:
    """Snapshot retention, restic's rules: {"last": N, "daily": N, ...}; 0 (or no key) is no
    such rule, and no rule at all keeps every snapshot."""
    if not isinstance(value, dict):
        return None, f"must be a mapping of {', '.join(KEEP_RULES)} to whole numbers"
    keep = {}
    for rule, count in value.items():
        if rule not in KEEP_RULES:
            return None, f"unknown rule {brief(rule)}; rules are {', '.join(KEEP_RULES)}"
        if isinstance(count, str) and count.strip().isdigit() and count.strip().isascii():
            count = int(count.strip())
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= KEEP_MAX:
            return None, f"{rule} must be a whole number from 0 to {KEEP_MAX} (got {brief(count)})"
        if count:
            keep[rule] = count
    return keep, None


def fresh(default: object) -> object:
    """A field's default as a value of its own: a tuple becomes a new list, a function is called."""
    if callable(default):
        return default()
    return list(default) if isinstance(default, tuple) else default


JOB_FIELDS: tuple[Field, ...] = (
    Field("name", str, _checked(name_problem)),
    Field("type", str, _checked(type_problem), editable=False),
    Field("source", str, _checked(path_problem)),
    Field("dest", str, _checked(path_problem)),
    Field("bwlimit", int, parse_bwlimit, default_setting="default_bwlimit"),
    Field("excludes", list, _parse_excludes, default=()),
    Field("schedule", str, _parse_schedule, nullable=True),
    Field("retries", int, parse_retries, default_setting="retries"),
    Field("retry_wait_seconds", int, parse_wait, default_setting="retry_wait"),
    Field("max_age_seconds", int, parse_max_age, nullable=True),
    Field("hooks", dict, parse_hooks, default=no_hooks),
    Field("healthcheck", str, parse_healthcheck, nullable=True),
    Field("notify", list, parse_notify, default=()),
    Field("tool_args", list, parse_tool_args, default=()),
    Field("mode", str, parse_mode, default="copy"),
    Field("keep", dict, parse_keep, default=dict),
)
NULLABLE = frozenset(f.name for f in JOB_FIELDS if f.nullable)
FIELD_NAMES = tuple(f.name for f in JOB_FIELDS)
EDITABLE = tuple(f.name for f in JOB_FIELDS if f.editable)
