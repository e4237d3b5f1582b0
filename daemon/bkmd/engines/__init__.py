"""Transfer engines: for each job type, a pure argv builder, a pure output parser and the
meaning of its exit codes. Adding a tool means adding a module with the same names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class Sample:
    """One progress reading, as the tool reported it, for the current run only."""

    bytes: int  # the tool's byte counter for this run (rsync's counts reused "matched" data too)
    total: int | None = None  # bytes of everything in scope, when the tool says or implies it
    percent: float | None = None  # the tool's own percentage (kept for logs and tests)
    # Fraction (0..1) of the files listed so far that the tool has checked, when it says. While
    # the list still grows (``listing``) it can fall as new files are listed; it is what shows
    # that a run which moves no bytes (a no-op run of a big tree) is still doing something.
    checked: float | None = None
    # Of ``bytes``, what belongs to files already finished. A file left unfinished is counted
    # again from its first byte by the next run (rclone sends it again; rsync counts the part
    # it reuses as matched data), so only this much carries over to a resumed run.
    settled: int | None = None
    # What the tool's numbers prove about the total when they do not state it:
    # total_low <= total <= total_high (rsync: its percent is truncated, not rounded).
    total_low: int | None = None
    total_high: int | None = None
    # The last reading of a run, repeated by Parser.finish(): the run's output has ended.
    ended: bool = False
    # The tool is still listing what is in scope (rsync's incremental recursion: an "ir-chk"
    # record, or no "to-chk" record yet): its total and its percent only cover the files listed
    # so far, so ``total`` is None, ``total_high`` is None (nothing bounds the total from above
    # yet) and ``percent`` runs ahead of the truth. ``total_low`` still holds.
    listing: bool = False


@dataclass
class Outcome:
    status: str  # "completed" or "failed"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Parser(Protocol):
    """Splits a tool's output into progress samples and message lines, keeping partial records."""

    # The size of everything in scope when the tool states it exactly (rsync's --stats), else None.
    total_exact: int | None
    # The bytes of the files the tool sent, when it states them at the end (rsync's --stats).
    sent_exact: int | None
    # The files (and folders) in scope, when the tool states them at the end (rsync's --stats).
    files_exact: int | None

    def feed(self, stream: str, data: bytes) -> tuple[list[Sample], list[str]]: ...

    # At the run's end: what is left, then the last reading again with ended=True (if there was one).
    def finish(self) -> tuple[list[Sample], list[str]]: ...


@runtime_checkable
class Engine(Protocol):
    """What every engine module provides (each module is the engine: engines/rsync.py, rclone.py)."""

    # Whether the tool's total is the size of everything (rsync), not only what this run sends.
    TOTAL_COVERS_TREE: bool
    Parser: type[Parser]

    # ``resume``: the run continues one that was paused or interrupted.
    # ``sources``/``dest``: other paths than the job's (a snapshot's folder, a restore's);
    # ``delete``: a mirror; ``link_dest``: a snapshot's previous one, relative to ``dest``;
    # ``filters``: the job's excludes apply (not to a restore); ``includes``: only these
    # paths of the source (rclone's restore; rsync gives them as ``sources`` with -R);
    # ``keeper``: bkmd keeps the file in flight itself if it stops the run (keep_partial),
    # so the tool need not be asked to on every run.
    def argv(
        self,
        job,
        settings,
        resume: bool = False,
        sources: list[str] | None = None,
        dest: str | None = None,
        delete: bool = False,
        link_dest: str | None = None,
        filters: bool = True,
        includes: list[str] | None = None,
        keeper: bool = False,
    ) -> list[str]: ...

    # Whether bkmd can keep a stopped run's unfinished file itself (see ``keeper``) ...
    def can_keep_partial(self, job, settings, dest: str | None = None) -> bool: ...

    # ... and, while such a run is held (SIGSTOP) before it is ended, keeps it: of the files
    # the transfer has open for writing (``written``), the tool's unfinished ones under the
    # run's ``dest``, copied from ``source``; none once ``late`` is set. Returns them.
    def keep_partial(self, written: list[str], dest: str, source: str, late=None) -> list[str]: ...

    def environment(self, base: dict) -> dict: ...

    def outcome(self, code: int, lines: list[str], parser: Parser, job) -> Outcome: ...

    # Why a line of the tool's output is expected noise (``stopped``: bkmd stopped the
    # transfer), or None: the job log labels it instead of showing it as a problem.
    def expected(self, line: str, stopped: bool) -> str | None: ...


def engine(job_type: str) -> Engine:
    from bkmd.engines import rclone, rsync

    return {"rsync": rsync, "rclone": rclone}[job_type]
