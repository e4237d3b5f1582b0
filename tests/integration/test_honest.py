"""Honest outcomes and safe defaults (issue 10): each case found in a day of real use."""

from __future__ import annotations

import json
import os

import pytest
from helpers import bkm, create


def _create(home: str, *args: str):
    return bkm(home, "job", "create", *args)


def test_a_symlink_source_without_a_slash_is_refused_with_the_slash_form(bkmd, data_dir):
    link = os.path.join(bkmd.home, "link")
    os.symlink(data_dir, link)
    out = _create(bkmd.home, "l", "--type", "rsync", "--source", link, "--dest", bkmd.home + "/d")
    assert out.returncode == 2
    assert "source: is a symbolic link" in out.stderr and f"give it as {link}/" in out.stderr
    assert (
        _create(bkmd.home, "l", "--type", "rsync", "--source", link + "/", "--dest", bkmd.home + "/d").returncode == 0
    )


@pytest.mark.parametrize("inside", ["", "/backup", "/sub/deeper"])
def test_a_destination_inside_its_source_is_refused(bkmd, data_dir, inside):
    out = _create(bkmd.home, "nest", "--type", "rsync", "--source", data_dir + "/", "--dest", data_dir + inside)
    assert out.returncode == 2 and "dest:" in out.stderr and "source" in out.stderr.split("dest:")[1]
    assert json.loads(bkm(bkmd.home, "job", "list", "--json").stdout) == []


def test_editing_a_destination_into_the_source_is_refused(bkmd, data_dir):
    create(bkmd.home, "j", "rsync", data_dir + "/", bkmd.home + "/dst")
    out = bkm(bkmd.home, "job", "edit", "j", "--dest", data_dir + "/copy")
    assert out.returncode == 2 and "inside the source" in out.stderr
    other = os.path.join(bkmd.home, "elsewhere")
    os.makedirs(other)
    out = bkm(bkmd.home, "job", "edit", "j", "--source", bkmd.home + "/")  # dst is inside home
    assert out.returncode == 2 and "inside the source" in out.stderr
    assert bkm(bkmd.home, "job", "edit", "j", "--source", other + "/").returncode == 0


def test_a_sibling_with_a_common_prefix_is_not_inside(bkmd, data_dir):
    """/x/src and /x/src-backup share a prefix, not a folder."""
    assert (
        _create(bkmd.home, "s", "--type", "rsync", "--source", data_dir, "--dest", data_dir + "-backup").returncode == 0
    )


@pytest.mark.parametrize(
    "name, problem",
    [
        ("   ", "blank"),
        (" photos", "start or end with a space"),
        ("photos ", "start or end with a space"),
        ("4f0c2a9e0d6b4c1c9a1f7e3b5d2c8a10", "look like a job id"),
    ],
)
def test_names_that_break_things_are_refused(bkmd, data_dir, name, problem):
    out = _create(bkmd.home, name, "--type", "rsync", "--source", data_dir, "--dest", bkmd.home + "/d")
    assert out.returncode == 2 and problem in out.stderr


def test_a_name_equal_to_another_jobs_id_cannot_hide_it(bkmd, data_dir):
    first = create(bkmd.home, "first", "rsync", data_dir, bkmd.home + "/d1")
    out = _create(bkmd.home, first["id"], "--type", "rsync", "--source", data_dir, "--dest", bkmd.home + "/d2")
    assert out.returncode == 2
    assert json.loads(bkm(bkmd.home, "job", "show", first["id"], "--json").stdout)["name"] == "first"


@pytest.mark.parametrize(
    "value, stored",
    [
        ("-e ssh", ["-e", "ssh"]),
        ('-e "ssh -p 2222"', ["-e", "ssh -p 2222"]),
        ("-h", ["-h"]),
        ("--help", ["--help"]),
        ('["--checksum"]', ["--checksum"]),
    ],
)
def test_settings_set_takes_the_value_verbatim(bkmd, value, stored):
    out = bkm(bkmd.home, "settings", "set", "rsync_args", value)
    assert out.returncode == 0, out.stderr
    assert json.loads(bkm(bkmd.home, "settings", "get", "rsync_args", "--json").stdout) == stored


