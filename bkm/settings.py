"""The settings table of the contract: keys, defaults and what each accepts.

Pure: ``parse(key, value)`` takes a typed JSON value or the string a person typed on the
command line and returns the typed value, or raises ``ValueError`` with the expected form.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bkm.model import brief, parse_bwlimit


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    form: str
    parse: Callable[[Any], Any]
    meaning: str = ""  # what it does, for `settings show`
    unit: str = ""  # "bytes", "seconds" or "KiB/s": how `settings show` writes the value


def _whole(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError
        return value

    return parse


def _bwlimit(value: Any) -> int:
    # The job field's own rule (bkm.model), so a setting and a job accept the same values.
    parsed, problem = parse_bwlimit(value)
    if problem is not None:
        raise ValueError(problem)
    return parsed


def _number(minimum: float, maximum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        if not minimum <= value <= maximum:  # also refuses NaN
            raise ValueError
        return float(value)

    return parse


def _program(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value.startswith("-") or "\x00" in value:
        raise ValueError
    return value


def _arguments(value: Any) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError from None
        else:
            try:
                value = shlex.split(text)
            except ValueError:
                raise ValueError from None
    if not isinstance(value, list) or not all(isinstance(a, str) and "\x00" not in a for a in value):
        raise ValueError
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise ValueError


def _zone(value: Any) -> str:
    from bkm.schedules import zone_problem

    if zone_problem(value):
        raise ValueError
    return value


def _seconds(minimum: int, maximum: int) -> Callable[[Any], int]:
    """A whole number of seconds, or a duration with a unit (90s, 15m, 1h)."""
    whole = _whole(minimum, maximum)

    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip()[-1:].lower() in "smhd" and not value.strip().isdigit():
            from bkm.schedules import duration

            value = duration(value)
        return whole(value)

    return parse


def _urls(value: Any) -> list[str]:
    from bkm.model import parse_notify

    if isinstance(value, str):
        value = _arguments(value)
    parsed, problem = parse_notify(value)
    if problem:
        raise ValueError(problem)
    return parsed


def _listen(value: Any) -> str:
    """HOST:PORT (an IPv6 host in brackets), or "" for off."""
    if not isinstance(value, str):
        raise ValueError
    if value == "":
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in value):
        raise ValueError
    return value


def _bytes(minimum: int) -> Callable[[Any], int]:
    """A whole number of bytes, or a size with a unit (10MiB, 512KiB, 1GiB)."""
    whole = _whole(minimum)
    units = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}

    def parse(value: Any) -> int:
        if isinstance(value, str):
            text = value.strip().lower().replace(" ", "")
            number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
            unit = text[len(number) :]
            if unit:
                if unit not in units or not number.replace(".", "", 1).isdigit():
                    raise ValueError
                value = int(float(number) * units[unit])
        return whole(value)

    return parse


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError
        return value

    return parse


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "max_concurrent_jobs",
            2,
            "a whole number, 1 or more",
            _whole(1, 1000),
            "transfers at once; more wait queued",
        ),
        Setting(
            "default_bwlimit",
            0,
            "KiB/s, a whole number, 0 (unlimited) or more",
            _bwlimit,
            "bandwidth limit of new jobs",
            "KiB/s",
        ),
        Setting("rsync_path", "rsync", "a program name or path", _program, "the rsync program"),
        Setting("rclone_path", "rclone", "a program name or path", _program, "the rclone program"),
        Setting(
            "rsync_args",
            [],
            'a list of arguments, e.g. \'["--checksum"]\' or "--checksum -v"',
            _arguments,
            "extra arguments of every rsync run",
        ),
        Setting(
            "rclone_args",
            [],
            'a list of arguments, e.g. \'["--fast-list"]\' or "--fast-list"',
            _arguments,
            "extra arguments of every rclone run",
        ),
        Setting(
            "progress_interval",
            1.0,
            "seconds, a number from 0.2 to 60",
            _number(0.2, 60.0),
            "at most one progress event this often",
            "seconds",
        ),
        Setting(
            "log_max_bytes",
            10485760,
            "bytes (or 10MiB, 512KiB), 4096 or more",
            _bytes(4096),
            "a job log's size before it is rotated",
            "bytes",
        ),
        Setting("log_backups", 3, "a whole number, 0 or more", _whole(0, 1000), "rotated logs kept per job"),
        Setting(
            "on_interrupted",
            "ask",
            "one of ask, pause, resume",
            _choice("ask", "pause", "resume"),
            "what a starting bkmd does with runs a crash interrupted",
        ),
        Setting("keep_runs", 20, "a whole number, 1 or more", _whole(1, 100000), "runs of history kept per job"),
        Setting(
            "stall_timeout",
            900,
            "seconds (or 15m, 1h), 0 (disabled) or more",
            _seconds(0, 10**7),
            "a run without progress this long fails (0: never)",
            "seconds",
        ),
        Setting("resume_after_stop", True, "true or false", _flag, "resume at start the jobs a stopping bkmd paused"),
        Setting(
            "timezone",
            "",
            "an IANA zone name such as Europe/Berlin, empty for the machine's",
            _zone,
            "the zone of cron schedules (empty: the machine's)",
        ),
        Setting("catch_up", True, "true or false", _flag, "run once a schedule missed while down or asleep"),
        Setting(
            "retries",
            0,
            "a whole number from 0 to 10",
            _whole(0, 10),
            "extra attempts of new jobs after a transient failure",
        ),
        Setting(
            "hook_timeout",
            300,
            "seconds from 1 to 86400, or a duration such as 5m",
            _seconds(1, 86400),
            "a hook running longer is stopped",
            "seconds",
        ),
        Setting(
            "notify_urls",
            [],
            "a list of Apprise URLs, e.g. '[\"ntfy://ntfy.sh/topic\"]'",
            _urls,
            "notification URLs for every job",
        ),
        Setting(
            "notify_on",
            "failure",
            "failure or always",
            _choice("failure", "always"),
            "notify of failures, or of every outcome",
        ),
        Setting(
            "metrics_listen",
            "",
            "HOST:PORT, e.g. 127.0.0.1:9876, or empty for off",
            _listen,
            "where bkmd serves /metrics (empty: nowhere)",
        ),
        Setting(
            "retry_wait",
            60,
            "seconds from 1 to 3600, or a duration such as 90s or 5m",
            _seconds(1, 3600),
            "wait before the first retry of new jobs, then doubled",
            "seconds",
        ),
    )
}

DEFAULTS: dict[str, Any] = {key: s.default for key, s in SETTINGS.items()}


class UnknownSetting(KeyError):
    pass


def unknown_message(key: object) -> str:
    return f"unknown setting {brief(key)}; valid keys: {', '.join(SETTINGS)}"


def parse(key: str, value: Any) -> Any:
    """The typed value, or ValueError naming the expected form; UnknownSetting for a bad key."""
    setting = SETTINGS.get(key) if isinstance(key, str) else None
    if setting is None:
        raise UnknownSetting(key)
    try:
        return setting.parse(value)
    except ValueError as e:
        if key == "notify_urls":  # the values may hold secrets: the URL rule's own words, masked
            raise ValueError(str(e) or f"must be {setting.form}") from None
        raise ValueError(f"must be {setting.form} (got {brief(value)})") from None
