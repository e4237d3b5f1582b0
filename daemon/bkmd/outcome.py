"""Judging how a run ended: a pure function of what bkmd saw, tested without processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bkm import model

# Why bkmd itself stopped a transfer.
PAUSE = "pause"  # a person (or a stopping bkmd) asked
STALL = "stall"  # no progress for stall_timeout seconds


@dataclass
class Verdict:
    status: str  # completed, failed or paused
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    summary: str = ""  # one line for the job log


def judge(
    engine,
    code: int | None,
    lines: list[str],
    parser,
    job,
    stop_reason: str | None = None,
    spawn_error: str | None = None,
    stall_timeout: int = 0,
) -> Verdict:
    """The run's status, error and warnings from its exit code, the tool's output (``lines``,
    and what ``parser`` gathered), why bkmd stopped it (if it did) and whether it started."""
    if stop_reason == STALL:
        return Verdict(model.FAILED, "stalled", summary=f"failed: stalled (no progress for {stall_timeout} s)")
    if stop_reason == PAUSE:
        return Verdict(model.PAUSED, summary="paused: transfer stopped, partial data kept")
    if spawn_error is not None:
        return Verdict(model.FAILED, spawn_error, summary=f"failed: {spawn_error}")
    if code is None:
        return Verdict(model.FAILED, "the transfer ended without an exit code", summary="failed: no exit code")
    result = engine.outcome(code, lines, parser, job)
    summary = f"{result.status}: exit code {code}" + (f", {result.error}" if result.error else "")
    return Verdict(result.status, result.error, list(result.warnings), summary)