def test_settings_set_never_exits_0_without_setting(bkmd):
    out = bkm(bkmd.home, "settings", "set", "rsync_args", "-e", "ssh")  # two words, unquoted
    assert out.returncode == 2 and "one VALUE" in out.stderr
    assert json.loads(bkm(bkmd.home, "settings", "get", "rsync_args", "--json").stdout) == []
    answer = bkm(bkmd.home, "settings", "set", "--json", "keep_runs", "5")
    assert answer.returncode == 0 and json.loads(answer.stdout) == {"key": "keep_runs", "value": 5}
    assert "VALUE is taken verbatim" in bkm(bkmd.home, "settings", "set", "--help").stdout


def test_a_minimal_hand_written_store_entry_loads_and_is_completed(home, data_dir):
    from helpers import Bkmd

    with open(os.path.join(home, "jobs.yaml"), "w") as f:
        f.write(
            "version: 1\n"
            "jobs:\n"
            f"  - name: hand\n    type: rsync\n    source: {data_dir}/\n    dest: {home}/dst\n"
            f"  - name: stamped\n    type: rclone\n    source: {data_dir}\n    dest: {home}/d2\n"
            "    created_at: 2026-11-29 02:30:00\n"
        )
    daemon = Bkmd(home).start()
    try:
        jobs = {j["name"]: j for j in json.loads(bkm(home, "job", "list", "--json").stdout)}
        assert set(jobs) == {"hand", "stamped"}
        assert jobs["hand"]["status"] == "pending" and len(jobs["hand"]["id"]) == 32
        assert jobs["hand"]["bwlimit"] == 0 and jobs["hand"]["excludes"] == []
        assert jobs["stamped"]["created_at"] == "2026-11-29T02:30:00Z"
        with open(os.path.join(home, "jobs.yaml")) as f:
            written = f.read()
        assert jobs["hand"]["id"] in written  # written back: the id stays the same next time
        out = bkm(home, "job", "start", "hand", "--wait")
        assert out.returncode == 0, out.stderr
    finally:
        daemon.stop()


def _settings_file(home: str) -> str:
    return os.path.join(home, "settings.yaml")


def test_sighup_reloads_settings_and_never_stops_bkmd(bkmd, data_dir):
    import signal

    from helpers import wait_for

    create(bkmd.home, "slow", "rsync", data_dir + "/", bkmd.home + "/dst", "--bwlimit", "1")
    with open(os.path.join(data_dir, "big.bin"), "wb") as f:
        f.write(os.urandom(256 * 1024))
    assert bkm(bkmd.home, "job", "start", "slow").returncode == 0
    with open(_settings_file(bkmd.home), "w") as f:
        f.write("max_concurrent_jobs: 3\n")
    bkmd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded settings" in bkmd.stderr(), what="the reload in bkmd's log")
    assert bkmd.proc.poll() is None
    assert bkm(bkmd.home, "settings", "get", "max_concurrent_jobs").stdout.strip() == "3"
    assert json.loads(bkm(bkmd.home, "job", "show", "slow", "--json").stdout)["status"] == "running"
    assert bkm(bkmd.home, "job", "pause", "slow").returncode == 0


def test_a_hand_edit_is_never_overwritten_by_settings_set(bkmd):
    assert bkm(bkmd.home, "settings", "set", "keep_runs", "7").returncode == 0
    with open(_settings_file(bkmd.home), "a") as f:
        f.write("log_backups: 9\n")
    assert bkm(bkmd.home, "settings", "set", "default_bwlimit", "100").returncode == 0
    values = json.loads(bkm(bkmd.home, "settings", "show", "--json").stdout)
    assert (values["keep_runs"], values["log_backups"], values["default_bwlimit"]) == (7, 9, 100)
    with open(_settings_file(bkmd.home)) as f:
        text = f.read()
    assert "log_backups: 9" in text and "default_bwlimit: 100" in text


