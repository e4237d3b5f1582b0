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


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes: wide characters (CJK, most emoji) two, combining
    marks and zero-width joiners none (what wcwidth says, from the Unicode tables Python has)."""
    if text.isascii():
        return len(text)
    import unicodedata

    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\ufe0f":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def cut(text: str, width: int) -> str:
    """At most ``width`` terminal cells; anything cut is shown as a trailing ``…``."""
    if cells(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        size = cells(ch)
        if used + size > width - 1:
            break
        kept.append(ch)
        used += size
    return "".join(kept) + ELLIPSIS


def pad(text: str, width: int) -> str:
    """``text`` filled with spaces to ``width`` terminal cells."""
    return text + " " * max(width - cells(text), 0)


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
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(stamp)
    # Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def _stamped(stamp: str | None, show) -> str:
    """``show(seconds)`` for a stamp; "-" for none, the text itself when it is no stamp."""
    if not stamp:
        return "-"
    try:
        return show(parse_time(stamp))
    except ValueError:
        return stamp


def ago(stamp: str | None, now: float | None = None) -> str:
    def show(then: float) -> str:
        delta = (time.time() if now is None else now) - then
        return "just now" if delta < 1 else f"{human_duration(delta)} ago"

    return _stamped(stamp, show)


def until(stamp: str | None, now: float | None = None) -> str:
    """How long until a time: "in 3h12m", "due now"."""

    def show(then: float) -> str:
        delta = then - (time.time() if now is None else now)
        return "due now" if delta < 1 else f"in {human_duration(delta)}"

    return _stamped(stamp, show)


def local_stamp(stamp: str | None) -> str:
    """A UTC time of the JSON as a local one with its offset (TZ honoured):
    "2026-11-29 13:20:02 +09:00"."""

    def show(then: float) -> str:
        local = time.localtime(then)
        offset = time.strftime("%z", local)
        return time.strftime("%Y-%m-%d %H:%M:%S ", local) + offset[:3] + ":" + offset[3:]

    return _stamped(stamp, show)


def local_time(stamp: str | None) -> str:
    """A UTC time of the JSON in the local zone (TZ honoured): "2026-11-30 02:30 CET"."""
    return _stamped(stamp, lambda then: time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(then)))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    width: int | None = None,
    shrink: Sequence[int] = (),
) -> str:
    """Columns left-aligned, two spaces apart, each at least its header and two more wide
    (tabulate's "plain" format, which this replaces: its guessing of each cell's type took
    0.9 s of a 10,000-job `bkm job list`), measured in terminal cells. Cells are stripped;
    None is empty. With ``width``, the columns named in ``shrink`` (indexes) give way, widest
    first and cut with "…", until the table fits (a line that would wrap is no table)."""
    texts = [["" if cell is None else str(cell).strip() for cell in row] for row in rows]
    names = [str(header) for header in headers]
    widths = [len(name) + 2 for name in names]
    for row in texts:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cells(cell))
    if width is not None and shrink:
        floor = {i: max(len(names[i]), 6) for i in shrink}
        if sum(widths) + 2 * (len(widths) - 1) > width:  # first the headers' spare room goes
            widths = [
                max([len(names[i]), *(cells(row[i]) for row in texts if i < len(row))]) for i in range(len(widths))
            ]
        while sum(widths) + 2 * (len(widths) - 1) > width:
            widest = max(shrink, key=lambda i: widths[i] - floor[i])
            if widths[widest] <= floor[widest]:
                break  # as narrow as they go: the rest wraps
            widths[widest] -= 1
        texts = [[cut(cell, widths[i]) if i in floor else cell for i, cell in enumerate(row)] for row in texts]
    lines = [names, *texts]  # a short row ends early: its last columns are empty
    return "\n".join("  ".join(pad(c, w) for c, w in zip(line, widths, strict=False)).rstrip() for line in lines)


def fields(pairs: Iterable[tuple[str, object]]) -> str:
    pairs = list(pairs)
    width = max(len(label) for label, _ in pairs) + 1
    return "\n".join(f"{label + ':':<{width}} {safe(value)}" for label, value in pairs)


def terminal_width(stream, fallback: int = 80) -> int:
    """The terminal's width now, from the terminal itself: an exported COLUMNS goes stale when
    the window is resized, so it is only the fallback here (unlike shutil.get_terminal_size)."""
    import os
    import shutil

    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns > 0 else shutil.get_terminal_size((fallback, 24)).columns


def output_width() -> int | None:
    """How wide a table on standard output may be: the terminal's width; else COLUMNS when
    set (a script that asked for a width); else no limit (a pipe gets the whole values)."""
    import os
    import sys

    if is_terminal(sys.stdout):
        return terminal_width(sys.stdout)
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def bar(percent: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(percent, 100.0)) / 100 * width))
    return "#" * filled + "-" * (width - filled)


SCANNING = "scanning"


def scanning(event: dict) -> bool:
    """Whether a running job's total is not known yet (rsync still lists the tree): then the
    bar's frame says "scanning", with no percent or ETA, only what moved so far. An event
    without ``total_known`` (from an older bkmd) had a known total."""
    return event.get("status") == "running" and event.get("total_known") is False


def up_to_date(event: dict) -> str | None:
    """For a completed run that sent nothing (the nightly case): "up to date, 34.3 MiB checked"."""
    if event.get("status") != "completed" or event.get("bytes_transferred"):
        return None
    total = event.get("total_bytes") or 0
    return f"up to date, {human_bytes(total)} checked" if total else "up to date"


def percent_text(percent: float | None) -> str:
    """100% when done, else one decimal: the same for every status."""
    percent = percent or 0.0
    return "100%" if percent >= 100 else f"{percent:.1f}%"


def _figures(event: dict) -> tuple[str, str, str]:
    """An event's bytes ("moved/total", or "moved so far" while scanning), speed and ETA (only
    while running) as text; "" if none."""
    total = event.get("total_bytes") or 0
    moved = human_bytes(event.get("bytes_transferred") or 0)
    if up_to_date(event):
        return up_to_date(event), "", ""
    if scanning(event):
        moved += " so far"
    elif total:
        moved += f"/{human_bytes(total)}"
    running = event.get("status") == "running"
    if running and event.get("idle_seconds"):
        # Say so, rather than a speed decaying towards 1 B/s and an ETA of years.
        return moved, f"no progress for {human_duration(event['idle_seconds'])}", ""
    if event.get("status") == "queued" and event.get("waiting"):
        return moved, safe(event["waiting"]), ""
    # Speed belongs to a run in progress: once it is over, the last one would read as current.
    speed = f"{human_bytes(event['speed_bytes'])}/s" if event.get("speed_bytes") and running else ""
    eta = ""
    if running and event.get("eta_seconds") is not None and not scanning(event):
        eta = f"ETA {human_duration(event['eta_seconds'])}"
    return moved, speed, eta


def progress_line(event: dict) -> str:
    """One line for a live view: name, status, bar, percent, bytes, speed, ETA; while the total
    is not known, "scanning" in the bar's frame, no percent and no ETA."""
    moved, speed, eta = _figures(event)
    percent = event.get("percent") or 0.0
    parts = [safe(event.get("name", "")), event.get("status", "")]
    parts += [f"[{SCANNING:<20}]"] if scanning(event) else [f"[{bar(percent)}]", f"{percent_text(percent):>6}"]
    return "  ".join(parts + [moved] + [text for text in (speed, eta) if text])


