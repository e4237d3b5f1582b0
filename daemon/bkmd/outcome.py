"""Judging how a run ended: a pure function of what bkmd saw, tested without processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bkm import model

# Why bkmd itself stopped a transfer.
PAUSE = "pause"  # a person asked
STOP = "stop"  # bkmd is stopping (daemon stop, SIGTERM, a reboot): resumed at its next start
STALL = "stall"  # no progress for stall_timeout seconds


@dataclass
class Verdict:
    status: str  # completed, failed or paused
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    summary: str = ""  # one line for the job log
    # A failure that may pass by itself (the engine's TRANSIENT exit codes, a stall): retried
    # when the job allows retries.
    transient: bool = False


def judge(
    engine,
    code: int | None,
    lines: list[str],
    parser,
    job,
    stop_reason: str | None = None,
    spawn_error: str | None = None,
    stall_timeout: int = 0,
    source_gone: bool = False,
) -> Verdict:
    """The run's status, error and warnings from its exit code, the tool's output (``lines``,
    and what ``parser`` gathered), why bkmd stopped it (if it did), whether it started, and
    whether its (local) source folder still exists at the end."""
    if stop_reason == STALL:
        summary = f"failed: stalled (no progress for {stall_timeout} s)"
        return Verdict(model.FAILED, "stalled", summary=summary, transient=True)
    if stop_reason in (PAUSE, STOP):
        why = " because bkmd stopped" if stop_reason == STOP else ""
        return Verdict(model.PAUSED, summary=f"paused{why}: transfer stopped, partial data kept")
    if spawn_error is not None:
        return Verdict(model.FAILED, spawn_error, summary=f"failed: {spawn_error}")
    if code is None:
        return Verdict(model.FAILED, "the transfer ended without an exit code", summary="failed: no exit code")
    result = engine.outcome(code, lines, parser, job)
    if source_gone:
        # Whatever the tool's exit code: a backup of a source that is gone is not a backup.
        error = f"source vanished: {job.source} no longer exists" + (f" ({result.error})" if result.error else "")
        return Verdict(model.FAILED, error, list(result.warnings), summary=f"failed: {error}; exit code {code}")
    summary = f"{result.status}: exit code {code}" + (f", {result.error}" if result.error else "")
    transient = result.status == model.FAILED and code in engine.TRANSIENT
    return Verdict(result.status, result.error, list(result.warnings), summary, transient)