def test_a_hand_edit_that_does_not_parse_is_refused_with_every_problem(bkmd):
    bad = "max_concurrent_jobs: 0\nprogress_interval: fast\n"
    with open(_settings_file(bkmd.home), "w") as f:
        f.write(bad)
    out = bkm(bkmd.home, "settings", "set", "keep_runs", "7")
    assert out.returncode == 1 and "changed by hand and does not parse" in out.stderr
    assert "bkm settings reload" in out.stderr
    with open(_settings_file(bkmd.home)) as f:
        assert f.read() == bad
    out = bkm(bkmd.home, "settings", "reload")
    assert out.returncode == 1
    assert "max_concurrent_jobs" in out.stderr and "progress_interval" in out.stderr
    assert bkm(bkmd.home, "settings", "get", "max_concurrent_jobs").stdout.strip() == "2"  # kept
    with open(_settings_file(bkmd.home), "w") as f:
        f.write("max_concurrent_jobs: 4\n")
    out = bkm(bkmd.home, "settings", "reload")
    assert out.returncode == 0 and "max_concurrent_jobs = 4" in out.stdout


def test_an_unknown_setting_is_a_warning_and_is_kept(home):
    from helpers import Bkmd

    with open(_settings_file(home), "w") as f:
        f.write("from_a_newer_bkm: yes\nkeep_runs: 3\n")
    daemon = Bkmd(home).start()
    try:
        assert "unknown setting 'from_a_newer_bkm'" in daemon.stderr()
        assert bkm(home, "settings", "set", "keep_runs", "4").returncode == 0
        with open(_settings_file(home)) as f:
            text = f.read()
        assert "from_a_newer_bkm: true" in text and "keep_runs: 4" in text
    finally:
        daemon.stop()


# -- runs ----------------------------------------------------------------------------------

MIB = 1024 * 1024


def _slow_source(root: str, count: int = 4, size: int = MIB) -> str:
    from helpers import make_tree

    make_tree(root, {f"f{i}.bin": size for i in range(count)})
    return root


def _show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _bytes_moved(home: str, name: str) -> int:
    return _show(home, name)["progress"]["bytes_transferred"]


def test_a_source_that_vanishes_during_the_run_fails_it(bkmd):
    import shutil

    from helpers import wait_for

    source = _slow_source(os.path.join(bkmd.home, "gone"))
    create(bkmd.home, "v", "rsync", source + "/", bkmd.home + "/dst", "--bwlimit", "1024")
    assert bkm(bkmd.home, "job", "start", "v").returncode == 0
    wait_for(lambda: _bytes_moved(bkmd.home, "v") > 0, 20, what="some bytes sent")
    shutil.rmtree(source)
    wait_for(lambda: _show(bkmd.home, "v")["status"] != "running", 30, what="the run to end")
    shown = _show(bkmd.home, "v")
    assert shown["status"] == "failed" and shown["last_run"]["outcome"] == "failed"
    assert shown["last_run"]["error"].startswith("source vanished")


def test_files_that_vanish_leave_a_completed_run_with_warnings_shown_everywhere(bkmd):
    from helpers import wait_for

    source = _slow_source(os.path.join(bkmd.home, "src2"))
    create(bkmd.home, "w", "rsync", source + "/", bkmd.home + "/dst", "--bwlimit", "1024")
    assert bkm(bkmd.home, "job", "start", "w").returncode == 0
    wait_for(lambda: _bytes_moved(bkmd.home, "w") > 0, 20, what="some bytes sent")
    os.unlink(os.path.join(source, "f3.bin"))  # sorted last: not sent yet
    wait_for(lambda: _show(bkmd.home, "w")["status"] != "running", 30, what="the run to end")
    shown = _show(bkmd.home, "w")
    assert shown["status"] == "completed", shown["last_run"]
    assert shown["last_run"]["warnings"] == [f'file has vanished: "{source}/f3.bin"'], shown["last_run"]
    assert shown["last_run"]["bytes"] == 3 * MIB  # what was sent, not the 4 MiB rsync counted
    assert "completed (1 warning)" in bkm(bkmd.home, "job", "list").stdout
    assert "warning:" in bkm(bkmd.home, "job", "show", "w").stdout
    assert "1 warning" in bkm(bkmd.home, "status").stdout


