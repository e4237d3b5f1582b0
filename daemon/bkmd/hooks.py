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
OUTPUT_BYTES = 64 * 1024  # of a hook's output, logged
OUTPUT_LINES = 500  # and at most this many lines (each is a write to the job log)
HOOK_RECORD = "~hook-"  # a hook's process record: JOB_ID~hook-PID, beside the transfers' JOB_ID
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


class Output:
    """A hook's output, as job log lines: at most OUTPUT_BYTES and OUTPUT_LINES of it (a hook
    that floods must not fill the log, bkmd's memory or its loop); the rest is counted only."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.pending = {"out": b"", "err": b""}
        self.logged = 0
        self.lines = 0
        self.dropped = 0

    def full(self) -> bool:
        return self.logged >= OUTPUT_BYTES or self.lines >= OUTPUT_LINES

    def feed(self, stream: str, data: bytes) -> None:
        if self.full():
            self.dropped += len(data)
            return
        lines = (self.pending[stream] + data).split(b"\n")
        self.pending[stream] = lines.pop()
        if len(self.pending[stream]) > LINE_CHARS:  # a line without end: cut it now
            lines.append(self.pending[stream])
            self.pending[stream] = b""
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self.full():
            self.dropped += len(line) + 1
            return
        self.logged += len(line) + 1
        self.lines += 1
        text = line[:LINE_CHARS].decode("utf-8", "replace").rstrip("\r")
        if text:
            self.write(text)

    def finish(self) -> None:
        for stream in ("out", "err"):
            if self.pending[stream]:
                self._line(self.pending[stream])
        if self.dropped:
            self.write(f"(output cut: {self.dropped} more bytes not logged)")


class Hooks:
    def __init__(self, logs, settings, records, transfer_factory: Callable[..., Transfer] = Transfer) -> None:
        self.logs = logs
        self.settings = settings
        self.records = records  # hooks are recorded like transfers: a crashed bkmd's are ended
        self.transfer_factory = transfer_factory
        self.running: dict[tuple[str, str], Transfer] = {}  # (job id, "before" or "after"): its hook now
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
        slot = (job.id, "before" if kind == "before" else "after")
        run_as = access.run_as(job.owner)
        # Another user's hook (a member's, on a system bkmd) gets no more of bkmd's environment
        # than a login would give: root's may hold credentials.
        base = {k: v for k, v in os.environ.items() if k in PASSED_ON} if run_as else dict(os.environ)
        full = dict(base, **env)
        ended: dict = {}
        output = Output(lambda text: self.logs.write(job.id, f"{label} hook: {text}", "output"))
        record = f"{job.id}{HOOK_RECORD}"
        pids: list[int] = []

        def started(pid: int, start: int | None) -> None:
            pids.append(pid)
            self.records.write(f"{record}{pid}", pid, start)

        transfer = self.transfer_factory(
            ["/bin/sh", "-c", command],
            run_as.environment(full) if run_as else full,
            on_started=started,
            on_output=output.feed,
            on_exit=lambda code, error: ended.update(code=code, error=error),
            run_as=run_as,
        )
        timeout = self.settings["hook_timeout"]
        timed_out = asyncio.Event()

        def expire() -> None:
            timed_out.set()
            transfer.request_stop(STOP_GRACE)

        self.logs.write(job.id, f"{label} hook: {command}")
        self.running[slot] = transfer
        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            transfer.start()
            await transfer.done.wait()
        finally:
            timer.cancel()
            if self.running.get(slot) is transfer:
                del self.running[slot]
            for pid in pids:
                self.records.remove(f"{record}{pid}")
        output.finish()
        code = ended.get("code")
        if timed_out.is_set():
            problem = f"{label} hook failed (timed out after {timeout} s, stopped)"
        elif ended.get("error"):
            problem = f"{label} hook could not run: {ended['error']}"
        elif transfer.stop_requested:
            problem = f"{label} hook was stopped"
        elif code is not None and code < 0:
            problem = f"{label} hook failed (killed by signal {-code})"
        elif code != 0:
            problem = f"{label} hook failed (exit {code})"
        else:
            return None
        self.logs.write(job.id, problem, "error")
        return problem

    def stop_before(self, job_id: str) -> None:
        """Stop the job's before hook running now (its run is being paused)."""
        transfer = self.running.get((job_id, "before"))
        if transfer is not None:
            transfer.request_stop(STOP_GRACE)

    async def stop_all(self) -> None:
        self.stopping = True
        for transfer in list(self.running.values()):
            transfer.request_stop(STOP_GRACE)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=STOP_GRACE + 1)
