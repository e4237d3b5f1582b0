"""Turning a tool's samples into the progress a person can trust.

The percent is bytes moved over bytes in scope; within a run it never goes backwards and
never passes 100, and a run that succeeds is 100 (a nightly run that sends little ends at
4 % of the bytes and then completes). The speed is our own
measure (bytes over time, smoothed), the same for every tool; the ETA is null until there is
a rate. A resumed run starts from what earlier runs of the same attempt already moved.
"""

from __future__ import annotations

from bkmd.engines import Sample

SMOOTHING = 0.3  # weight of the newest rate in the moving average


class Tracker:
    """Progress of one run. ``total_covers_tree``: the tool's total is the size of everything
    (rsync), not just what this run has to send (rclone)."""

    def __init__(self, total_covers_tree: bool, base_bytes: int = 0, base_percent: float = 0.0) -> None:
        self.total_covers_tree = total_covers_tree
        self.base_bytes = base_bytes  # moved by the earlier runs this one continues
        self.percent = min(max(base_percent, 0.0), 100.0)
        self.bytes = base_bytes
        self.total: int | None = None
        self.speed: float = 0.0
        self.eta: int | None = None
        self._last: tuple[float, int] | None = None  # (time, bytes) of the previous rate measure

    def apply(self, sample: Sample, now: float) -> None:
        moved = self.base_bytes + sample.bytes
        if sample.total:
            self.total = sample.total if self.total_covers_tree else self.base_bytes + sample.total
        candidates = [self.percent]
        if self.total:
            candidates.append(100.0 * moved / self.total)
        # Not the "checked" fraction: rsync checks small files long before it reaches a big one
        # sorted after them, so 41 of 42 files checked can mean a fifth of the bytes sent.
        self.percent = min(max(candidates), 100.0)
        self._measure(moved, now)
        self.bytes = moved

    def _measure(self, moved: int, now: float) -> None:
        if self._last is None:
            self._last = (now, moved)
        elif now - self._last[0] >= 0.2:
            then, before = self._last
            rate = max(moved - before, 0) / (now - then)
            self.speed = rate if self.speed == 0 else SMOOTHING * rate + (1 - SMOOTHING) * self.speed
            self._last = (now, moved)
        remaining = self.total - moved if self.total else None
        self.eta = int(round(max(remaining, 0) / self.speed)) if self.speed > 0 and remaining is not None else None

    def complete(self, exact_total: int | None = None) -> None:
        """The tool said it succeeded: that is 100 %, whatever the byte counts said."""
        if exact_total is not None:
            self.total = exact_total
        elif not self.total:
            self.total = self.bytes
        self.percent = 100.0
        self.eta = 0

    def as_dict(self) -> dict:
        return {
            "percent": round(self.percent, 1),
            "bytes_transferred": self.bytes,
            "total_bytes": self.total or 0,
            "speed_bytes": int(self.speed),
            "eta_seconds": self.eta,
        }