def test_runs_record_their_outcome_and_a_pause_has_no_exit_code(bkmd):
    from helpers import wait_for

    source = _slow_source(os.path.join(bkmd.home, "src3"))
    create(bkmd.home, "p", "rsync", source + "/", bkmd.home + "/dst", "--bwlimit", "512")
    assert bkm(bkmd.home, "job", "start", "p").returncode == 0
    wait_for(lambda: _bytes_moved(bkmd.home, "p") > 0, 20, what="some bytes sent")
    assert bkm(bkmd.home, "job", "pause", "p").returncode == 0
    run = _show(bkmd.home, "p")["runs"][-1]
    assert run["outcome"] == "paused" and run["exit_code"] is None
    shown = bkm(bkmd.home, "job", "show", "p").stdout
    assert "None" not in shown and "last run: paused" in shown


def test_two_jobs_never_write_into_one_destination_at_once(bkmd):
    from helpers import wait_for

    source = _slow_source(os.path.join(bkmd.home, "src4"))
    dest = bkmd.home + "/shared"
    os.makedirs(dest)
    create(bkmd.home, "first", "rsync", source + "/", dest, "--bwlimit", "512")
    create(bkmd.home, "second", "rsync", source + "/", dest + "/inner")
    assert bkm(bkmd.home, "job", "start", "first").returncode == 0
    out = bkm(bkmd.home, "job", "start", "second", "--json")
    second = json.loads(out.stdout)
    assert second["status"] == "queued" and second["waiting"] == "waiting for first: same destination"
    assert "waiting for first: same destination" in bkm(bkmd.home, "job", "show", "second").stdout
    assert bkm(bkmd.home, "job", "pause", "first").returncode == 0
    wait_for(lambda: _show(bkmd.home, "second")["status"] != "queued", 20, what="second to start")
    assert _show(bkmd.home, "second")["waiting"] is None


