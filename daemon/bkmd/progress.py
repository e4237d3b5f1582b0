"""Turning a tool's samples into the progress a person can trust.

The percent is bytes done over bytes in scope; within a run it never goes backwards and
never passes 100, and a run that succeeds is 100 (a nightly run that sends little ends at
4 % of the bytes and then completes). The total, once shown, stays put unless the tool's
numbers prove it wrong. The speed is our own measure, the same for every tool: bytes the
tool counted per second over windows of at least a second, the median of the last three
(so one burst does not show), and never the first window of a resumed run, where rsync counts
the data it reuses from the partial file in a burst without sending it. The ETA is null until
there is a rate.

Until the total is known the progress says so (``total_known`` false, the ETA null): while the
tool is still listing what is in scope (rsync's incremental recursion: before its first "to-chk"
record), every figure it gives covers only what it has listed so far, and its percent runs ahead
of the truth (75 % shown at 39 % done). The percent is then **held** where it was (0 for a fresh
run, where the earlier runs left it for a resumed one): nothing bounds the total from above, so
no percent above that is safe. Once the list is complete but the total not yet pinned down, the
percent is a safe lower bound (bytes done over the largest total the tool's numbers allow, or its
own truncated percent), and ``total_known`` stays false until the total is pinned down. A run
that succeeds is 100 % with its total known.

A resumed run continues what earlier runs of the same attempt did, without counting anything
twice: when a run ends, only finished files stay counted (the tool counts an unfinished file
again from its first byte in the next run, see Sample.settled); and as rclone's total counts only
what this run must send, the part of the attempt's total earlier runs finished is that total
less this run's.
"""

from __future__ import annotations

import math
from collections import deque

from bkmd.engines import Sample

WINDOW = 0.9  # seconds: the shortest span a rate is measured over (tools report once a second)
RATES = 3  # the speed is the median of the last this many windows


