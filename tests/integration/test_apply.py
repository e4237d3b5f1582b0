"""Jobs as code through the real CLI and a real bkmd: bkm apply FILE and bkm export."""

import json
import os
import resource
import subprocess

import pytest
import yaml
from helpers import Bkmd, RawClient, bkm, create, program, short_tempdir, slow_tree, wait_for

FIELDS_LINE = (
    "the fields are name, type, source, dest, bwlimit, excludes, schedule, retries, retry_wait_seconds,"
    " max_age_seconds, hooks, healthcheck, notify, tool_args, mode, keep"
)


def jobs_file(home: str, text: str, name: str = "jobs-file.yaml") -> str:
    """A jobs file beside (never as) the store: BKM_HOME's jobs.yaml is bkmd's own."""
    path = os.path.join(home, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def listed(home: str) -> list[dict]:
    out = bkm(home, "job", "list", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(json.loads(out.stdout), key=lambda j: j["name"])


def folder(home: str, name: str) -> str:
    path = os.path.join(home, name)
    os.makedirs(path, exist_ok=True)
    return path


def test_one_plan_creates_updates_keeps_and_prunes(bkmd, data_dir):
    home = bkmd.home
    photos = create(home, "photos", "rsync", data_dir + "/", f"{home}/d-photos")
    docs = create(home, "docs", "rsync", data_dir, f"{home}/d-docs", "--exclude", "*.tmp")
    create(home, "old", "rsync", data_dir, f"{home}/d-old")
    path = jobs_file(
        home,
        f"""\
jobs:
  - name: photos
    type: rsync
    source: {data_dir}/
    dest: {home}/d-photos
    bwlimit: 100
    schedule: "30 2 * * *"
  - name: docs
    type: rsync
    source: {data_dir}
    dest: {home}/d-docs
    excludes: ["*.tmp"]
  - name: nightly
    type: rclone
    source: {data_dir}/
    dest: {home}/d-nightly
    retries: 2
    retry_wait_seconds: 5m
""",
    )
    plan = [
        "update     photos (bwlimit, schedule)",
        "unchanged  docs",
        "create     nightly",
        "delete     old",
    ]
    before = listed(home)
    dry = bkm(home, "apply", "--prune", "--dry-run", path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == plan + [
        "1 to create, 1 to update, 1 to delete, 1 unchanged; nothing was changed (dry run)"
    ]
    assert listed(home) == before  # a dry run changes nothing
    out = bkm(home, "apply", "--prune", path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == plan + ["1 created, 1 updated, 1 deleted, 1 unchanged"]
    updated = show(home, "photos")
    assert updated["id"] == photos["id"] and updated["bwlimit"] == 100 and updated["schedule"] == "30 2 * * *"
    assert updated["next_run_at"] is not None  # the new schedule is planned
    assert show(home, "docs") == {**docs, "runs": []}  # unchanged, not even touched
    new = show(home, "nightly")
    assert (new["type"], new["source"], new["status"]) == ("rclone", data_dir + "/", "pending")
    assert (new["retries"], new["retry_wait_seconds"], new["bwlimit"]) == (2, 300, 0)
    gone = bkm(home, "job", "show", "old")
    assert gone.returncode == 4 and "no such job: old" in gone.stderr


def test_two_bad_entries_are_both_reported_and_nothing_changes(bkmd, data_dir):
    home = bkmd.home
    create(home, "keep", "rsync", data_dir, f"{home}/d-keep")
    path = jobs_file(
        home,
        f"""\
jobs:
  - name: keep
    type: rsync
    source: {data_dir}
    dest: {home}/d-keep
    bwlimit: 500
  - name: relative
    type: rsync
    source: src/photos
    dest: {home}/d-rel
  - name: badcron
    type: rsync
    source: {data_dir}
    dest: {home}/d-cron
    schedule: "61 * * * *"
""",
    )
    before = listed(home)
    for args in ((path,), ("--dry-run", path), ("--prune", path)):
        out = bkm(home, "apply", *args)
        assert out.returncode == 2, out.stderr
        assert out.stdout == ""
        assert out.stderr.splitlines() == [
            f"bkm: error: {path}:9: entry 2 (relative): source: must be an absolute local path or a remote"
            " (host:path, remote:path)",
            f"bkm: error: {path}:15: entry 3 (badcron): schedule: is not a valid cron expression (Bad minute):"
            " '61 * * * *'",
            "hint: nothing was changed: fix these 2 problems and apply the file again",
        ]
        assert listed(home) == before  # keep's valid change was not made either


def test_every_problem_is_named_on_the_wire_by_entry_and_field(bkmd, data_dir):
    entries = [
        {"name": "a", "type": "rsync", "source": data_dir, "dest": bkmd.home + "/a", "bwlimt": 1},
        "not a job",
        {"name": "a", "type": "scp", "source": "/nonexistent/x", "dest": bkmd.home + "/b"},
    ]
    with RawClient(bkmd.socket) as client:
        for method in ("apply.plan", "apply.commit"):
            error = client.request(method, {"jobs": entries, "prune": True})["error"]
            assert error["code"] == -32003
            assert set(error["data"]) == {"jobs[0].bwlimt", "jobs[1]", "jobs[2].name", "jobs[2].type", "jobs[2].source"}
            assert error["data"]["jobs[2].name"] == "'a' is the name of entry 1 too: each job once"
        assert client.request("apply.commit", {"jobs": {"name": "a"}})["error"]["code"] == -32602
        assert client.request("apply.plan", {"jobs": [], "prune": "yes"})["error"]["code"] == -32602
        assert client.request("apply.plan", {})["error"]["code"] == -32602
        assert client.call("apply.plan", jobs=[]) == {
            "plan": [],
            "counts": {"create": 0, "update": 0, "unchanged": 0, "delete": 0, "skipped": 0},
            "committed": False,
        }
    assert bkmd.call("job.list") == []


def test_applying_the_same_file_twice_changes_nothing_the_second_time(bkmd, data_dir):
    home = bkmd.home
    path = jobs_file(
        home,
        f"""\
jobs:
  - name: one
    type: rsync
    source: {data_dir}/
    dest: {home}/d1
    schedule: "@daily"
    max_age_seconds: 26h
    hooks:
      after: ["true"]
  - name: two
    type: rsync
    source: {data_dir}/
    dest: {home}/d2
    notify: ["json://bkmuser:hunter22@localhost/notify"]
""",
    )
    first = bkm(home, "apply", path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "create     one",
        "create     two",
        "2 created, 0 updated, 0 deleted, 0 unchanged",
    ]
    before = listed(home)
    second = bkm(home, "apply", path, "--json")
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert [(s["action"], s["name"], s["fields"]) for s in result["plan"]] == [
        ("unchanged", "one", []),
        ("unchanged", "two", []),
    ]
    assert result["counts"] == {"create": 0, "update": 0, "unchanged": 2, "delete": 0, "skipped": 0}
    assert result["committed"] is True
    third = bkm(home, "apply", path)
    assert third.returncode == 0 and third.stdout.splitlines() == [
        "unchanged  one",
        "unchanged  two",
        "nothing to do: 2 unchanged",
    ]
    assert listed(home) == before  # not even updated_at moved


def test_export_piped_into_apply_is_a_no_op_and_round_trips_secrets(bkmd, data_dir):
    home = bkmd.home
    url = "json://bkmuser:s3cretpass@localhost:8080/notify"
    ping = "https://hc-ping.com/0f0e1d2c-3b4a-5968-7a8b-9c0d1e2f3a4b"
    create(
        home, "nightly", "rsync", data_dir + "/", f"{home}/d-nightly", "--schedule", "30 2 * * *",
        "--before", "echo 'starting' >&2", "--on-failure", "logger bkm failed", "--notify", url,
        "--healthcheck", ping, "--exclude", "*.tmp", "--tool-arg=--checksum", "--max-age", "26h",
        "--retries", "3", "--bwlimit", "2048",
    )  # fmt: skip
    create(home, "plain", "rclone", data_dir, f"{home}/d-plain")
    assert "s3cretpass" not in bkm(home, "job", "show", "nightly", "--json").stdout  # masked everywhere else
    exported = bkm(home, "export")
    assert exported.returncode == 0, exported.stderr
    assert "keep it private" in exported.stdout
    assert yaml.safe_load(exported.stdout) == {
        "jobs": [
            {
                "name": "nightly", "type": "rsync", "source": data_dir + "/", "dest": f"{home}/d-nightly",
                "bwlimit": 2048, "excludes": ["*.tmp"], "schedule": "30 2 * * *", "retries": 3,
                "retry_wait_seconds": 60, "max_age_seconds": 93600,
                "hooks": {"before": ["echo 'starting' >&2"], "on_failure": ["logger bkm failed"]},
                "healthcheck": ping, "notify": [url], "tool_args": ["--checksum"],
            },
            {
                "name": "plain", "type": "rclone", "source": data_dir, "dest": f"{home}/d-plain", "bwlimit": 0,
                "retries": 0, "retry_wait_seconds": 60,
            },
        ]
    }  # fmt: skip
    env = dict(os.environ, BKM_HOME=home)
    env.pop("BKM_SOCKET", None)
    bkm_cmd = " ".join(program("bkm"))
    for args in ("--dry-run", ""):
        piped = subprocess.run(
            f"{bkm_cmd} export | {bkm_cmd} apply {args} -", shell=True, capture_output=True, text=True, env=env
        )
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.splitlines() == ["unchanged  nightly", "unchanged  plain", "nothing to do: 2 unchanged"]
    # The settings the defaults come from may change: the file still says what the jobs are.
    assert bkm(home, "settings", "set", "default_bwlimit", "777").returncode == 0
    again = bkm(home, "apply", "--dry-run", "-", input=exported.stdout)
    assert again.returncode == 0 and again.stdout.endswith("nothing to do: 2 unchanged\n"), again.stdout
    # Applied to another bkmd, the file makes the same jobs, secrets whole: its export is the same.
    other = Bkmd(short_tempdir()).start()
    try:
        made = bkm(other.home, "apply", "-", input=exported.stdout)
        assert made.returncode == 0, made.stderr
        assert bkm(other.home, "export").stdout == exported.stdout
        assert bkm(other.home, "export", "--json").stdout == bkm(home, "export", "--json").stdout
    finally:
        other.stop()
    # Named jobs only; one that does not exist is exit 4.
    assert yaml.safe_load(bkm(home, "export", "plain").stdout)["jobs"][0]["name"] == "plain"
    assert "keep it private" not in bkm(home, "export", "plain").stdout
    missing = bkm(home, "export", "plain", "nosuch")
    assert missing.returncode == 4 and "no such job: nosuch" in missing.stderr


def test_a_running_job_is_skipped_with_exit_5_and_the_rest_is_applied(bkmd, data_dir):
    home = bkmd.home
    source = os.path.join(home, "slow")
    slow_tree(source)
    create(home, "busy", "rsync", source + "/", f"{home}/d-busy", "--bwlimit", "256")
    create(home, "old", "rsync", data_dir, f"{home}/d-old")
    path = jobs_file(
        home,
        f"""\
jobs:
  - name: busy
    type: rsync
    source: {source}/
    dest: {home}/d-busy
    bwlimit: 2048
  - name: fresh
    type: rsync
    source: {data_dir}/
    dest: {home}/d-fresh
""",
    )
    assert bkm(home, "job", "start", "busy").returncode == 0
    wait_for(lambda: show(home, "busy")["status"] == "running", 10, what="busy running")
    dry = bkm(home, "apply", "--dry-run", "--prune", path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == "update     busy (bwlimit)  would be skipped: running"
    out = bkm(home, "apply", "--prune", path)
    assert out.returncode == 5, out.stderr
    assert out.stdout.splitlines() == [
        "update     busy (bwlimit)  skipped: running",
        "create     fresh",
        "delete     old",
        "1 created, 0 updated, 1 deleted, 0 unchanged, 1 skipped",
    ]
    assert out.stderr.splitlines() == [
        "bkm: error: job 'busy' is running: cannot edit it; pause it first",
        "hint: the rest was applied; apply the file again once the run has ended (or after bkm job pause)",
    ]
    busy = show(home, "busy")
    assert busy["bwlimit"] == 256 and busy["status"] == "running"  # untouched, still running
    assert show(home, "fresh")["status"] == "pending"
    assert bkm(home, "job", "show", "old").returncode == 4
    # Paused, it may be changed as job edit would; then everything matches the file.
    assert bkm(home, "job", "pause", "busy").returncode == 0
    out = bkm(home, "apply", "--prune", path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["update     busy (bwlimit)", "unchanged  fresh"]
    assert show(home, "busy")["bwlimit"] == 2048 and show(home, "busy")["status"] == "paused"


def test_a_commit_that_cannot_be_saved_changes_nothing(home, data_dir):
    """One change: under RLIMIT_FSIZE the new job's record does not fit in the store's journal,
    so the update that came with it is undone too, in memory and on disk."""
    daemon = Bkmd(home)
    daemon.rlimits = {resource.RLIMIT_FSIZE: 64 * 1024}
    daemon.start()
    try:
        create(home, "keep", "rsync", data_dir, f"{home}/d-keep")
        before = listed(home)
        patterns = "".join(f"\n      - pattern-{i:03d}-{'x' * 480}" for i in range(200))
        path = jobs_file(
            home,
            f"""\
jobs:
  - name: keep
    type: rsync
    source: {data_dir}
    dest: {home}/d-keep
    bwlimit: 10
  - name: huge
    type: rsync
    source: {data_dir}
    dest: {home}/d-huge
    excludes:{patterns}
""",
        )
        out = bkm(home, "apply", path)
        assert out.returncode == 1 and "could not save" in out.stderr, out.stderr
        assert listed(home) == before
    finally:
        daemon.stop()
    daemon = Bkmd(home).start()
    try:
        assert listed(home) == before
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "text, error",
    [
        ("jobs:\n  - name: a\n    type: [rsync\n", "{path}:4:1: not valid YAML: did not find expected ',' or ']'"),
        ("", "{path} is empty: no jobs in it"),
        ("# only a comment\n", "{path} is empty: no jobs in it"),
        ("- name: a\n", "{path}: expected a mapping with 'jobs' at the top, not a list"),
        ("jobs:\n  name: a\n", "{path}:2: 'jobs' must be a list, not a mapping"),
        ("jobs:\n", "{path}:1: 'jobs' is empty; write 'jobs: []' to mean no jobs"),
        ("version: 1\njobs: []\n", "{path}:1: unknown key 'version': only 'jobs' is read"),
        (
            "jobs:\n  - name: a\n    bwlimit: 1\n    bwlimit: 2\n",
            "{path}:4: entry 1: bwlimit: given twice (also on line 3)",
        ),
    ],
    ids=["syntax", "empty", "comment only", "a list", "jobs a mapping", "jobs null", "unknown top key", "key twice"],
)
def test_a_file_of_the_wrong_shape_is_one_line_exit_2(home, text, error):
    """Found before bkmd is asked (none runs here)."""
    path = jobs_file(home, text)
    out = bkm(home, "apply", path)
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == "bkm: error: " + error.format(path=path)
    assert "Traceback" not in out.stderr


def test_an_unknown_key_is_one_line_with_its_place(bkmd, data_dir):
    path = jobs_file(
        bkmd.home,
        f"jobs:\n  - name: a\n    type: rsync\n    source: {data_dir}\n    dest: {bkmd.home}/d\n    bwlimt: 5\n",
    )
    out = bkm(bkmd.home, "apply", path)
    assert out.returncode == 2
    assert out.stderr == (
        f"bkm: error: {path}:6: entry 1 (a): bwlimt: unknown field; {FIELDS_LINE}\n"
        "hint: nothing was changed: fix this problem and apply the file again\n"
    )


def test_duplicate_names_are_one_line_naming_both_entries(bkmd, data_dir):
    entry = f"  - name: twice\n    type: rsync\n    source: {data_dir}\n    dest: {bkmd.home}/d\n"
    path = jobs_file(bkmd.home, "jobs:\n" + entry + entry)
    out = bkm(bkmd.home, "apply", path)
    assert out.returncode == 2
    assert out.stderr == (
        f"bkm: error: {path}:6: entry 2 (twice): name: 'twice' is the name of entry 1 too: each job once\n"
        "hint: nothing was changed: fix this problem and apply the file again\n"
    )
    assert bkmd.call("job.list") == []


def test_unreadable_file_and_wrong_type_change(bkmd, data_dir):
    missing = os.path.join(bkmd.home, "nope.yaml")
    out = bkm(bkmd.home, "apply", missing)
    assert out.returncode == 2 and out.stderr == f"bkm: error: cannot read {missing}: No such file or directory\n"
    create(bkmd.home, "t", "rsync", data_dir, f"{bkmd.home}/d")
    path = jobs_file(
        bkmd.home, f"jobs:\n  - name: t\n    type: rclone\n    source: {data_dir}\n    dest: {bkmd.home}/d\n"
    )
    out = bkm(bkmd.home, "apply", path)
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == (
        f"bkm: error: {path}:3: entry 1 (t): type: cannot change rsync to rclone: a job keeps its type;"
        " delete the job, or give this entry another name"
    )


def test_a_file_too_large_for_one_request_is_refused_before_bkmd_is_asked(home):
    long = "p" * 500
    entry = "  - name: j{i}\n    type: rsync\n    source: /s\n    dest: /d{i}\n    excludes: [" + long + "]\n"
    path = jobs_file(home, "jobs:\n" + "".join(entry.format(i=i) for i in range(2500)))
    out = bkm(home, "apply", path)
    assert out.returncode == 2
    assert out.stderr.startswith(f"bkm: error: {path}: too large to apply at once (")
    assert "bkmd reads at most 1024 KiB in one request" in out.stderr