def test_a_job_paused_by_a_stopping_bkmd_resumes_when_it_starts_again(home):
    import subprocess

    from helpers import Bkmd, program, wait_for

    source = _slow_source(os.path.join(home, "src5"), count=3)
    daemon = Bkmd(home).start()
    create(home, "nightly", "rsync", source + "/", home + "/dst", "--bwlimit", "1024")
    create(home, "held", "rsync", source + "/", home + "/dst2", "--bwlimit", "1024")
    assert bkm(home, "job", "start", "held").returncode == 0
    assert bkm(home, "job", "pause", "held").returncode == 0  # a person's pause: stays paused
    waiter = subprocess.Popen(
        program("bkm") + ["job", "start", "nightly", "--wait"],
        env=dict(os.environ, BKM_HOME=home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _bytes_moved(home, "nightly") > 0, 20, what="some bytes sent")
        assert bkm(home, "daemon", "stop").returncode == 0
        assert waiter.wait(30) == 5, waiter.stderr.read()
    finally:
        if waiter.poll() is None:
            waiter.kill()
        daemon.stop()
    daemon = Bkmd(home).start()
    try:
        assert _show(home, "nightly")["status"] in ("running", "completed")
        assert _show(home, "held")["status"] == "paused"
        assert bkm(home, "job", "start", "nightly", "--wait").returncode in (0, 5)
    finally:
        daemon.stop()


def test_progress_saved_before_a_crash_is_kept(home):
    import time

    from helpers import Bkmd, wait_for

    source = _slow_source(os.path.join(home, "src6"), count=2, size=8 * MIB)
    with open(os.path.join(source, "a.txt"), "wb") as f:  # done first: rsync's list is then known
        f.write(b"x" * 1000)
    daemon = Bkmd(home).start()
    create(home, "crash", "rsync", source + "/", home + "/dst", "--bwlimit", "256")
    began = time.monotonic()
    assert bkm(home, "job", "start", "crash").returncode == 0
    # Past bkmd's first 10 s checkpoint, with bytes moved before it.
    wait_for(lambda: time.monotonic() - began > 12 and _bytes_moved(home, "crash") > 0, 30, what="12 s of run")
    daemon.kill()
    daemon = Bkmd(home).start()
    try:
        shown = _show(home, "crash")
        assert shown["status"] == "interrupted"
        assert shown["progress"]["bytes_transferred"] > 0 and shown["progress"]["percent"] > 0
        assert shown["runs"][-1]["outcome"] == "interrupted" and shown["runs"][-1]["exit_code"] is None
        assert bkm(home, "job", "list").stdout.splitlines()[1].split()[3] != "-"
    finally:
        daemon.stop()


def test_stall_timeout_defaults_to_15_minutes_and_an_idle_run_says_so(home, data_dir):
    import subprocess

    from helpers import Bkmd, program, wait_for

    fake = os.path.join(home, "fake-rsync")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nprintf '\\r      1,000  10%%    1.00kB/s    0:00:09  '\nexec sleep 600\n")
    os.chmod(fake, 0o755)
    with open(_settings_file(home), "w") as f:
        f.write(f"rsync_path: {fake}\nprogress_interval: 0.5\n")
    daemon = Bkmd(home).start()
    watcher = None
    try:
        assert bkm(home, "settings", "get", "stall_timeout").stdout.strip() == "900"
        create(home, "idle", "rsync", data_dir + "/", home + "/dst")
        assert bkm(home, "job", "start", "idle").returncode == 0  # idle shows after 10 s: no race
        watcher = subprocess.Popen(
            program("bkm") + ["watch", "idle", "--json"],
            env=dict(os.environ, BKM_HOME=home),
            stdout=subprocess.PIPE,
        )
        wait_for(lambda: daemon.call("daemon.status")["subscribers"] >= 1, what="the watcher")
        event = wait_for(lambda: _idle_event(watcher), 30, what="an event saying the run is idle")
        assert event["idle_seconds"] >= 10 and event["speed_bytes"] == 0 and event["eta_seconds"] is None
        assert bkm(home, "job", "pause", "idle").returncode == 0
    finally:
        if watcher is not None:
            watcher.kill()
            watcher.wait()
        daemon.stop()


def _idle_event(watcher) -> dict | None:
    """The next event of ``watch --json`` if one is ready and says the run is idle (read from
    the pipe itself: a buffered reader could hold lines that select does not see)."""
    import select

    fd = watcher.stdout.fileno()
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        watcher.pending = getattr(watcher, "pending", b"") + chunk
        *lines, watcher.pending = watcher.pending.split(b"\n")
        for line in lines:
            event = json.loads(line)
            if event.get("idle_seconds"):
                return event
    return None


def test_a_failure_names_the_tools_real_cause_and_points_at_the_log(bkmd, data_dir):
    """An unknown ssh host: the error is ssh's own line, not "connection unexpectedly closed"."""
    create(bkmd.home, "far", "rsync", data_dir + "/", "nosuchhost.invalid:/srv/backup")
    out = bkm(bkmd.home, "job", "start", "far", "--wait")
    assert out.returncode == 1
    assert "Could not resolve hostname nosuchhost.invalid" in out.stderr
    assert "hint: see its log: bkm logs far" in out.stderr
    assert "Could not resolve hostname" in _show(bkmd.home, "far")["last_run"]["error"]
    assert "Could not resolve hostname" in bkm(bkmd.home, "job", "show", "far").stdout
