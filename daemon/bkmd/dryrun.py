"""A job's dry run: the tool's own (rsync -n, rclone --dry-run), as the job's owner, counting
what a run would send. It changes no status and no history; it is not a run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from bkmd import access
from bkmd.engines import engine as engine_for
from bkmd.errors import Unavailable
from bkmd.job import Job
from bkmd.runner import Transfer

KEEP_BYTES = 1 << 20  # of each stream, the end (the statistics come last; -v lists every file)
ERROR_CHARS = 300


class DryRunFailed(Unavailable):
    """The tool's dry run failed (exit 1 in the client, with the tool's error)."""


async def dry_run(job: Job, settings, transfer_factory: Callable[..., Transfer] = Transfer) -> dict:
    """{"files": N, "bytes": N} a run would send now; DryRunFailed with the tool's error."""
    engine = engine_for(job.type)
    argv = engine.dry_run_argv(job, settings)
    run_as = access.run_as(job.owner)
    env = engine.environment(dict(os.environ))
    kept = {"out": bytearray(), "err": bytearray()}
    ended: dict = {}

    def output(stream: str, data: bytes) -> None:
        buffer = kept[stream]
        buffer += data
        if len(buffer) > KEEP_BYTES:
            del buffer[: len(buffer) - KEEP_BYTES]

    def exited(code: int | None, error: str | None) -> None:
        ended.update(code=code, error=error)

    transfer = transfer_factory(
        argv,
        run_as.environment(env) if run_as else env,
        on_started=lambda pid, start: None,
        on_output=output,
        on_exit=exited,
        run_as=run_as,
    )
    transfer.start()
    await transfer.done.wait()
    out, err = (kept[s].decode("utf-8", "replace") for s in ("out", "err"))
    code = ended.get("code")
    if ended.get("error"):
        raise DryRunFailed(f"the dry run of job {job.name!r} failed: {ended['error']}", {"job": job.name})
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
