"""Who may do what, without root: admission from fake peer credentials, and a system bkmd's
rules for a member, in-process (the same with real users: tests/integration/test_system_mode.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from types import SimpleNamespace

import pytest
from bkmd import access, methods
from bkmd.app import Daemon
from bkmd.rpc import Dispatcher
from bkmd.server import Admission, _groups_of_uid
from bkmd.settings import Settings
from helpers import short_tempdir

from bkm import paths as bkm_paths

BKM_GID = 990
ANN, BOB = 1001, 1002


def groups_of(uid: int) -> set[int]:
    return {ANN: {100, BKM_GID}, BOB: {100}}.get(uid, set())


@pytest.mark.parametrize(
    "creds, admitted",
    [
        ((1, 1000, 1000), True),  # bkmd's own user
        ((1, 0, 0), True),  # root
        ((1, ANN, 100), True),  # a member through the group database (supplementary)
        ((1, BOB, BKM_GID), True),  # a member by the primary gid its process runs with
        ((1, BOB, 100), False),  # not a member
        ((1, 4242, 4242), False),  # a stranger
        (None, False),  # no credentials at all
    ],
)
def test_system_admission(creds, admitted):
    assert Admission({1000, 0}, BKM_GID, groups_of).admits(creds) is admitted


def test_without_the_group_only_bkmds_user_and_root_are_admitted():
    admission = Admission({1000, 0}, None, groups_of)
    assert admission.admits((1, 1000, 1000)) and admission.admits((1, 0, 0))
    assert not admission.admits((1, ANN, BKM_GID))


def test_groups_come_from_the_group_database_not_proc():
    """ProtectProc=invisible hides other users' /proc/PID/status from bkmd: the user's groups
    are looked up by uid instead."""
    assert os.getgid() in _groups_of_uid(os.getuid()) or os.getgid() == 0
    assert _groups_of_uid(2**31 - 7) == set()  # no such user: no groups, no error


def test_a_member_sees_only_their_jobs_and_changes_no_setting():
    member = access.Caller(ANN, 100, system=True)
    assert member.sees({"uid": ANN}) and not member.sees({"uid": BOB}) and not member.sees(None)
    assert access.Caller(0, 0, system=True).sees({"uid": BOB})
    assert access.Caller(BOB, 100, system=False).sees({"uid": ANN})  # a user's own bkmd
    with pytest.raises(access.Forbidden) as refused:
        member.check_admin("settings")
    assert refused.value.data == {"permission": "settings are root's to change on a system bkmd"}
    access.Caller(0, 0, system=True).check_admin("settings")


def test_jobs_run_as_bkmd_itself_unless_bkmd_is_root():
    assert access.run_as(None) is None
    assert access.run_as({"uid": os.geteuid(), "gid": os.getegid(), "user": "me"}) is None
    if os.geteuid() != 0:
        assert access.run_as({"uid": 0, "gid": 0, "user": "root"}) is None


def test_a_system_bkmd_in_process_keeps_members_apart():
    """Real methods and dispatcher, peers given as SO_PEERCRED would give them."""
    home = short_tempdir()
    os.makedirs(os.path.join(home, "src"))
    try:
        asyncio.run(asyncio.wait_for(_member_scenario(home), 10))
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _member_scenario(home: str) -> None:
    paths = bkm_paths.resolve(home=home, system=True, env={})
    daemon = Daemon(paths, [], Settings(paths.settings, {}))
    dispatcher = Dispatcher(methods.build(daemon), daemon.commit, lambda c: access.caller_of(c, True))
    ann, bob = SimpleNamespace(peer=(1, ANN, 100)), SimpleNamespace(peer=(1, BOB, 100))

    async def call(connection, method, **params):
        line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
        return json.loads(await dispatcher.handle(line, connection))

    if os.geteuid() == 0:  # as root, a job's paths are checked as its owner: give them theirs
        os.chown(home, BOB, 100)
    made = await call(bob, "job.create", name="bobs", type="rsync", source=f"{home}/src/", dest=f"{home}/b")
    assert made["result"]["owner"]["uid"] == BOB
    assert (await call(ann, "job.list"))["result"] == []
    for method in ("job.get", "job.start", "job.pause", "job.delete", "logs.read"):
        answer = await call(ann, method, job="bobs")
        assert answer["error"]["code"] == -32001, (method, answer)
    status = (await call(ann, "daemon.status"))["result"]
    assert status["jobs"] == 0 and status["recent"] == []
    refused = await call(ann, "settings.set", key="rsync_path", value="/bin/sh")
    assert refused["error"]["code"] == -32004 and refused["error"]["data"]["permission"]
    assert daemon.settings["rsync_path"] == "rsync"
    assert (await call(ann, "daemon.shutdown"))["error"]["code"] == -32004
    assert not daemon.stopping.is_set()
    assert [j["name"] for j in (await call(bob, "job.list"))["result"]] == ["bobs"]
