"""A job's dry run: the tool's own (rsync -n, rclone --dry-run), as the job's owner, counting
what a run would send. It changes no status and no history; it is not a run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from bkmd.commands import Captured, owned_transfer
from bkmd.engines import engine as engine_for
from bkmd.errors import Unavailable
from bkmd.job import Job
from bkmd.runner import Transfer

ERROR_CHARS = 300
TIMEOUT = 3600  # seconds: a dry run only lists; one that takes longer is stuck (a hung remote)
LOOK_SECONDS = 0.5  # how often a dry run looks whether whoever asked is still there
STOP_GRACE = 5.0


class DryRunFailed(Unavailable):
    """The tool's dry run failed (exit 1 in the client, with the tool's error)."""


class DryRuns:
    """The dry runs in progress: at most ``limit`` at once, each stopped when it takes longer
    than TIMEOUT, when whoever asked hangs up, or when bkmd stops."""

    def __init__(self, settings, transfer_factory: Callable[..., Transfer] = Transfer) -> None:
        self.settings = settings
        self.transfer_factory = transfer_factory
        self.running: set[Transfer] = set()

    def limit(self) -> int:
        return max(2, self.settings["max_concurrent_jobs"])

    async def run(self, job: Job, gone: Callable[[], bool], argv: list[str] | None = None) -> dict:
        """The job's dry run, or the dry run ``argv`` (a restore's)."""
        if len(self.running) >= self.limit():
            raise Unavailable(f"{len(self.running)} dry runs are in progress already; try again when one ends")
        return await dry_run(job, self.settings, self, gone, argv)

    async def stop_all(self) -> None:
        for transfer in list(self.running):
            transfer.request_stop(STOP_GRACE)
        await asyncio.gather(*(transfer.done.wait() for transfer in list(self.running)))


async def dry_run(job: Job, settings, runs: DryRuns, gone: Callable[[], bool], argv: list[str] | None = None) -> dict:
    """{"files": N, "bytes": N} a run would send now; DryRunFailed with the tool's error."""
    engine = engine_for(job.type)
    argv = argv or engine.dry_run_argv(job, settings)
    captured = Captured()
    transfer = owned_transfer(runs.transfer_factory, argv, job, captured)
    runs.running.add(transfer)
    began = time.monotonic()
    stopped = None
    try:
        transfer.start()
        while not transfer.done.is_set():
            try:
                await asyncio.wait_for(transfer.done.wait(), LOOK_SECONDS)
            except asyncio.TimeoutError:  # noqa: UP041 (TimeoutError itself only from Python 3.11)
                pass
            if stopped is None and gone():
                stopped = "whoever asked for it hung up"
            elif stopped is None and time.monotonic() - began > TIMEOUT:
                stopped = f"it took longer than {TIMEOUT // 60} minutes"
            if stopped is not None:
                transfer.request_stop(STOP_GRACE)
    finally:
        runs.running.discard(transfer)
    if stopped is not None:
        raise DryRunFailed(f"the dry run of job {job.name!r} was stopped: {stopped}", {"job": job.name})
    out, err, code = captured.text("out"), captured.text("err"), captured.code
    if captured.error:
        raise DryRunFailed(f"the dry run of job {job.name!r} failed: {captured.error}", {"job": job.name})
    counts = engine.dry_run_counts(out, err)
    if counts is None or code not in engine.DRY_RUN_OK:
        detail = _cause(engine, err) or f"exit code {code}"
        raise DryRunFailed(
            f"the dry run of job {job.name!r} failed: {detail} (exit code {code})",
            {"job": job.name, "exit_code": code},
        )
    files, size = counts
    return {"files": files, "bytes": size, "command": argv, "exit_code": code}


def _cause(engine, stderr: str) -> str | None:
    """The error line that names the cause: the engine's most specific one (rsync ranks its
    lines), else the last error the tool logged (rclone's JSON entries) or said."""
    rank = getattr(engine, "rank", None)
    if rank is not None:
        ranked = [
            (level, i, line) for i, line in enumerate(stderr.splitlines()) if (level := rank(line, "err")) is not None
        ]
        if ranked:
            return min(ranked)[2][:ERROR_CHARS]
    for line in reversed(stderr.splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("level") not in ("error", "critical"):
                continue
            line = str(entry.get("msg", "")).strip()
        return line[:ERROR_CHARS]
    return None
