"""Turning data into text for people: tables, sizes, durations, safe strings."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

ELLIPSIS = "…"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def safe(text: object) -> str:
    """Control characters (escape sequences included) shown as visible escapes, never raw."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1] if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def cut(text: str, width: int) -> str:
    """At most ``width`` characters; anything cut is shown as a trailing ``…``."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def human_bytes(count: int | float | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def parse_time(stamp: str) -> float:
    """Seconds since the epoch of a ``YYYY-MM-DDTHH:MM:SSZ`` stamp.

    Arithmetic instead of time.strptime, whose import (locale, calendar, re) costs more
    start-up time than the rest of ``bkm job show``.
    """
    if len(stamp) != 20 or stamp[4] != "-" or stamp[10] != "T" or stamp[19] != "Z":
        raise ValueError(stamp)
    year, month, day = int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10])
    hour, minute, second = int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])
    # Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def ago(stamp: str | None, now: float | None = None) -> str:
    if not stamp:
        return "-"
    try:
        then = parse_time(stamp)
    except ValueError:
        return stamp
    delta = (time.time() if now is None else now) - then
    if delta < 1:
        return "just now"
    return f"{human_duration(delta)} ago"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    from tabulate import tabulate

    return tabulate(list(rows), headers=list(headers), tablefmt="plain", disable_numparse=True)


def fields(pairs: Iterable[tuple[str, object]]) -> str:
    pairs = list(pairs)
    width = max(len(label) for label, _ in pairs) + 1
    return "\n".join(f"{label + ':':<{width}} {safe(value)}" for label, value in pairs)


def bar(percent: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(percent, 100.0)) / 100 * width))
    return "#" * filled + "-" * (width - filled)


def progress_line(event: dict) -> str:
    """One line for a live view: name, status, bar, percent, bytes, speed, ETA."""
    total = event.get("total_bytes") or 0
    done = human_bytes(event.get("bytes_transferred") or 0) + (f"/{human_bytes(total)}" if total else "")
    speed = event.get("speed_bytes") or 0
    parts = [
        safe(event.get("name", "")),
        event.get("status", ""),
        f"[{bar(event.get('percent') or 0.0)}]",
        f"{event.get('percent') or 0.0:5.1f}%",
        done,
    ]
    if speed:
        parts.append(f"{human_bytes(speed)}/s")
    if event.get("eta_seconds") is not None and event.get("status") == "running":
        parts.append(f"ETA {human_duration(event['eta_seconds'])}")
    return "  ".join(parts)
