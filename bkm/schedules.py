"""Schedule expressions and durations: what they mean and when they next fall due.

Pure, and imported only by what needs it (bkmd, and the model's check of a schedule): cron
expressions are evaluated by cronsim, which gives the contract's daylight-saving behaviour (a
time in the skipped hour runs once, at the jump; one in the repeated hour runs once), where
croniter runs the repeated hour twice (shared design notes). Times are UTC epoch seconds; the
zone only says which wall clock a cron expression reads.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NAMED = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_MAX = 10 * 366 * 86400  # ten years: more is a typing error
FORM = (
    "5-field cron (minute hour day month weekday, e.g. '30 2 * * *'),"
    " @hourly, @daily, @weekly, @monthly or '@every DURATION'"
)


def duration(text: object) -> int:
    """Seconds from a whole number with a unit (90s, 15m, 26h, 7d); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("must be a whole number with a unit: s, m, h or d (e.g. 90s, 15m, 26h, 7d)")
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in UNITS or not number.isdigit() or not number.isascii():
        raise ValueError(f"must be a whole number with a unit: s, m, h or d (e.g. 90s, 15m, 26h, 7d), not {text!r}")
    seconds = int(number) * UNITS[unit]
    if seconds > DURATION_MAX:
        raise ValueError("must be at most ten years")
    return seconds


def human_duration(seconds: int) -> str:
    """The shortest exact form: 90 -> 90s, 3600 -> 1h, 93600 -> 26h."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


class Schedule:
    """A parsed schedule: ``every`` seconds, or a 5-field ``cron`` expression."""

    __slots__ = ("text", "every", "cron")

    def __init__(self, text: str, every: int | None, cron: str | None) -> None:
        self.text, self.every, self.cron = text, every, cron

    def next_after(self, after: float, zone: datetime.tzinfo) -> float:
        """The first due time strictly after ``after`` (an @every schedule counts from it)."""
        if self.every is not None:
            return after + self.every
        from cronsim import CronSim

        start = datetime.datetime.fromtimestamp(after, datetime.timezone.utc).astimezone(zone)
        times = CronSim(self.cron, start)
        # In a repeated hour (fall back) cronsim may name the first of the two occurrences,
        # which is already past: the run was made then, so it is skipped, never run twice.
        for _ in range(4):
            due = next(times).timestamp()
            if due > after:
                return due
        raise ValueError(f"no due time after {start.isoformat()}")  # not reached for a valid expression


def parse(text: object) -> Schedule:
    """A Schedule from a person's text; ValueError saying what is wrong and the accepted forms."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"must be a {FORM}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Schedule:
    """Cached: the scheduler asks again for every job at every check."""
    spec = " ".join(text.split())
    if len(spec) > 200:
        raise ValueError("must be at most 200 characters")
    lowered = spec.lower()
    if lowered.startswith("@every"):
        rest = spec[len("@every") :].strip()
        if not rest:
            raise ValueError("@every needs a duration, e.g. '@every 6h'")
        try:
            every = duration(rest)
        except ValueError as e:
            raise ValueError(f"@every {e}") from None
        if every < 1:
            raise ValueError("@every needs at least 1s")
        return Schedule(f"@every {rest.lower()}", every, None)
    if spec.startswith("@"):
        if lowered not in NAMED:
            raise ValueError(f"unknown name {spec!r}; use one of {', '.join(NAMED)} or '@every DURATION'")
        return Schedule(lowered, None, NAMED[lowered])
    fields = spec.split(" ")
    if len(fields) != 5:
        raise ValueError(f"has {len(fields)} fields; cron needs 5 (minute hour day month weekday), e.g. '30 2 * * *'")
    from cronsim import CronSim, CronSimError

    try:
        CronSim(spec, datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    except (CronSimError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"is not a valid cron expression ({e or 'bad field'}): {spec!r}") from None
    return Schedule(spec, None, spec)


def zone(name: str) -> datetime.tzinfo:
    """The zone a setting names; "" is the machine's own (TZ, then /etc/localtime), UTC when
    neither can be read. A fixed UTC offset would be wrong half the year: it must be a zone."""
    if name:
        return ZoneInfo(name)
    configured = os.environ.get("TZ", "").lstrip(":")
    if configured:
        try:
            return ZoneInfo(configured)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            return ZoneInfo(target.split("/zoneinfo/", 1)[1])
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return datetime.timezone.utc


def zone_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be an IANA zone name such as Europe/Berlin, or empty for the machine's"
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"is not a known time zone: {name!r} (an IANA name such as Europe/Berlin, or empty for the machine's)"
    return None


def time_text(seconds: float) -> str:
    """UTC, as every time in JSON: 2026-11-29T02:30:00Z. Whole seconds, rounded up: a due
    time written down is never earlier than the one meant (a retry never comes early)."""
    return datetime.datetime.fromtimestamp(math.ceil(seconds), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Epoch seconds of a stored UTC time; ValueError for anything else (one parser for the
    whole project: the client's, which costs no import)."""
    from bkm.render import parse_time as parse

    if not isinstance(text, str):
        raise ValueError(text)
    return float(parse(text))
