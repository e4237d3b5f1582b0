"""The daemon's core in-process: one change per request, background saves, the state machine.

A real Daemon and Dispatcher on a real store in a temporary folder, with a fake transfer
(no rsync: each test takes milliseconds) and saves that fail on demand.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil

import pytest
from bkmd import access, methods, store
from bkmd.app import Daemon
from bkmd.change import Change
from bkmd.jobs import ImpossibleTransition, Jobs
from bkmd.rpc import Dispatcher
from bkmd.settings import Settings
from helpers import short_tempdir

from bkm import model
from bkm import paths as bkm_paths


class FakeTransfer:
    """Stands in for runner.Transfer: the test decides when and how it ends."""

    made: list[FakeTransfer] = []

    def __init__(self, argv, env, on_started, on_output, on_exit, run_as=None) -> None:
        self.argv = argv
        self.on_started, self.on_output, self.on_exit = on_started, on_output, on_exit
        self.started = False
        self.stop_requested = False
        self.process = None  # no process: nothing to keep at a stop
        self.done = asyncio.Event()
        FakeTransfer.made.append(self)

    def start(self) -> None:
        self.started = True
        self.on_started(4_000_000 + len(FakeTransfer.made), 1)

    def finish(self, code: int = 0) -> None:
        if not self.done.is_set():
            self.on_exit(code, None)
            self.done.set()

    def request_stop(self, grace: float = 10.0) -> None:
        self.stop_requested = True
        asyncio.get_running_loop().call_soon(self.finish, 20)  # rsync's exit on SIGTERM


class Saves:
    """Makes the next ``count`` saves of the jobs (those ``when`` accepts, given every job's
    record as the save would leave the store) fail with ENOSPC, before anything is written:
    to the journal or the whole store alike."""

    def __init__(self, monkeypatch) -> None:
        self.failing = 0
        self.failed = 0
        self.when = None
        real = Jobs.save

        def save(jobs, **how):
            records = [job.record() for job in jobs.by_id.values()]
            if self.failing and (self.when is None or self.when(records)):
                self.failing -= 1
                self.failed += 1
                raise OSError(errno.ENOSPC, "No space left on device", jobs.store_path)
            real(jobs, **how)

        monkeypatch.setattr(Jobs, "save", save)

    def fail(self, count: int = 1, when=None) -> None:
        self.failing, self.when = count, when


@pytest.fixture
def core(monkeypatch):
    home = short_tempdir()
    os.makedirs(os.path.join(home, "src"))
    FakeTransfer.made = []
    saves = Saves(monkeypatch)
    yield home, saves
    shutil.rmtree(home, ignore_errors=True)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


class Harness:
    def __init__(self, home: str, max_jobs: int = 2) -> None:
        self.home = home
        self.paths = bkm_paths.resolve(home=home, env={})
        settings = Settings(self.paths.settings, {"max_concurrent_jobs": max_jobs})
        self.daemon = Daemon(self.paths, [], settings, FakeTransfer)
        self.dispatcher = Dispatcher(
            methods.build(self.daemon), self.daemon.commit, lambda c: access.caller_of(c, False)
        )
        self.next_id = 0

    def request(self, method: str, **params) -> dict:
        self.next_id += 1
        return {"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id}

    async def send(self, message):
        answer = await self.dispatcher.handle(json.dumps(message).encode())
        return json.loads(answer)

    async def call(self, method: str, **params):
        answer = await self.send(self.request(method, **params))
        assert "result" in answer, answer
        return answer["result"]

    @classmethod
    async def one_running_one_queued(cls, home: str) -> Harness:
        """One slot: A running, B queued."""
        h = cls(home, max_jobs=1)
        for name in ("A", "B"):
            await h.create(name)
            await h.call("job.start", job=name)
        return h

    async def create(self, name: str) -> dict:
        return await self.call(
            "job.create", name=name, type="rsync", source=f"{self.home}/src/", dest=f"{self.home}/{name}"
        )

    def on_disk(self) -> dict[str, str]:
        records, _, _ = store.apply_journal(self.paths.store, store.load_jobs(self.paths.store))
        return {record["name"]: record["status"] for record in records}

    def transfer_of(self, name: str) -> FakeTransfer:
        return self.daemon.runs.active[self.daemon.jobs.by_name[name].id].transfer


def _by_name(records: list[dict], name: str) -> dict:
    return next(r for r in records if r["name"] == name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_member_whose_run_ends_with_a_failed_save_undoes_nothing(core):
    """[create X, start A, pause R]; the save that records R's end fails once. Every answer is
    true: X and A are on disk, A's transfer runs supervised, R is paused; the failed
    background save is retried and the store catches up."""
    home, saves = core

    async def scenario():
        h = Harness(home)
        await h.create("A")
        await h.create("R")
        await h.call("job.start", job="R")
        await settle()
        saves.fail(1, when=lambda records: {"name": "R", "status": "paused"}.items() <= _by_name(records, "R").items())
        batch = [
            h.request("job.create", name="X", type="rsync", source=f"{home}/src/", dest=f"{home}/X"),
            h.request("job.start", job="A"),
            h.request("job.pause", job="R"),
        ]
        answers = await h.send(batch)
        assert [("result" in a) for a in answers] == [True, True, True], answers
        assert answers[2]["result"]["status"] == "paused"
        assert saves.failed == 1
        jobs = h.daemon.jobs
        assert jobs.by_name["X"].status == "pending"
        assert jobs.by_name["A"].status == "running" and h.transfer_of("A").started
        assert jobs.by_name["R"].status == "paused"
        assert h.on_disk() == {"A": "running", "R": "running", "X": "pending"}  # R's end not yet saved
        assert jobs.unsaved
        assert h.daemon.save_in_background()  # the checkpoint's retry
        assert h.on_disk() == {"A": "running", "R": "paused", "X": "pending"}

    run(scenario())


def test_a_batch_whose_write_fails_undoes_exactly_its_changes(core):
    """The write shared by [create X, start A] fails: both answer "could not save", X exists
    nowhere, A is back to pending with no transfer, no pid record and no "running" activity."""
    home, saves = core

    async def scenario():
        h = Harness(home)
        await h.create("A")
        before = list(h.daemon.activity.recent)
        saves.fail(1)
        answers = await h.send(
            [
                h.request("job.create", name="X", type="rsync", source=f"{home}/src/", dest=f"{home}/X"),
                h.request("job.start", job="A"),
            ]
        )
        assert [a["error"]["code"] for a in answers] == [-32004, -32004]
        assert all("could not save" in a["error"]["message"] for a in answers)
        await settle()
        a = h.daemon.jobs.by_name["A"]
        assert "X" not in h.daemon.jobs.by_name
        assert a.status == "pending" and a.last_run is None
        assert h.daemon.runs.active == {} and FakeTransfer.made and not FakeTransfer.made[-1].started
        assert h.daemon.runs.records.found() == []
        assert list(h.daemon.activity.recent) == before
        assert h.on_disk() == {"A": "pending"}
        # The next request goes through normally.
        await h.call("job.start", job="A")
        await settle()
        assert h.on_disk() == {"A": "running"} and h.transfer_of("A").started

    run(scenario())


def test_one_failed_member_leaves_the_others_of_its_batch_alone(core):
    """A failing pause (conflict) between two creates: the creates are saved, nothing else."""
    home, _ = core

    async def scenario():
        h = Harness(home)
        await h.create("A")
        answers = await h.send(
            [
                h.request("job.create", name="X", type="rsync", source=f"{home}/src/", dest=f"{home}/X"),
                h.request("job.pause", job="A"),
                h.request("job.create", name="X", type="rsync", source=f"{home}/src/", dest=f"{home}/X2"),
                h.request("job.create", name="Y", type="rsync", source=f"{home}/src/", dest=f"{home}/Y"),
            ]
        )
        assert ["result" in a for a in answers] == [True, False, False, True]
        assert [a["error"]["code"] for a in answers if "error" in a] == [-32002, -32002]
        assert h.on_disk() == {"A": "pending", "X": "pending", "Y": "pending"}

    run(scenario())


def test_a_failed_save_during_a_queue_promotion_is_retried_not_undone(core):
    """One slot: A runs, B waits. A ends while the store cannot be written: A is completed, B
    is promoted and its transfer runs; nothing is undone, and the next save records both."""
    home, saves = core

    async def scenario():
        h = Harness(home, max_jobs=1)
        await h.create("A")
        await h.create("B")
        await h.call("job.start", job="A")
        queued = await h.call("job.start", job="B")
        assert queued["status"] == "queued"
        await settle()
        saves.fail(2)  # the save of A's end, and the save of B's promotion
        h.transfer_of("A").finish(0)
        await settle()
        assert saves.failed == 2
        jobs = h.daemon.jobs
        assert jobs.by_name["A"].status == "completed"
        assert jobs.by_name["B"].status == "running" and h.transfer_of("B").started
        assert len(h.daemon.runs.queue) == 0
        assert h.on_disk() == {"A": "running", "B": "queued"}
        await h.create("C")  # any saved request writes what runs decided too
        assert h.on_disk() == {"A": "completed", "B": "running", "C": "pending"}
        assert not jobs.unsaved

    run(scenario())


def test_a_failing_background_save_while_requests_keep_arriving(core):
    """A run's end cannot be saved; a request that then cannot be saved either undoes only its
    own change (never the run's end); the next request that can be saved writes both."""
    home, saves = core

    async def scenario():
        h = Harness(home)
        await h.create("A")
        await h.call("job.start", job="A")
        await settle()
        saves.fail(1)
        h.transfer_of("A").finish(0)
        await settle()
        assert h.daemon.jobs.by_name["A"].status == "completed" and h.daemon.jobs.unsaved
        saves.fail(1)
        answer = await h.send(h.request("job.create", name="Z", type="rsync", source=f"{home}/src/", dest=f"{home}/Z"))
        assert answer["error"]["code"] == -32004
        assert "Z" not in h.daemon.jobs.by_name
        assert h.daemon.jobs.by_name["A"].status == "completed"
        status = await h.call("daemon.status")  # reads keep working
        assert status["counts"]["completed"] == 1
        await h.create("W")
        assert h.on_disk() == {"A": "completed", "W": "pending"}

    run(scenario())


def test_pause_of_a_queued_job_that_cannot_be_saved_puts_it_back_in_its_place(core):
    home, saves = core

    async def scenario():
        h = Harness(home, max_jobs=1)
        for name in ("A", "B", "C", "D"):
            await h.create(name)
            await h.call("job.start", job=name)
        ids = [h.daemon.jobs.by_name[n].id for n in ("B", "C", "D")]
        assert h.daemon.runs.queue.ids() == ids
        saves.fail(1)
        answer = await h.send(h.request("job.pause", job="C"))
        assert answer["error"]["code"] == -32004
        assert h.daemon.runs.queue.ids() == ids
        assert h.daemon.jobs.by_name["C"].status == "queued"

    run(scenario())


def test_settings_reset_starts_queued_jobs_like_settings_set(core):
    home, _ = core

    async def scenario():
        h = await Harness.one_running_one_queued(home)
        assert h.daemon.jobs.by_name["B"].status == "queued"
        await h.call("settings.reset", key="max_concurrent_jobs")  # back to the default, 2
        assert h.daemon.jobs.by_name["B"].status == "running"
        await settle()
        assert h.transfer_of("B").started

    run(scenario())


def test_a_failed_settings_save_is_undone_and_starts_nothing(core, monkeypatch):
    home, _ = core

    async def scenario():
        h = await Harness.one_running_one_queued(home)

        def refuse(path, values, unknown=None):
            raise OSError(errno.EROFS, "Read-only file system", path)

        monkeypatch.setattr(store, "save_settings", refuse)
        answer = await h.send(h.request("settings.set", key="max_concurrent_jobs", value=3))
        assert answer["error"]["code"] == -32004
        assert h.daemon.settings["max_concurrent_jobs"] == 1
        assert h.daemon.jobs.by_name["B"].status == "queued"

    run(scenario())


# -- the state machine ---------------------------------------------------------------------


def test_every_transition_is_declared_in_one_table():
    for cause, (sources, targets) in model.TRANSITIONS.items():
        for before in model.STATUSES:
            for after in model.STATUSES:
                assert model.may_change(cause, before, after) == (before in sources and after in targets)
    # Undo is exactly the reverse of some declared transition.
    assert model.may_change("undo", model.RUNNING, model.PENDING)
    assert model.may_change("undo", model.QUEUED, model.COMPLETED)
    assert model.may_change("undo", model.PAUSED, model.QUEUED)
    assert not model.may_change("undo", model.PENDING, model.RUNNING)
    assert not model.may_change("undo", model.FAILED, model.COMPLETED)
    assert not model.may_change("no such cause", model.PENDING, model.RUNNING)
    # The requests' rules agree with the table.
    assert model.ALLOWED_FROM["start"] == model.TRANSITIONS["start"][0]
    assert model.ALLOWED_FROM["recover"] == model.TRANSITIONS["recover"][0]


def test_an_impossible_transition_is_a_logged_internal_error(core, caplog):
    home, _ = core

    async def scenario():
        h = Harness(home)
        created = await h.create("A")
        job = h.daemon.jobs.by_id[created["id"]]
        with caplog.at_level(logging.ERROR), pytest.raises(ImpossibleTransition):
            h.daemon.jobs.set_status(job, "run ended", model.COMPLETED)
        assert job.status == model.PENDING
        assert "internal error" in caplog.text and "run ended" in caplog.text
        with pytest.raises(ImpossibleTransition):
            h.daemon.jobs.set_status(job, "start", model.PAUSED, Change())

    run(scenario())


def test_statuses_change_only_in_jobs_set_status():
    """No module but jobs.py assigns a job's status."""
    import re

    folder = os.path.dirname(methods.__file__)
    offenders = []
    for name in os.listdir(folder):
        if name.endswith(".py") and name != "jobs.py":
            with open(os.path.join(folder, name)) as f:
                if re.search(r"\.status\s*=[^=]", f.read()):
                    offenders.append(name)
    assert offenders == []
