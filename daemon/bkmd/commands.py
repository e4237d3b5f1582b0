"""Short commands as a job's owner: a dry run, the mirror guard's count, a snapshot's renaming
and retention. Their output is kept (the end of it), their end awaited; bkmd stops them when it
stops, and a job's own when the job is paused before its transfer began."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from bkmd import access
from bkmd.engines import engine as engine_for
from bkmd.runner import Transfer

KEEP_BYTES = 1 << 20  # of each stream, the end: the statistics and the errors come last


class Captured:
    """What a short command printed (the last KEEP_BYTES of each stream) and how it ended."""

    def __init__(self) -> None:
        self.kept = {"out": bytearray(), "err": bytearray()}
        self.code: int | None = None
        self.error: str | None = None  # it could not start: why

    def output(self, stream: str, data: bytes) -> None:
        buffer = self.kept[stream]
        buffer += data
        if len(buffer) > KEEP_BYTES:
            del buffer[: len(buffer) - KEEP_BYTES]

    def exited(self, code: int | None, error: str | None) -> None:
        self.code, self.error = code, error

    def text(self, stream: str) -> str:
        return self.kept[stream].decode("utf-8", "replace")


def owned_transfer(factory: Callable[..., Transfer], argv: list[str], job, captured: Captured) -> Transfer:
    """``argv`` as a process of the job's owner, in the tool's environment, captured."""
    run_as = access.run_as(job.owner)
    env = engine_for(job.type).environment(dict(os.environ))
    return factory(
        argv,
        run_as.environment(env) if run_as else env,
        on_started=lambda pid, start: None,
        on_output=captured.output,
        on_exit=captured.exited,
        run_as=run_as,
    )


class Commands:
    """The short commands in progress (stopped when bkmd stops)."""

    def __init__(self, transfer_factory: Callable[..., Transfer] = Transfer) -> None:
        self.transfer_factory = transfer_factory
        self.running: dict[Transfer, str] = {}  # and the id of the job each is for

    async def run(self, argv: list[str], job, timeout: float = 600.0) -> tuple[int | None, str, str]:
        """(exit code or None, stdout, stderr) of ``argv`` run as the job's owner; None with
        the reason as stderr when it could not start or took longer than ``timeout``."""
        captured = Captured()
        transfer = owned_transfer(self.transfer_factory, argv, job, captured)
        self.running[transfer] = job.id
        try:
            transfer.start()
            try:
                await asyncio.wait_for(transfer.done.wait(), timeout)
            except asyncio.TimeoutError:  # noqa: UP041 (TimeoutError itself only from Python 3.11)
                transfer.request_stop(5.0)
                await transfer.done.wait()
                return None, "", f"{argv[0]} took longer than {timeout:.0f} s: stopped"
        finally:
            self.running.pop(transfer, None)
        out, err = captured.text("out"), captured.text("err")
        if captured.error:
            return None, out, captured.error
        return captured.code, out, err

    def stop_job(self, job_id: str) -> None:
        for transfer, owner in list(self.running.items()):
            if owner == job_id:
                transfer.request_stop(5.0)

    async def stop_all(self) -> None:
        running = list(self.running)
        for transfer in running:
            transfer.request_stop(5.0)
        await asyncio.gather(*(transfer.done.wait() for transfer in running))
