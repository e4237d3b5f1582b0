"""A job's hooks: commands run through /bin/sh -c as the job's owner, around its runs.

Each hook is a supervised child like a transfer (its own process group, dies with bkmd, as the
owner's uid, gid and groups), so a hook never blocks bkmd's loop, and one that outlives
hook_timeout is stopped with its whole group. What it prints goes to the job log. The status a
hook is given is the run's outcome, never another hook's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from bkm import model
from bkmd import access
from bkmd.job import Job
from bkmd.runner import Transfer

STOP_GRACE = 5.0
PASSED_ON = frozenset({"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ"})
LINE_CHARS = 1000  # a hook's output line is cut to this in the log


def environment(job: Job, record: dict, status: str, error: str | None = None) -> dict[str, str]:
    """The contract's BKM_* variables for a run's hooks (BKM_STATUS: completed, failed, paused)."""
    duration = record.get("duration_seconds")
    return {
        "BKM_JOB": job.name,
        "BKM_JOB_ID": job.id,
        "BKM_STATUS": status,
        "BKM_EXIT_CODE": "" if record.get("exit_code") is None else str(record["exit_code"]),
        "BKM_ERROR": error if error is not None else record.get("error") or "",
        "BKM_BYTES": str(record.get("bytes") or 0),
        "BKM_DURATION": "" if duration is None else f"{duration:g}",
        "BKM_TRIGGER": str(record.get("trigger") or model.MANUAL),
        "BKM_ATTEMPT": str(record.get("attempt") or 1),
    }


class Hooks:
    def __init__(self, logs, settings, transfer_factory: Callable[..., Transfer] = Transfer) -> None:
        self.logs = logs
        self.settings = settings
        self.transfer_factory = transfer_factory
        self.running: dict[str, Transfer] = {}  # job id: its hook running now
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False  # bkmd is stopping: no hook starts any more

    async def run(self, job: Job, kind: str, env: dict[str, str]) -> str | None:
        """The job's ``kind`` hooks one after another; None when all succeeded, else why the
        first that failed did (the ones after it do not run)."""
        for command in job.hooks.get(kind) or []:
            if self.stopping:
                return f"{kind.replace('_', '-')} hook not run: bkmd is stopping"
            problem = await self._one(job, kind, command, env)
            if problem is not None:
                return problem
        return None

    def run_later(self, job: Job, kinds: list[str], env: dict[str, str]) -> None:
        """``kinds`` in order, in the background (after a run: nothing waits for them)."""
        kinds = [kind for kind in kinds if job.hooks.get(kind)]
        if not kinds:
            return

        async def chain() -> None:
            for kind in kinds:
                await self.run(job, kind, env)

        task = asyncio.get_running_loop().create_task(chain())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _one(self, job: Job, kind: str, command: str, env: dict[str, str]) -> str | None:
        label = kind.replace("_", "-")
        run_as = access.run_as(job.owner)
        # Another user's hook (a member's, on a system bkmd) gets no more of bkmd's environment
        # than a login would give: root's may hold credentials.
        base = {k: v for k, v in os.environ.items() if k in PASSED_ON} if run_as else dict(os.environ)
        full = dict(base, **env)
        ended: dict = {}
        pending = {"out": b"", "err": b""}

        def output(stream: str, data: bytes) -> None:
            lines = (pending[stream] + data).split(b"\n")
            pending[stream] = lines.pop()
            for line in lines:
                self._log(job, label, line)

        transfer = self.transfer_factory(
            ["/bin/sh", "-c", command],
            run_as.environment(full) if run_as else full,
            on_started=lambda pid, start: None,
            on_output=output,
            on_exit=lambda code, error: ended.update(code=code, error=error),
            run_as=run_as,
        )
        timeout = self.settings["hook_timeout"]
        timed_out = asyncio.Event()

        def expire() -> None:
            timed_out.set()
            transfer.request_stop(STOP_GRACE)

        self.logs.write(job.id, f"{label} hook: {command}")
        self.running[job.id] = transfer
        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            transfer.start()
            await transfer.done.wait()
        finally:
            timer.cancel()
            if self.running.get(job.id) is transfer:
                del self.running[job.id]
        for stream in ("out", "err"):
            if pending[stream]:
                self._log(job, label, pending[stream])
        code = ended.get("code")
        if timed_out.is_set():
            problem = f"{label} hook timed out after {timeout} s and was stopped"
        elif ended.get("error"):
            problem = f"{label} hook could not run: {ended['error']}"
        elif transfer.stop_requested:
            problem = f"{label} hook was stopped"
        elif code is not None and code < 0:
            problem = f"{label} hook killed by signal {-code}"
        elif code != 0:
            problem = f"{label} hook failed (exit {code})"
        else:
            return None
        self.logs.write(job.id, problem, "error")
        return problem

    def _log(self, job: Job, label: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if text:
            self.logs.write(job.id, f"{label} hook: {text[:LINE_CHARS]}", "output")

    def stop(self, job_id: str) -> None:
        """Stop the job's hook running now (its run is being paused)."""
        transfer = self.running.get(job_id)
        if transfer is not None:
            transfer.request_stop(STOP_GRACE)

    async def stop_all(self) -> None:
        self.stopping = True
        for transfer in list(self.running.values()):
            transfer.request_stop(STOP_GRACE)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=STOP_GRACE + 1)
