"""Transfer engines: for each job type, a pure argv builder, a pure output parser and the
meaning of its exit codes. Adding a tool means adding a module with the same names."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sample:
    """One progress reading, as the tool reported it, for the current run only."""

    bytes: int
    total: int | None = None  # bytes of everything in scope, when the tool says or implies it
    percent: float | None = None  # the tool's own percentage (kept for logs and tests)
    checked: float | None = None  # fraction (0..1) of files already checked, when known


@dataclass
class Outcome:
    status: str  # "completed" or "failed"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def engine(job_type: str):
    from bkmd.engines import rclone, rsync

    return {"rsync": rsync, "rclone": rclone}[job_type]