STATUS_COLOURS = {
    "running": "36",  # cyan
    "queued": "33",  # yellow
    "paused": "35",  # magenta
    "completed": "32",  # green
    "failed": "31;1",  # bold red
    "interrupted": "31",  # red
}


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: stdout) is a terminal; False for a closed or odd stream."""
    if stream is None:
        import sys

        stream = sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def colours_wanted(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    import os

    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def paint(text: str, code: str | None, enabled: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code else text


def status_text(status: str, enabled: bool) -> str:
    return paint(status, STATUS_COLOURS.get(status), enabled)


TAIL_WIDTHS = (1 + 6 + 2 + 19 + 2 + 12 + 2 + 10, 1 + 6 + 2 + 19, 1 + 6)  # the three tails of row()


def row(event: dict, width: int, colour: bool) -> str:
    """One job of the live view in at most ``width - 1`` columns (the last one would wrap):
    speed and ETA give way first, then the bar. While the total is not known the bar's frame
    says "scanning" and the percent's column is blank (too narrow for that: "scanning" takes
    the percent's place), so the columns stay aligned with the other rows."""
    status = event.get("status", "")
    percent = event.get("percent") or 0.0
    moved, speed, eta = _figures(event)
    # A finished run's last speed would read as current; a queued job's reason stays.
    speed = speed if status in ("running", "queued") else ""
    name_width = max(8, min(24, width // 4))
    fixed = name_width + 1 + 12 + 1  # name, status

    def tails(figure: str) -> tuple[str, str, str]:
        return f" {figure}  {moved:>19}  {speed:>12}  {eta:>10}", f" {figure}  {moved}", f" {figure}"

    figure = f"{percent_text(percent):>6}"
    # The bar's width comes from the columns' own widths, not from this row's texts: every row
    # of one drawing gets the same bar, and a long text (a queued job's reason) is cut at the end.
    space = width - 1 - fixed - 2
    variant = next((i for i, room in enumerate(TAIL_WIDTHS) if space - room >= 10), len(TAIL_WIDTHS) - 1)
    bar_width = space - TAIL_WIDTHS[variant]
    bar_text = f"[{bar(percent, bar_width)}]" if bar_width >= 3 else ""
    if scanning(event):
        if bar_width >= len(SCANNING):
            bar_text, figure = f"[{SCANNING:<{bar_width}}]", " " * len(figure)
        else:
            bar_text, figure = "", SCANNING
    tail = tails(figure)[variant]
    name = pad(cut(safe(event.get("name", "")), name_width), name_width)
    line = f"{name} {status:<12} {bar_text}{tail}"
    visible = cut(line, max(width - 1, 1))
    # Colour the status only once the line fits, so cutting never splits an escape sequence.
    return visible.replace(f" {status:<12} ", f" {paint(f'{status:<12}', STATUS_COLOURS.get(status), colour)} ", 1)
