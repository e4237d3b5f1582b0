"""bkm job ... through a real bkmd: the contract's behaviour, formats and exit codes."""

import json
import os
import re
import subprocess
import time

import pytest
from helpers import RawClient, bkm, program, run_in_terminal, wait_for

JOB_KEYS = {
    "id",
    "name",
    "type",
    "source",
    "dest",
    "bwlimit",
    "excludes",
    "status",
    "created_at",
    "updated_at",
    "progress",
    "last_run",
    "owner",  # the contract's system-mode section: {"uid", "user"}
    "waiting",  # why a queued job waits, else null
    # Schedules and retries (the contract's "Schedules and retries")
    "schedule",
    "next_run_at",
    "schedule_paused_until",
    "retries",
    "retry_wait_seconds",
    "retry_at",
    # Hooks, notifications, stale backups (the contract's "Hooks and notifications")
    "max_age_seconds",
    "stale",
    "last_success_at",
    "hooks",
    "healthcheck",
    "notify",
    "tool_args",  # the contract's "Everyday comfort"
    # Versions (the contract's "Versions: modes, snapshots, restore, verify")
    "mode",
    "keep",
    "last_verify",
    "queue_position",  # a queued job's place in the queue, 1 first; else null
}
PROGRESS_KEYS = {"percent", "bytes_transferred", "total_bytes", "speed_bytes", "eta_seconds"}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def create(home, name, source, dest, *extra):
    out = bkm(home, "job", "create", name, "--type", "rsync", "--source", source, "--dest", dest, *extra, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_create_prints_the_job_in_the_contracts_shape(bkmd, data_dir):
    job = create(
        bkmd.home,
        "photos",
        data_dir + "/",
        bkmd.home + "/dst",
        "--bwlimit",
        "500",
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache/",
    )
    assert set(job) == JOB_KEYS
    assert set(job["progress"]) == PROGRESS_KEYS
    assert re.fullmatch(r"[0-9a-f]{32}", job["id"])
    assert job["name"] == "photos" and job["type"] == "rsync" and job["status"] == "pending"
    assert job["source"] == data_dir + "/"  # the trailing slash matters to rsync: kept
    assert job["bwlimit"] == 500 and job["excludes"] == ["*.tmp", "cache/"]
    assert STAMP.match(job["created_at"]) and job["created_at"] == job["updated_at"]
    assert job["progress"] == {
        "percent": 0.0,
        "bytes_transferred": 0,
        "total_bytes": 0,
        "speed_bytes": 0,
        "eta_seconds": None,
    }
    assert job["last_run"] is None


def test_show_by_name_and_by_id(bkmd, data_dir):
    job = create(bkmd.home, "docs", data_dir, bkmd.home + "/dst")
    for ref in ("docs", job["id"]):
        out = bkm(bkmd.home, "job", "show", ref, "--json")
        # show adds the run history to the contract's fields
        assert out.returncode == 0 and json.loads(out.stdout) == {**job, "runs": []}
    human = bkm(bkmd.home, "job", "show", "docs")
    assert "docs" in human.stdout and job["id"] in human.stdout and "pending" in human.stdout


def test_relative_paths_are_made_absolute_by_the_client(bkmd, data_dir):
    out = subprocess.run(
        program("bkm") + ["job", "create", "rel", "--type", "rsync", "--source", "src/", "--dest", "out", "--json"],
        cwd=bkmd.home,
        env=dict(os.environ, BKM_HOME=bkmd.home),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["source"] == os.path.join(bkmd.home, "src") + "/"
    assert job["dest"] == os.path.join(bkmd.home, "out")


def test_list_is_newest_first_and_filters_by_status(bkmd, data_dir):
    for name in ("first", "second", "third"):
        create(bkmd.home, name, data_dir, bkmd.home + "/" + name)
    names = [j["name"] for j in json.loads(bkm(bkmd.home, "job", "list", "--json").stdout)]
    assert names == ["third", "second", "first"]
    assert bkm(bkmd.home, "job", "edit", "first", "--bwlimit", "10").returncode == 0
    names = [j["name"] for j in json.loads(bkm(bkmd.home, "job", "list", "--json").stdout)]
    assert names == ["first", "third", "second"]
    pending = json.loads(bkm(bkmd.home, "job", "list", "--status", "pending", "--json").stdout)
    assert len(pending) == 3
    assert json.loads(bkm(bkmd.home, "job", "list", "--status", "running", "--status", "failed", "--json").stdout) == []
    none = bkm(bkmd.home, "job", "list", "--status", "running")
    assert none.returncode == 0 and "no jobs with status running" in none.stdout
    bad = bkm(bkmd.home, "job", "list", "--status", "sleeping")
    assert bad.returncode == 2 and "status" in bad.stderr


def test_empty_list_says_how_to_create_a_job(bkmd):
    out = bkm(bkmd.home, "job", "list")
    assert out.returncode == 0
    assert "no jobs yet" in out.stdout and "bkm job create" in out.stdout
    assert json.loads(bkm(bkmd.home, "job", "list", "--json").stdout) == []


def test_table_cuts_long_values_and_json_keeps_them(bkmd, data_dir):
    long_name = "n" * 100
    deep = os.path.join(bkmd.home, "d" * 60, "e" * 60)
    os.makedirs(os.path.dirname(deep))
    create(bkmd.home, long_name, data_dir, deep)
    table = bkm(bkmd.home, "job", "list").stdout
    header, row = table.splitlines()
    assert header.split() == ["NAME", "TYPE", "STATUS", "PROGRESS", "NEXT", "RUN", "SOURCE", "DEST", "UPDATED"]
    assert long_name not in row and "…" in row and deep not in row
    job = json.loads(bkm(bkmd.home, "job", "list", "--json").stdout)[0]
    assert job["name"] == long_name and job["dest"] == deep


def test_edit_changes_fields_and_refreshes_updated_at(bkmd, data_dir):
    job = create(bkmd.home, "e", data_dir, bkmd.home + "/dst", "--exclude", "a")
    wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) != job["updated_at"], 3)
    out = bkm(
        bkmd.home,
        "job",
        "edit",
        job["id"],
        "--dest",
        bkmd.home + "/other",
        "--bwlimit",
        "0",
        "--exclude",
        "x",
        "--exclude",
        "y",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    edited = json.loads(out.stdout)
    assert edited["dest"] == bkmd.home + "/other" and edited["excludes"] == ["x", "y"]
    assert edited["updated_at"] > job["updated_at"] and edited["created_at"] == job["created_at"]
    cleared = json.loads(bkm(bkmd.home, "job", "edit", "e", "--clear-excludes", "--name", "f", "--json").stdout)
    assert cleared["excludes"] == [] and cleared["name"] == "f" and cleared["id"] == job["id"]
    nothing = bkm(bkmd.home, "job", "edit", "f")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


def test_edit_validates_like_create(bkmd, data_dir):
    create(bkmd.home, "one", data_dir, bkmd.home + "/d1")
    create(bkmd.home, "two", data_dir, bkmd.home + "/d2")
    bad = bkm(bkmd.home, "job", "edit", "one", "--source", "/does/not/exist", "--bwlimit", "x")
    assert bad.returncode == 2 and "source:" in bad.stderr and "bwlimit:" in bad.stderr
    taken = bkm(bkmd.home, "job", "edit", "one", "--name", "two")
    assert taken.returncode == 5


@pytest.mark.parametrize(
    "args, field, message",
    [
        (["--type", "rsync", "--source", "{src}", "--dest", "{home}/d"], "name", "is required"),
        (["x" * 129, "--type", "rsync", "--source", "{src}", "--dest", "{home}/d"], "name", "at most 128"),
        (["a/b", "--type", "rsync", "--source", "{src}", "--dest", "{home}/d"], "name", "'/'"),
        (["a\x1bb", "--type", "rsync", "--source", "{src}", "--dest", "{home}/d"], "name", "control"),
        (["--type", "rsync", "--source", "{src}", "--dest", "{home}/d", "--", "-x"], "name", "start with '-'"),
        (["n", "--source", "{src}", "--dest", "{home}/d"], "type", "is required"),
        (["n", "--type", "scp", "--source", "{src}", "--dest", "{home}/d"], "type", "rsync, rclone"),
        (["n", "--type", "rsync", "--dest", "{home}/d"], "source", "is required"),
        (["n", "--type", "rsync", "--source", "{home}/missing", "--dest", "{home}/d"], "source", "does not exist"),
        (["n", "--type", "rsync", "--source", "-e sh", "--dest", "{home}/d"], "source", "start with '-'"),
        (["n", "--type", "rsync", "--source", "{src}"], "dest", "is required"),
        (["n", "--type", "rsync", "--source", "{src}", "--dest", "{home}/no/such"], "dest", "parent"),
        (["n", "--type", "rsync", "--source", "{src}", "--dest", "--rsh=x"], "dest", "start with '-'"),
        (
            ["n", "--type", "rsync", "--source", "{src}", "--dest", "{home}/d", "--bwlimit", "fast"],
            "bwlimit",
            "whole number",
        ),
        (
            ["n", "--type", "rsync", "--source", "{src}", "--dest", "{home}/d", "--bwlimit", "-5"],
            "bwlimit",
            "0 (unlimited) or more",
        ),
        (
            ["n", "--type", "rsync", "--source", "{src}", "--dest", "{home}/d", "--bwlimit", "1.5"],
            "bwlimit",
            "whole number",
        ),
    ],
)
def test_each_validation_rule_names_its_field(bkmd, data_dir, args, field, message):
    args = [a.format(src=data_dir, home=bkmd.home) for a in args]
    out = bkm(bkmd.home, "job", "create", *args)
    assert out.returncode == 2, out
    assert f"{field}: " in out.stderr and message in out.stderr
    assert out.stderr.startswith("bkm: error: ") and "Traceback" not in out.stderr
    assert json.loads(bkm(bkmd.home, "job", "list", "--json").stdout) == []


def test_unreadable_source_and_unwritable_dest(home):
    """Permission checks are the daemon's, as the user it runs as: run it as an unprivileged one."""
    import shutil

    from helpers import Bkmd

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run bkmd as an unprivileged user")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(as_nobody + program("bkmd") + ["--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this checkout's Python cannot be run by uid 65534 (a private parent folder)")
    os.chown(home, 65534, 65534)
    locked = os.path.join(home, "locked")
    os.makedirs(locked, mode=0o700)  # root's: the daemon's user can neither read nor write it
    daemon = Bkmd(home, env={})
    daemon.prefix = as_nobody
    daemon.start()
    try:
        out = bkm(home, "job", "create", "p", "--type", "rsync", "--source", locked, "--dest", locked + "/x")
        assert out.returncode == 2
        assert f"source: is not readable: {locked}" in out.stderr
        assert "dest: does not exist and its parent folder is not writable" in out.stderr
    finally:
        daemon.stop()


def test_every_violation_is_reported_at_once(bkmd):
    out = bkm(
        bkmd.home,
        "job",
        "create",
        "--type",
        "ftp",
        "--source",
        "/nope",
        "--dest",
        "/nope/deeper/x",
        "--bwlimit",
        "lots",
        "--json",
    )
    assert out.returncode == 2
    for field in ("name", "type", "source", "dest", "bwlimit"):
        assert f"{field}: " in out.stderr
    assert len(out.stderr.splitlines()) <= 2  # one error line, maybe a hint
    assert out.stdout == ""


def test_remote_paths_are_not_checked_locally(bkmd):
    out = bkm(
        bkmd.home,
        "job",
        "create",
        "r",
        "--type",
        "rclone",
        "--source",
        "b2:bucket/dir",
        "--dest",
        "backup@host:/srv/x",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["source"] == "b2:bucket/dir"


def test_duplicate_name_is_a_conflict(bkmd, data_dir):
    create(bkmd.home, "dup", data_dir, bkmd.home + "/d")
    out = bkm(bkmd.home, "job", "create", "dup", "--type", "rsync", "--source", data_dir, "--dest", bkmd.home + "/e")
    assert out.returncode == 5 and "already exists" in out.stderr


@pytest.mark.parametrize(
    "command",
    [["job", "show", "ghost"], ["job", "edit", "ghost", "--bwlimit", "1"], ["job", "delete", "ghost", "--yes"]],
)
def test_unknown_job_is_exit_4(bkmd, command):
    out = bkm(bkmd.home, *command)
    assert out.returncode == 4 and out.stderr.startswith("bkm: error: no such job: ghost")


@pytest.mark.parametrize(
    "command", [["job", "list"], ["job", "show", "x"], ["status"], ["settings", "show"], ["daemon", "stop"]]
)
def test_daemon_down_is_exit_3_with_a_hint(home, command):
    out = bkm(home, *command)
    assert out.returncode == 3
    first, hint = out.stderr.splitlines()
    assert first.startswith("bkm: error: bkmd is not running")
    assert hint == f"hint: start it with: bkmd --home {home} --detach"


def test_delete_refuses_without_a_terminal_and_without_yes(bkmd, data_dir):
    create(bkmd.home, "d", data_dir, bkmd.home + "/dst")
    out = bkm(bkmd.home, "job", "delete", "d")
    assert out.returncode == 2 and "--yes" in out.stderr
    assert bkm(bkmd.home, "job", "show", "d").returncode == 0
    out = bkm(bkmd.home, "job", "delete", "d", "--yes")
    assert out.returncode == 0 and "deleted job d" in out.stdout
    assert bkm(bkmd.home, "job", "show", "d").returncode == 4


def test_delete_asks_on_a_terminal(bkmd, data_dir):
    create(bkmd.home, "keepme", data_dir, bkmd.home + "/d1")
    code, screen = run_in_terminal(bkmd.home, ["job", "delete", "keepme"], prompt=b"[y/N]", reply=b"n")
    assert "Delete job keepme? [y/N]" in screen and code == 0
    assert bkm(bkmd.home, "job", "show", "keepme").returncode == 0
    code, screen = run_in_terminal(bkmd.home, ["job", "delete", "keepme"], prompt=b"[y/N]", reply=b"y")
    assert code == 0 and "deleted job keepme" in screen
    assert bkm(bkmd.home, "job", "show", "keepme").returncode == 4


def test_ctrl_c_at_the_prompt_is_quiet_130(bkmd, data_dir):
    create(bkmd.home, "x", data_dir, bkmd.home + "/d1")
    code, screen = run_in_terminal(bkmd.home, ["job", "delete", "x"], prompt=b"[y/N]")
    assert code == 130 and "Traceback" not in screen
    assert bkm(bkmd.home, "job", "show", "x").returncode == 0


def test_closed_pipe_prints_no_traceback(bkmd, data_dir):
    creates = [
        {
            "jsonrpc": "2.0",
            "method": "job.create",
            "id": i,
            "params": {
                "name": f"job-{i:04d}-{'x' * 20}",
                "type": "rsync",
                "source": data_dir,
                "dest": f"{bkmd.home}/d{i}",
            },
        }
        for i in range(1500)
    ]
    with RawClient(bkmd.socket) as client:
        assert all("result" in r for r in client.exchange(json.dumps(creates).encode() + b"\n"))
    for args in ("job list", "job list --json"):
        out = subprocess.run(
            f"{' '.join(program('bkm'))} {args} | head -1",
            shell=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, BKM_HOME=bkmd.home),
            timeout=60,
        )
        assert out.stderr == "" and len(out.stdout.splitlines()) == 1
