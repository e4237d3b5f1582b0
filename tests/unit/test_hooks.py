"""Hooks run as the job's owner with no more of bkmd's environment than a login gives; their
output is bounded. (The privilege drop itself, with real users: tests/integration/test_system_mode.py,
as root; this is the same decision tested without root.)"""

from __future__ import annotations

import asyncio

from bkmd import access, hooks
from bkmd.job import Job
from helpers import job_record


class Logs:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, job_id: str, message: str, level: str = "info") -> None:
        self.lines.append(message)


class Records:
    def write(self, *args) -> None:
        pass

    def remove(self, *args) -> None:
        pass


class FakeTransfer:
    """Stands in for the child process only: it records how it would be started and replays
    ``output``; what is tested is what Hooks asks for and does with the output."""

    made: list[FakeTransfer] = []
    output = b""

    def __init__(self, argv, env, on_started, on_output, on_exit, run_as=None) -> None:
        self.argv, self.env, self.run_as = argv, env, run_as
        self.on_output, self.on_exit = on_output, on_exit
        self.done = asyncio.Event()
        self.stop_requested = False
        FakeTransfer.made.append(self)

    def start(self) -> None:
        for i in range(0, len(self.output), 65536):
            self.on_output("out", self.output[i : i + 65536])
        self.on_exit(0, None)
        self.done.set()

    def request_stop(self, grace: float) -> None:
        self.stop_requested = True


def run_hook(monkeypatch, owner_is_other: bool, output: bytes = b"") -> tuple[FakeTransfer, Logs]:
    other = access.RunAs(uid=4242, gid=4242, groups=(4242,), home="/home/ann", user="ann")
    monkeypatch.setattr(access, "run_as", lambda owner: other if owner_is_other else None)
    monkeypatch.setenv("ROOTS_SECRET", "hunter2")
    FakeTransfer.made, FakeTransfer.output = [], output
    logs = Logs()
    runner = hooks.Hooks(logs, {"hook_timeout": 300}, Records(), FakeTransfer)
    job = Job.from_record(job_record(hooks={"before": ["true"], "after": [], "on_success": [], "on_failure": []}))
    env = hooks.environment(job, {"exit_code": None, "bytes": 0}, "running")
    problem = asyncio.run(runner.run(job, "before", env))
    assert problem is None
    (made,) = FakeTransfer.made
    return made, logs


def test_another_users_hook_runs_as_them_without_bkmds_environment(monkeypatch):
    made, _ = run_hook(monkeypatch, owner_is_other=True)
    assert made.argv == ["/bin/sh", "-c", "true"]
    assert made.run_as.uid == 4242 and made.run_as.groups == (4242,)
    assert "ROOTS_SECRET" not in made.env
    assert made.env["HOME"] == "/home/ann" and made.env["USER"] == "ann" and made.env["BKM_STATUS"] == "running"


def test_bkmds_own_jobs_hooks_keep_its_environment(monkeypatch):
    made, _ = run_hook(monkeypatch, owner_is_other=False)
    assert made.run_as is None and made.env["ROOTS_SECRET"] == "hunter2"


def test_a_hooks_output_is_bounded(monkeypatch):
    _, logs = run_hook(monkeypatch, owner_is_other=False, output=b"y\n" * 2_000_000 + b"x" * 5000)
    said = [line for line in logs.lines if line.startswith("before hook: y")]
    assert len(said) == hooks.OUTPUT_LINES
    assert logs.lines[-1].startswith("before hook: (output cut: ")