class Tracker:
    """Progress of one run. ``total_covers_tree``: the tool's total is the size of everything
    (rsync), not just what this run has to send (rclone). ``base_bytes``, ``base_percent`` and
    ``base_total`` are the job's progress when the run resumes an earlier one; ``resumed`` says
    whether it does (None: inferred from those, which are all 0 when the earlier run was paused
    before it finished a file or knew its total, so the caller should say).

    ``bytes - base_bytes`` is always what this run's tool counted (``sent``), which is what the
    run record reports: ``base_bytes`` moves when the Tracker learns how much of the earlier
    runs' work carries over.
    """

    def __init__(
        self,
        total_covers_tree: bool,
        base_bytes: int = 0,
        base_percent: float = 0.0,
        base_total: int | None = None,
        resumed: bool | None = None,
    ) -> None:
        self.total_covers_tree = total_covers_tree
        self.earlier = max(base_bytes, 0)  # done by the earlier runs this one continues
        self.base_total = base_total or None  # the attempt's total as the earlier runs knew it
        self.resumed = (base_bytes > 0 or base_percent > 0) if resumed is None else resumed
        self.percent = min(max(base_percent, 0.0), 100.0)
        self.sent = 0  # what the tool counted in this run
        self.bytes = self.earlier
        self.base_bytes = self.bytes
        self.total: int | None = self.base_total
        self.speed: float = 0.0
        self.eta: int | None = None
        # Whether the tool's list of what is in scope is complete (see Sample.listing). rclone's
        # total is exact once it has one; rsync's list is complete only once a record says so.
        self.listed = not total_covers_tree
        self.finished = False  # complete(): the tool said it succeeded
        self._mark: tuple[float, int] | None = None  # (time, sent) where the current window began
        self._rates: deque[float] = deque(maxlen=RATES)
        self._skip = self.resumed  # the first window of a resumed run is not a rate

    def apply(self, sample: Sample, now: float) -> None:
        self.sent = max(sample.bytes, 0)
        if self.total_covers_tree:
            self.listed = not sample.listing
            self._tree_total(sample)
        elif sample.total:
            # rclone: this run's total is what it must send, unfinished files included; what the
            # earlier runs finished is the attempt's total less that.
            if self.base_total is not None and self.base_total >= sample.total:
                self.earlier = self.base_total - sample.total
            self.total = self.earlier + sample.total
        counted = sample.settled if sample.ended and sample.settled is not None else self.sent
        done = self.earlier + counted
        if self.total:
            done = min(done, self.total)
        self.bytes = done
        self.base_bytes = done - self.sent
        if sample.ended:
            return  # the run is over: what it finished is known, the percent and speed stay
        candidates = [self.percent]
        if not self.listed:
            pass  # the tool's total still grows, and every percent from it runs ahead: held
        elif self.total:
            candidates.append(100.0 * done / self.total)
        elif self.total_covers_tree:
            # The total is not pinned down yet: its upper bound gives a percent that is not too high.
            if sample.total_high:
                candidates.append(100.0 * done / sample.total_high)
            if not self.earlier and sample.percent is not None:
                candidates.append(sample.percent)  # truncated by the tool: not too high either
        # Not the "checked" fraction: rsync checks small files long before it reaches a big one
        # sorted after them, so 41 of 42 files checked can mean a fifth of the bytes sent.
        self.percent = min(max(candidates), 100.0)
        self._measure(now)

    def _tree_total(self, sample: Sample) -> None:
        """rsync: keep the total shown while the tool's numbers allow it; when they rule it
        out, move it to the nearest value they allow (every later move is then towards the
        truth, so it moves at most by its first error in all)."""
        low, high = sample.total_low, sample.total_high
        if self.total is None:
            self.total = sample.total or None
        elif high is not None and self.total > high:
            self.total = high  # too big only makes the percent lag: the bound is safe
        elif low is not None and self.total < low:
            # Too small would make the percent run ahead: only the tool's own pinned-down total
            # (or none at all) will do.
            self.total = low if sample.total else None

    def _measure(self, now: float) -> None:
        if self._mark is None:
            self._mark = (now, self.sent)
        elif now - self._mark[0] >= WINDOW:
            then, before = self._mark
            rate = max(self.sent - before, 0) / (now - then)
            self._mark = (now, self.sent)
            if self._skip:
                self._skip = False
            else:
                self._rates.append(rate)
                ordered = sorted(self._rates)
                # The median of three; of two, the lower (one of them may be a burst).
                self.speed = ordered[(len(ordered) - 1) // 2]
        remaining = self.total - self.bytes if self.total_known else None
        self.eta = int(round(max(remaining, 0) / self.speed)) if self.speed > 0 and remaining is not None else None

    def complete(self, exact_total: int | None = None) -> None:
        """The tool said it succeeded: that is 100 %, whatever the byte counts said."""
        self.listed = self.finished = True
        if exact_total is not None:
            self.total = exact_total
        elif not self.total:
            self.total = self.base_total or self.earlier + self.sent or None
        # Everything the tool counted is done now (the last reading may have left a file open).
        self.bytes = self.earlier + self.sent
        if self.total:
            self.bytes = min(self.bytes, self.total)
        self.base_bytes = self.bytes - self.sent
        self.percent = 100.0
        self.eta = 0

    @property
    def total_known(self) -> bool:
        """Whether ``total`` is the total in scope (exact, or rsync's pinned down to within 2 %),
        so that a percent and an ETA can be computed from it: the tool's list is complete and it
        gave a total, or the run succeeded."""
        return self.finished or (self.listed and self.total is not None)

    def as_dict(self) -> dict:
        return {
            # Truncated like rsync's own: 99.97 % is not yet 100.
            "percent": math.floor(self.percent * 10 + 1e-9) / 10,
            "bytes_transferred": self.bytes,
            "total_bytes": self.total or 0,
            "speed_bytes": int(self.speed),
            "eta_seconds": self.eta if self.total_known else None,
            # False: the total is not known yet (rsync still lists the tree, or its numbers do
            # not pin the total down yet): the percent is held or a safe lower bound, the ETA is
            # null and total_bytes is the total as far as known (an earlier run's, or 0).
            "total_known": self.total_known,
        }
