"""Snapshot names and which snapshots retention keeps: pure functions, clock and zone given.

A snapshot is a folder `DEST/YYYY-MM-DDTHHMMSSZ/` named by its run's start in UTC (sortable,
and the same on every machine); `….partial` until the run completes. The `--keep-*` rules
combine as restic's `forget` does: going from the newest snapshot to the oldest, each rule
keeps the newest snapshot of each of its last N periods (hours, days, ISO weeks, months, in
the time zone of the setting `timezone`) that have one; a snapshot kept by any rule stays;
with no rule, all stay; the newest always stays.
"""

from __future__ import annotations

import datetime as dt
import re

NAME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d)(\d\d)(\d\d)Z$")
PARTIAL_SUFFIX = ".partial"
LATEST = "latest"
RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")


def name_for(when: float) -> str:
    """The folder name of a snapshot started at ``when`` (seconds since the epoch)."""
    return dt.datetime.fromtimestamp(int(when), dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")


def next_name(when: float, names) -> str:
    """The name of a snapshot started at ``when``, later than every one of ``names``: two runs
    within one second (a quick no-op run) still get folders of their own."""
    newest = max((t for t in map(parse_name, names) if t is not None), default=None)
    if newest is not None and when < newest.timestamp() + 1:
        when = newest.timestamp() + 1
    return name_for(when)


def parse_name(name: str) -> dt.datetime | None:
    """The UTC time a snapshot folder's name gives, or None: not a snapshot's name."""
    match = NAME.match(name)
    if not match:
        return None
    try:
        return dt.datetime(*map(int, match.groups()), tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def is_partial(name: str) -> bool:
    return name.endswith(PARTIAL_SUFFIX) and parse_name(name[: -len(PARTIAL_SUFFIX)]) is not None


def completed(names: list[str]) -> list[str]:
    """The complete snapshots among folder names, newest first."""
    return sorted((n for n in names if parse_name(n) is not None), reverse=True)


def _buckets(zone) -> dict:
    def local(t: dt.datetime) -> dt.datetime:
        return t.astimezone(zone) if zone is not None else t

    return {
        "keep_last": lambda t: t,  # every snapshot is its own period
        "keep_hourly": lambda t: local(t).strftime("%Y-%m-%d %H"),
        "keep_daily": lambda t: local(t).strftime("%Y-%m-%d"),
        "keep_weekly": lambda t: tuple(local(t).isocalendar()[:2]),
        "keep_monthly": lambda t: local(t).strftime("%Y-%m"),
    }


def keep(names: list[str], rules: dict, zone=None) -> tuple[list[str], list[str]]:
    """(kept, removed) among the complete snapshot ``names``, each newest first."""
    snapshots = completed(names)
    counts = {rule: int(rules.get(rule) or 0) for rule in RULES}
    if not any(counts.values()):
        return snapshots, []
    buckets = _buckets(zone)
    last: dict[str, object] = {}
    kept = []
    for i, name in enumerate(snapshots):
        when = parse_name(name)
        keep_it = i == 0  # the newest always stays
        for rule, left in counts.items():
            if left <= 0:
                continue
            bucket = buckets[rule](when)
            if last.get(rule) != bucket:
                last[rule] = bucket
                counts[rule] = left - 1
                keep_it = True
        if keep_it:
            kept.append(name)
    # restic: while a rule of periods (hourly ... monthly) has count left, there were fewer
    # periods than it asks to keep, and the oldest snapshot is kept as well.
    if snapshots and snapshots[-1] not in kept and any(counts[r] > 0 for r in RULES if r != "keep_last"):
        kept.append(snapshots[-1])
    return kept, [n for n in snapshots if n not in kept]
