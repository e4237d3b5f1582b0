"""Schedules, retries and dry runs with a real bkmd, real rsync and rclone on real files."""

import json
import os
import stat
import subprocess
import time

import pytest
from helpers import Bkmd, bkm, create, make_tree, program, slow_tree, stays, tree, wait_for

from bkm import schedules


def show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def runs(home: str, name: str) -> list[dict]:
    return show(home, name)["runs"]


def log_text(home: str, name: str) -> str:
    out = bkm(home, "logs", name, "-n", "1000")
    assert out.returncode == 0, out.stderr
    return out.stdout


def failing_rsync(home: str, code: int, times: int) -> str:
    """An rsync_path that exits ``code`` the first ``times`` calls, then runs the real rsync;
    each call's time is written beside it."""
    path = os.path.join(home, "flaky-rsync")
    count = os.path.join(home, "flaky-count")
    with open(path, "w") as f:
        f.write(
            "#!/bin/sh\n"
            f'n=$(cat "{count}" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "{count}"\n'
            f'date +%s.%N >> "{count}.times"\n'
            f'if [ "$n" -le {times} ]; then echo "rsync: connection unexpectedly closed" >&2; exit {code}; fi\n'
            'exec rsync "$@"\n'
        )
    os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


def call_times(home: str) -> list[float]:
    with open(os.path.join(home, "flaky-count.times")) as f:
        return [float(line) for line in f if line.strip()]


def test_every_3s_runs_on_its_own(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "dst")
    created = create(bkmd.home, "tick", "rsync", data_dir + "/", dest, "--schedule", "@every 3s")
    assert created["schedule"] == "@every 3s" and created["next_run_at"] is not None
    wait_for(lambda: len(runs(bkmd.home, "tick")) >= 2, 10, what="two scheduled runs within 10 s")
    done = runs(bkmd.home, "tick")
    assert {(r["trigger"], r["attempt"], r["outcome"]) for r in done} == {("schedule", 1, "completed")}
    assert tree(dest) == tree(data_dir)
    listed = bkm(bkmd.home, "job", "list")
    assert "NEXT RUN" in listed.stdout and ("in " in listed.stdout or "due now" in listed.stdout)


def test_bkmd_down_over_due_times_catches_up_exactly_once(home, data_dir):
    daemon = Bkmd(home).start()
    create(home, "tick", "rsync", data_dir + "/", os.path.join(home, "dst"), "--schedule", "@every 3s")
    wait_for(lambda: len(runs(home, "tick")) >= 1, 10, what="a first run")
    assert daemon.stop() == 0
    stopped_at = time.time()
    # Ten seconds down: three due times pass while nothing runs.
    wait_for(lambda: time.time() - stopped_at >= 10, 12, what="10 s down")
    daemon = Bkmd(home).start()
    wait_for(lambda: any(r["trigger"] == "catch-up" for r in runs(home, "tick")), 10, what="the catch-up run")
    # Then the rhythm goes on as scheduled runs; there is one catch-up, never three.
    wait_for(lambda: runs(home, "tick")[-1]["trigger"] == "schedule", 10, what="a scheduled run after it")
    triggers = [r["trigger"] for r in runs(home, "tick")]
    assert triggers.count("catch-up") == 1, triggers
    assert daemon.stop() == 0


def test_a_job_still_running_when_due_is_skipped_not_run_twice(bkmd):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    slow_tree(source)  # about 4 s at 1024 KiB/s
    create(bkmd.home, "slow", "rsync", source + "/", dest, "--bwlimit", "1024", "--schedule", "@every 1s")
    wait_for(lambda: "skipped a scheduled run: still running" in log_text(bkmd.home, "slow"), 15, what="a skip")
    assert len(bkmd.transfers(("rsync",))) <= 3  # one rsync run: its (at most) three processes
    wait_for(lambda: any(r["outcome"] == "completed" for r in runs(bkmd.home, "slow")), 30, what="the run's end")
    history = runs(bkmd.home, "slow")
    real = [r for r in history if r["outcome"] != "skipped"]
    assert real[0]["trigger"] == "schedule" and real[0]["outcome"] == "completed"
    # The skips of the run are one history record with their count (the history keeps its runs).
    (skips,) = [r for r in history if r["outcome"] == "skipped"][:1]
    assert skips["error"] == "still running" and skips["trigger"] == "schedule" and skips["count"] >= 1
    recent = bkm(bkmd.home, "status", "--json")
    entries = json.loads(recent.stdout)["recent"]
    assert any(e["status"] == "skipped" and e["detail"] == "still running" for e in entries)
    assert bkm(bkmd.home, "job", "pause", "slow").returncode in (0, 5)  # end whatever runs now
    assert bkm(bkmd.home, "schedule", "pause", "slow").returncode == 0


