"""System mode with real second users: a member of group bkm does not become root.

Needs root (to add users and run a root bkmd); the same rules are unit-tested without root in
tests/unit/test_access.py.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess

import pytest
from helpers import Bkmd, bkm, program, short_tempdir, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
    reason="needs root, useradd and setpriv to act as real second users (the rules: tests/unit/test_access.py)",
)
MEMBERS = ("bkmt-ann", "bkmt-bob")


@pytest.fixture(scope="module")
def members():
    made_group = False
    try:
        grp.getgrnam("bkm")
    except KeyError:
        subprocess.run(["groupadd", "--system", "bkm"], check=True)
        made_group = True
    for name in MEMBERS:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["useradd", "-M", "-N", "-G", "bkm", "-s", "/usr/sbin/nologin", name], check=True)
    yield {name: pwd.getpwnam(name) for name in MEMBERS}
    for name in MEMBERS:
        subprocess.run(["userdel", name], capture_output=True)
    if made_group:
        subprocess.run(["groupdel", "bkm"], capture_output=True)


@pytest.fixture
def system(members):
    home = short_tempdir()
    os.chmod(home, 0o755)  # members reach their own folders below; the socket's folder is made 0750
    state = os.path.join(home, "state")
    daemon = Bkmd(state, "--system")
    os.makedirs(state)
    daemon.start()
    areas = {}
    for name, entry in members.items():
        area = os.path.join(home, name)
        os.makedirs(os.path.join(area, "src"))
        with open(os.path.join(area, "src", "mine.txt"), "w") as f:
            f.write(f"{name}'s file\n")
        for path in (area, os.path.join(area, "src"), os.path.join(area, "src", "mine.txt")):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(area, 0o700)
        areas[name] = area
    secret = os.path.join(home, "secret")
    os.makedirs(secret, mode=0o700)
    with open(os.path.join(secret, "shadow-copy"), "w") as f:
        f.write("root only\n")
    yield daemon, areas, secret
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def as_member(name: str, daemon: Bkmd, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["setpriv", f"--reuid={name}", f"--regid={pwd.getpwnam(name).pw_gid}", "--init-groups"]
        + program("bkm")
        + ["--system", "--home", daemon.home, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def as_root(daemon: Bkmd, *args: str) -> subprocess.CompletedProcess:
    return bkm(None, "--system", "--home", daemon.home, *args)


def test_the_socket_admits_members_and_is_group_bkm_0660(system):
    daemon, _, _ = system
    st = os.stat(daemon.socket)
    assert st.st_mode & 0o777 == 0o660 and st.st_gid == grp.getgrnam("bkm").gr_gid
    out = as_member("bkmt-ann", daemon, "job", "list", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_a_member_cannot_read_roots_files_through_a_job(system):
    daemon, areas, secret = system
    ann = areas["bkmt-ann"]
    out = as_member(
        "bkmt-ann",
        daemon,
        "job",
        "create",
        "steal",
        "--type",
        "rsync",
        "--source",
        secret + "/",
        "--dest",
        ann + "/loot",
    )
    assert out.returncode == 2 and "source: is not readable" in out.stderr, out.stderr
    # A file root put among ann's own: her job runs as her, so it stays unread.
    with open(os.path.join(ann, "src", "root-only.txt"), "w") as f:
        f.write("root only\n")
    os.chmod(os.path.join(ann, "src", "root-only.txt"), 0o600)
    created = as_member(
        "bkmt-ann",
        daemon,
        "job",
        "create",
        "mine",
        "--type",
        "rsync",
        "--source",
        ann + "/src/",
        "--dest",
        ann + "/copy",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["owner"] == {"uid": pwd.getpwnam("bkmt-ann").pw_uid, "user": "bkmt-ann"}
    run = as_member("bkmt-ann", daemon, "job", "start", "mine", "--wait")
    assert run.returncode == 1 and "Permission denied" in run.stderr, run.stderr
    copied = os.listdir(os.path.join(ann, "copy"))
    assert "mine.txt" in copied and "root-only.txt" not in copied
    assert os.stat(os.path.join(ann, "copy", "mine.txt")).st_uid == pwd.getpwnam("bkmt-ann").pw_uid


def test_a_member_cannot_change_settings_or_stop_bkmd(system):
    daemon, _, _ = system
    for args in (
        ("settings", "set", "rsync_path", "/bin/sh"),
        ("settings", "reset"),
        ("settings", "reset", "rsync_args"),
    ):
        out = as_member("bkmt-ann", daemon, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "permission denied: settings are root's to change" in out.stderr
    assert as_root(daemon, "settings", "get", "rsync_path").stdout.strip() == "rsync"
    out = as_member("bkmt-ann", daemon, "daemon", "stop")
    assert out.returncode == 2 and "permission denied" in out.stderr
    assert as_root(daemon, "settings", "set", "max_concurrent_jobs", "3").returncode == 0
    wait_for(lambda: daemon.proc.poll() is None, what="bkmd still running")


def test_a_member_sees_and_touches_only_their_own_jobs(system):
    daemon, areas, _ = system
    bob = areas["bkmt-bob"]
    out = as_member(
        "bkmt-bob",
        daemon,
        "job",
        "create",
        "bobs",
        "--type",
        "rsync",
        "--source",
        bob + "/src/",
        "--dest",
        bob + "/copy",
    )
    assert out.returncode == 0, out.stderr
    listed = json.loads(as_member("bkmt-ann", daemon, "job", "list", "--json").stdout)
    assert [j["name"] for j in listed] == []
    for args in (
        ("job", "show", "bobs"),
        ("job", "start", "bobs"),
        ("job", "pause", "bobs"),
        ("job", "delete", "bobs", "--yes"),
        ("job", "edit", "bobs", "--bwlimit", "1"),
        ("logs", "bobs"),
    ):
        denied = as_member("bkmt-ann", daemon, *args)
        assert denied.returncode == 4 and "no such job" in denied.stderr, (args, denied.stderr)
    status = json.loads(as_member("bkmt-ann", daemon, "status", "--json").stdout)
    assert status["jobs"] == 0 and all(n == 0 for n in status["counts"].values())
    assert all(e.get("name") != "bobs" for e in status["recent"])
    # Root sees and acts on every job.
    assert [j["name"] for j in json.loads(as_root(daemon, "job", "list", "--json").stdout)] == ["bobs"]
    assert as_root(daemon, "job", "show", "bobs").returncode == 0
    assert as_member("bkmt-bob", daemon, "job", "delete", "bobs", "--yes").returncode == 0


def test_a_members_hooks_and_dry_run_run_as_that_member(system):
    daemon, areas, _ = system
    ann = areas["bkmt-ann"]
    hook = f"id -u > {ann}/before.tmp && env >> {ann}/before.tmp && mv {ann}/before.tmp {ann}/before.uid"
    created = as_member(
        "bkmt-ann", daemon, "job", "create", "hooked", "--type", "rsync", "--source", ann + "/src/",
        "--dest", ann + "/copy2", "--after", f"id -u > {ann}/after.tmp && mv {ann}/after.tmp {ann}/after.uid",
        "--before", hook,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    dry = as_member("bkmt-ann", daemon, "job", "start", "hooked", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"files": 1, "bytes": len("bkmt-ann's file\n")}
    run = as_member("bkmt-ann", daemon, "job", "start", "hooked", "--wait")
    assert run.returncode == 0, run.stderr
    uid = str(pwd.getpwnam("bkmt-ann").pw_uid)
    wait_for(lambda: os.path.exists(os.path.join(ann, "after.uid")), 10, what="the after hook")
    for name in ("after.uid", "before.uid"):
        with open(os.path.join(ann, name)) as f:
            assert f.readline().strip() == uid
    # Nothing of root's environment beyond what a login gives (bkmd here runs with pytest's).
    with open(os.path.join(ann, "before.uid")) as f:
        names = {line.split("=", 1)[0] for line in f.read().splitlines()[1:] if "=" in line}
    assert "PYTEST_XDIST_WORKER" not in names and "PYTEST_CURRENT_TEST" not in names
    assert {"HOME", "USER", "PATH", "BKM_JOB", "BKM_STATUS"} <= names
    # bob cannot test, pause the schedule of, or dry-run ann's job: it does not exist for him.
    others = (("notify", "test", "hooked"), ("schedule", "pause", "hooked"), ("job", "start", "hooked", "--dry-run"))
    for args in others:
        out = as_member("bkmt-bob", daemon, *args)
        assert out.returncode == 4 and "no such job" in out.stderr, (args, out.stderr)
    # root's notification URLs are root's: a member cannot send test messages to them.
    out = as_member("bkmt-bob", daemon, "notify", "test")
    assert out.returncode == 2 and "permission denied" in out.stderr, out.stderr


def test_apply_and_export_keep_to_the_callers_own_jobs(system):
    daemon, areas, _ = system
    ann, bob = areas["bkmt-ann"], areas["bkmt-bob"]
    url = "json://bob:bobs-password@localhost/notify"
    made = as_member(
        "bkmt-bob", daemon, "job", "create", "bobs", "--type", "rsync", "--source", bob + "/src/",
        "--dest", bob + "/copy", "--notify", url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert as_root(daemon, "job", "create", "roots", "--type", "rsync", "--source", ann + "/src/",
                   "--dest", "/tmp/bkmt-roots-copy").returncode == 0  # fmt: skip
    # ann's file: her new job is hers; --prune deletes none of bob's or root's.
    path = os.path.join(ann, "jobs-file.yaml")
    with open(path, "w") as f:
        f.write(f"jobs:\n  - name: anns\n    type: rsync\n    source: {ann}/src/\n    dest: {ann}/copy\n")
    os.chown(path, pwd.getpwnam("bkmt-ann").pw_uid, -1)
    out = as_member("bkmt-ann", daemon, "apply", "--prune", path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["create     anns", "1 created, 0 updated, 0 deleted, 0 unchanged"]
    shown = json.loads(as_root(daemon, "job", "show", "anns", "--json").stdout)
    assert shown["owner"]["user"] == "bkmt-ann"
    # Her export is her jobs only; bob's password reaches bob, nobody else.
    assert [j["name"] for j in yaml_jobs(as_member("bkmt-ann", daemon, "export"))] == ["anns"]
    assert as_member("bkmt-ann", daemon, "export", "bobs").returncode == 4
    assert yaml_jobs(as_member("bkmt-bob", daemon, "export"))[0]["notify"] == [url]
    # Root exports root's jobs only: a member's hooks, applied by root, would run as root.
    out = as_root(daemon, "export")
    assert "bobs-password" not in out.stdout and "2 job(s) of other users left out" in out.stderr
    out = as_root(daemon, "export", "bobs")
    assert out.returncode == 2 and "belongs to bkmt-bob: export it as bkmt-bob" in out.stderr
    # A name another user's job has is taken, as for job create (exit 5); nothing changes.
    with open(path, "a") as f:
        f.write(f"  - name: bobs\n    type: rsync\n    source: {ann}/src/\n    dest: {ann}/copy2\n")
    out = as_member("bkmt-ann", daemon, "apply", path)
    assert out.returncode == 5 and "a job named 'bobs' already exists" in out.stderr, out.stderr
    # Root's --prune deletes root's own jobs only: the members' are theirs.
    empty = os.path.join(ann, "empty.yaml")
    with open(empty, "w") as f:
        f.write("jobs: []\n")
    out = as_root(daemon, "apply", "--prune", empty)
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "delete     roots", out.stdout
    names = sorted(j["name"] for j in json.loads(as_root(daemon, "job", "list", "--json").stdout))
    assert names == ["anns", "bobs"]


def yaml_jobs(out: subprocess.CompletedProcess) -> list[dict]:
    import yaml

    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["jobs"]