def test_transient_failures_are_retried_with_doubling_waits_and_wait_waits_for_the_end(bkmd, data_dir):
    flaky = failing_rsync(bkmd.home, 12, 2)
    assert bkm(bkmd.home, "settings", "set", "rsync_path", flaky).returncode == 0
    dest = os.path.join(bkmd.home, "dst")
    create(bkmd.home, "flaky", "rsync", data_dir + "/", dest, "--retries", "3", "--retry-wait", "1s")
    out = bkm(bkmd.home, "job", "start", "flaky", "--wait")
    assert out.returncode == 0, out.stderr
    done = runs(bkmd.home, "flaky")
    assert [(r["attempt"], r["trigger"], r["outcome"]) for r in done] == [
        (1, "manual", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "completed"),
    ]
    assert done[0]["exit_code"] == 12
    first, second, third = call_times(bkmd.home)
    assert 1.0 <= second - first < 3.0  # retry_wait
    assert 2.0 <= third - second < 4.5  # doubled
    assert tree(dest) == tree(data_dir)
    job = show(bkmd.home, "flaky")
    assert job["status"] == "completed" and job["retry_at"] is None
    assert "retry 1 of 3" in log_text(bkmd.home, "flaky")


def test_a_failure_that_is_not_transient_is_not_retried(bkmd, data_dir):
    flaky = failing_rsync(bkmd.home, 23, 5)
    assert bkm(bkmd.home, "settings", "set", "rsync_path", flaky).returncode == 0
    create(bkmd.home, "hard", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"), "--retries", "3")
    out = bkm(bkmd.home, "job", "start", "hard", "--wait")
    assert out.returncode == 1
    job = show(bkmd.home, "hard")
    assert job["status"] == "failed" and job["retry_at"] is None
    assert [(r["attempt"], r["outcome"], r["exit_code"]) for r in job["runs"]] == [(1, "failed", 23)]
    assert len(call_times(bkmd.home)) == 1


def test_pause_during_the_retry_wait_cancels_the_retry(bkmd, data_dir):
    flaky = failing_rsync(bkmd.home, 12, 5)
    assert bkm(bkmd.home, "settings", "set", "rsync_path", flaky).returncode == 0
    create(bkmd.home, "wait", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"), "--retries", "2")
    assert bkm(bkmd.home, "job", "start", "wait").returncode == 0
    wait_for(lambda: show(bkmd.home, "wait")["retry_at"] is not None, 10, what="a planned retry")
    job = show(bkmd.home, "wait")
    assert job["status"] == "queued" and "retry 1 of 2" in job["waiting"]
    assert 55 <= schedules.parse_time(job["retry_at"]) - schedules.parse_time(job["runs"][-1]["finished_at"]) <= 61
    listed = bkm(bkmd.home, "job", "list")
    assert "queued (retry in" in listed.stdout
    assert bkm(bkmd.home, "job", "pause", "wait").returncode == 0
    job = show(bkmd.home, "wait")
    assert job["status"] == "paused" and job["retry_at"] is None
    assert "the retry is cancelled" in log_text(bkmd.home, "wait")
    assert len(call_times(bkmd.home)) == 1


@pytest.mark.parametrize("tool", ["rsync", "rclone"])
def test_dry_run_counts_what_the_run_then_sends_and_changes_nothing(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    make_tree(source, {"a.bin": 1000, "b.bin": 20000, "sub/c.bin": 300})
    create(bkmd.home, "dry", tool, source + ("/" if tool == "rsync" else ""), dest)
    out = bkm(bkmd.home, "job", "start", "dry", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"files": 3, "bytes": 21300}
    assert not os.path.exists(dest)
    job = show(bkmd.home, "dry")
    assert job["status"] == "pending" and job["runs"] == [] and job["last_run"] is None
    assert bkm(bkmd.home, "job", "start", "dry", "--wait").returncode == 0
    assert show(bkmd.home, "dry")["last_run"]["bytes"] == 21300
    # One change: the dry run names one file and its size; the human form says nothing changed.
    with open(os.path.join(source, "b.bin"), "ab") as f:
        f.write(b"x" * 5)
    out = bkm(bkmd.home, "job", "start", "dry", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would send 1 file" in out.stdout and "20005 bytes" in out.stdout and "nothing was changed" in out.stdout
    assert os.path.getsize(os.path.join(dest, "b.bin")) == 20000
    assert len(runs(bkmd.home, "dry")) == 1


def test_dry_run_failure_is_exit_1_with_the_tools_error(bkmd, data_dir):
    create(bkmd.home, "gone", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    os.rename(data_dir, data_dir + ".moved")
    out = bkm(bkmd.home, "job", "start", "gone", "--dry-run")
    assert out.returncode == 1
    assert out.stderr.startswith("bkm: error: the dry run of job 'gone' failed:") and "No such file" in out.stderr
    assert show(bkmd.home, "gone")["status"] == "pending"


def test_restart_keeps_schedules_pauses_and_pending_retries(home, data_dir):
    daemon = Bkmd(home).start()
    flaky = failing_rsync(home, 12, 5)
    assert bkm(home, "settings", "set", "rsync_path", flaky).returncode == 0
    create(home, "nightly", "rsync", data_dir + "/", os.path.join(home, "d1"), "--schedule", "30 2 * * *")
    create(home, "hourly", "rsync", data_dir + "/", os.path.join(home, "d2"), "--schedule", "@hourly")
    create(home, "flaky", "rsync", data_dir + "/", os.path.join(home, "d3"), "--retries", "2", "--retry-wait", "1h")
    assert bkm(home, "schedule", "pause", "nightly", "--for", "2d").returncode == 0
    assert bkm(home, "schedule", "pause", "hourly").returncode == 0
    assert bkm(home, "job", "start", "flaky").returncode == 0
    wait_for(lambda: show(home, "flaky")["retry_at"] is not None, 10, what="a planned retry")
    before = {name: show(home, name) for name in ("nightly", "hourly", "flaky")}
    assert before["hourly"]["schedule_paused_until"] == "forever" and before["hourly"]["next_run_at"] is None
    assert before["nightly"]["schedule_paused_until"] not in (None, "forever")
    assert daemon.stop() == 0
    daemon = Bkmd(home).start()
    after = {name: show(home, name) for name in ("nightly", "hourly", "flaky")}
    keys = ("schedule", "next_run_at", "schedule_paused_until", "retry_at", "status", "retries", "retry_wait_seconds")
    for name in before:
        assert {k: after[name][k] for k in keys} == {k: before[name][k] for k in keys}, name
    assert after["flaky"]["status"] == "queued"
    # The retry is still an hour away: nothing ran since.
    stays(lambda: len(call_times(home)) == 1, 1.0, what="no early retry")
    out = bkm(home, "schedule", "resume", "--all")
    assert out.returncode == 0 and out.stdout.count("resumed") == 2
    assert show(home, "hourly")["next_run_at"] is not None
    assert daemon.stop() == 0


def test_schedule_commands_and_their_errors(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "dst")
    bad = bkm(bkmd.home, "job", "create", "b", "--type", "rsync", "--source", data_dir, "--dest", dest,
              "--schedule", "61 * * * *")  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("bkm: error: schedule: is not a valid cron expression (Bad minute)")
    create(bkmd.home, "plain", "rsync", data_dir + "/", dest)
    out = bkm(bkmd.home, "schedule", "pause", "plain")
    assert out.returncode == 5 and "has no schedule" in out.stderr
    assert bkm(bkmd.home, "schedule", "list").stdout.startswith("no scheduled jobs")
    out = bkm(bkmd.home, "job", "edit", "plain", "--schedule", "@daily", "--json")
    assert out.returncode == 0, out.stderr
    edited = json.loads(out.stdout)
    assert edited["schedule"] == "@daily" and edited["next_run_at"].endswith(":00Z")
    listed = json.loads(bkm(bkmd.home, "schedule", "list", "--json").stdout)
    assert [j["name"] for j in listed] == ["plain"]
    assert bkm(bkmd.home, "schedule", "pause").returncode == 2  # neither JOB nor --all
    out = bkm(bkmd.home, "schedule", "pause", "plain", "--for", "soon")
    assert out.returncode == 2 and "for:" in out.stderr
    shown = bkm(bkmd.home, "job", "show", "plain").stdout
    assert "schedule: @daily" in shown and "next run:" in shown
    out = bkm(bkmd.home, "job", "edit", "plain", "--no-schedule", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["schedule"] is None and json.loads(out.stdout)["next_run_at"] is None
    status = bkm(bkmd.home, "status")
    assert "next runs:" in status.stdout


def test_a_dry_run_stops_when_the_client_hangs_up_and_when_bkmd_stops(bkmd, data_dir):
    slow = os.path.join(bkmd.home, "slow-rsync")
    with open(slow, "w") as f:
        f.write('#!/bin/sh\nsleep 60\nexec rsync "$@"\n')
    os.chmod(slow, 0o755)
    assert bkm(bkmd.home, "settings", "set", "rsync_path", slow).returncode == 0
    create(bkmd.home, "dry", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    env = dict(os.environ, BKM_HOME=bkmd.home)
    client = subprocess.Popen(program("bkm") + ["job", "start", "dry", "--dry-run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for(lambda: bkmd.transfers(("sleep",)), 10, what="the dry run's process")
    client.kill()
    client.wait()
    wait_for(lambda: not bkmd.transfers(("sleep",)), 10, what="the dry run stopped after the client left")
    assert bkm(bkmd.home, "job", "show", "dry").returncode == 0  # bkmd serves on
    client = subprocess.Popen(program("bkm") + ["job", "start", "dry", "--dry-run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: bkmd.transfers(("sleep",)), 10, what="the second dry run's process")
    began = time.monotonic()
    assert bkmd.stop() == 0
    assert time.monotonic() - began < 10  # not the 60 s the tool would take
    assert client.wait(10) in (1, 3)
