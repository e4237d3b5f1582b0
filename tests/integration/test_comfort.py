"""Everyday comfort through the real CLI: several jobs at once, attaching to a run in progress."""

import json
import os
import subprocess
import time

from helpers import bkm, create, program, slow_tree, wait_for


def show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_three_jobs_are_paused_at_once_and_each_says_so(bkmd):
    for name in ("q1", "q2", "q3", "q4"):
        source = os.path.join(bkmd.home, f"src-{name}")
        slow_tree(source)
        create(bkmd.home, name, "rsync", source + "/", os.path.join(bkmd.home, f"d-{name}"), "--bwlimit", "256")
    out = bkm(bkmd.home, "job", "start", "q1", "q2", "q3", "q4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["job q1 started", "job q2 started", "job q3 queued", "job q4 queued"]  # 2 slots
    lines = bkm(bkmd.home, "job", "list").stdout.splitlines()[1:]
    listed = {line.split()[0]: line for line in lines}
    assert "queued #1" in listed["q3"] and "queued #2" in listed["q4"]
    # q4 was updated last, yet the queue reads in the order it will start.
    assert [line.split()[0] for line in lines if "queued" in line] == ["q3", "q4"]
    assert show(bkmd.home, "q3")["queue_position"] == 1 and show(bkmd.home, "q1")["queue_position"] is None
    wait_for(lambda: show(bkmd.home, "q2")["progress"]["bytes_transferred"] > 0, 10, what="q2 moving")
    # One wording for every refusal a status causes: what the job is, what cannot be done, what to do.
    for command in (["edit", "q1", "--bwlimit", "100"], ["delete", "q1", "--yes"]):
        out = bkm(bkmd.home, "job", *command)
        assert out.returncode == 5
        assert out.stderr == f"bkm: error: job 'q1' is running: cannot {command[0]} it; pause it first\n"
    began = time.monotonic()
    out = bkm(bkmd.home, "job", "pause", "q1", "q2", "q3")
    took = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    assert [line.split(" paused at ")[0] for line in out.stdout.splitlines()] == ["job q1", "job q2", "job q3"]
    assert {show(bkmd.home, n)["status"] for n in ("q1", "q2", "q3")} == {"paused"}
    assert took < 8  # at once, not one after another
    # A missing job among others: the others are done, its line says why, the exit code is 4.
    out = bkm(bkmd.home, "job", "start", "q1", "nosuch", "--json")
    assert out.returncode == 4 and "no such job: nosuch" in out.stderr
    assert [j["name"] for j in json.loads(out.stdout)] == ["q1"]
    out = bkm(bkmd.home, "job", "pause", "--all")
    assert out.returncode == 0 and out.stdout.startswith("job q1 paused at")
    assert bkm(bkmd.home, "job", "pause").returncode == 2  # neither JOBs nor --all
    assert show(bkmd.home, "q4")["status"] == "paused"
    out = bkm(bkmd.home, "job", "delete", "q2", "q3", "--yes")
    assert out.returncode == 0 and out.stdout.splitlines() == ["deleted job q2", "deleted job q3"]


def test_wait_on_a_running_job_attaches_and_returns_its_outcome(bkmd):
    source = os.path.join(bkmd.home, "src")
    slow_tree(source)
    create(bkmd.home, "cron", "rsync", source + "/", os.path.join(bkmd.home, "d"), "--bwlimit", "1024")
    assert bkm(bkmd.home, "job", "start", "cron").returncode == 0
    env = dict(os.environ, BKM_HOME=bkmd.home)
    waiting = subprocess.Popen(
        program("bkm") + ["job", "start", "cron", "--wait"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "bkm: note: job cron is running: waiting for that run" in err
    job = show(bkmd.home, "cron")
    assert job["status"] == "completed" and len(job["runs"]) == 1  # one run, not a second one
    # A failed run attached to: its outcome, exit 1.
    other = os.path.join(bkmd.home, "src2")
    slow_tree(other)
    create(bkmd.home, "cron2", "rsync", other + "/", os.path.join(bkmd.home, "d2"), "--bwlimit", "1024")
    assert bkm(bkmd.home, "job", "start", "cron2").returncode == 0
    wait_for(lambda: show(bkmd.home, "cron2")["progress"]["bytes_transferred"] > 0, 10, what="moving")
    waiting = subprocess.Popen(program("bkm") + ["job", "start", "cron2", "--wait"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    # Attached (subscribed to the run in progress) before the source goes.
    wait_for(lambda: bkmd.call("daemon.status")["subscribers"] >= 1, 10, what="the client attached")
    os.rename(other, other + ".gone")  # the source vanishes under the run
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 1 and "job cron2 failed: source vanished" in err
    assert "waiting for that run" in err and len(show(bkmd.home, "cron2")["runs"]) == 1


def test_history_newest_first_with_trigger_and_error(bkmd, data_dir):
    create(bkmd.home, "h", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"))
    out = bkm(bkmd.home, "job", "history", "h")
    assert out.returncode == 0 and "has not run yet" in out.stdout
    assert bkm(bkmd.home, "job", "start", "h", "--wait").returncode == 0
    os.rename(data_dir, data_dir + ".moved")
    assert bkm(bkmd.home, "job", "start", "h", "--wait").returncode == 1
    out = bkm(bkmd.home, "job", "history", "h")
    header, newest, oldest = out.stdout.splitlines()
    assert header.split() == ["STARTED", "TOOK", "OUTCOME", "SENT", "TRIGGER", "ERROR"]
    assert " failed " in newest and "manual" in newest and ("No such file" in newest or "vanished" in newest)
    assert " completed " in oldest
    runs = json.loads(bkm(bkmd.home, "job", "history", "h", "--json", "-n", "1").stdout)
    assert len(runs) == 1 and runs[0]["outcome"] == "failed"


def test_daemon_status_start_restart_stop(home, data_dir):
    out = bkm(home, "daemon", "status")
    assert out.returncode == 3 and "bkmd is not running" in out.stderr
    out = bkm(home, "daemon", "start")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bkmd ") and " started: pid " in out.stdout
    try:
        out = bkm(home, "daemon", "status")
        assert out.returncode == 0 and " runs: pid " in out.stdout
        pid = json.loads(bkm(home, "daemon", "status", "--json").stdout)["pid"]
        assert bkm(home, "daemon", "start").stdout.startswith(f"bkmd runs already: pid {pid}")
        source = os.path.join(home, "slow")
        slow_tree(source)
        create(home, "long", "rsync", source + "/", os.path.join(home, "d"), "--bwlimit", "256")
        assert bkm(home, "settings", "set", "resume_after_stop", "false").returncode == 0
        assert bkm(home, "job", "start", "long").returncode == 0
        out = bkm(home, "daemon", "restart")
        assert out.returncode == 0, out.stderr
        assert "restarted" in out.stdout and "1 job(s) resumed" in out.stdout
        assert json.loads(bkm(home, "daemon", "status", "--json").stdout)["pid"] != pid
        job = show(home, "long")
        assert job["status"] in ("running", "queued") and job["last_run"]["resumed"] is True
    finally:
        bkm(home, "job", "pause", "--all")
        assert bkm(home, "daemon", "stop").returncode == 0
    assert bkm(home, "daemon", "status").returncode == 3


def test_wide_names_stay_aligned_and_columns_70_fits(bkmd, data_dir):
    from bkm.render import cells

    long_dest = os.path.join(bkmd.home, "backups", "a-rather-long-destination-folder-name")
    os.makedirs(os.path.dirname(long_dest))
    create(bkmd.home, "データ", "rsync", data_dir + "/", long_dest)
    create(bkmd.home, "plain", "rsync", data_dir + "/", long_dest + "2")
    for columns in ("200", "70"):
        out = bkm(bkmd.home, "job", "list", env={"COLUMNS": columns})
        assert out.returncode == 0
        lines = out.stdout.splitlines()
        assert all(cells(line) <= int(columns) for line in lines), (columns, lines)
        # Every column starts at the same cell on every line.
        starts = [cells(line[: line.index(" rsync")]) for line in lines[1:]]
        assert len(set(starts)) == 1 and starts[0] == cells(lines[0][: lines[0].index(" TYPE")])


def test_times_are_local_for_people_and_utc_in_json(bkmd, data_dir):
    create(bkmd.home, "tz", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"))
    assert bkm(bkmd.home, "job", "start", "tz", "--wait").returncode == 0
    shown = bkm(bkmd.home, "job", "show", "tz", env={"TZ": "Asia/Tokyo"}).stdout
    created = next(line for line in shown.splitlines() if line.startswith("created:"))
    assert created.endswith("+09:00") and "started " in shown and "+09:00" in shown.split("last run:")[1]
    data = json.loads(bkm(bkmd.home, "job", "show", "tz", "--json", env={"TZ": "Asia/Tokyo"}).stdout)
    assert data["created_at"].endswith("Z") and data["last_run"]["started_at"].endswith("Z")
    status = bkm(bkmd.home, "status", env={"TZ": "Asia/Tokyo"}).stdout
    activity = status.split("recent activity:")[1]
    assert "+09:00" in activity and " bytes in " not in activity and "  started" in activity


def test_bash_completes_a_name_with_a_space_as_one_word(bkmd, data_dir):
    create(bkmd.home, "my photos", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"))
    script = bkm(bkmd.home, "completion", "bash").stdout
    bkm_dir = os.path.dirname(program("bkm")[0])
    session = (
        f"{script}\n"
        "COMP_WORDS=(bkm job show my); COMP_CWORD=3; _bkm_completion bkm\n"
        'printf "<%s>\\n" "${COMPREPLY[@]}"\n'
        # What bash then puts on the command line is one word again for bkm:
        'eval "set -- ${COMPREPLY[0]}"; echo "words: $#"\n'
    )
    env = dict(os.environ, BKM_HOME=bkmd.home, PATH=f"{bkm_dir}:{os.environ['PATH']}")
    env.pop("BKM_SOCKET", None)
    out = subprocess.run(["bash", "--norc", "-c", session], capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout.splitlines() == ["<my\\ photos>", "words: 1"], out.stderr


def test_a_jobs_tool_args_reach_its_tool_and_are_checked(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "d")
    created = create(bkmd.home, "ta", "rsync", data_dir + "/", dest, "--tool-arg", "--exclude=*.bin", "--tool-arg=-v")
    assert created["tool_args"] == ["--exclude=*.bin", "-v"]
    assert bkm(bkmd.home, "job", "start", "ta", "--wait").returncode == 0
    copied = {os.path.relpath(os.path.join(f, n), dest) for f, _, names in os.walk(dest) for n in names}
    assert copied == {"a.txt"}  # sub/b.bin left out by this job's own argument
    log = bkm(bkmd.home, "logs", "ta").stdout
    assert "'--exclude=*.bin' -v -- " in log  # the command line as a shell would read it
    out = bkm(bkmd.home, "job", "edit", "ta", "--tool-arg", "--", "--json")
    assert out.returncode == 2 and "tool_args" in out.stderr
    out = bkm(bkmd.home, "job", "edit", "ta", "--clear-tool-args", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["tool_args"] == []


def test_settings_reset_of_everything_asks_on_a_terminal(bkmd):
    from helpers import run_in_terminal

    assert bkm(bkmd.home, "settings", "set", "keep_runs", "5").returncode == 0
    code, screen = run_in_terminal(bkmd.home, ["settings", "reset"], prompt=b"[y/N]", reply=b"n")
    assert code == 0 and "Reset every setting to its default? [y/N]" in screen and "nothing was reset" in screen
    assert bkm(bkmd.home, "settings", "get", "keep_runs").stdout.strip() == "5"
    code, screen = run_in_terminal(bkmd.home, ["settings", "reset"], prompt=b"[y/N]", reply=b"y")
    assert code == 0 and bkm(bkmd.home, "settings", "get", "keep_runs").stdout.strip() == "20"


def test_a_run_with_nothing_to_send_says_up_to_date(bkmd, data_dir):
    for tool in ("rsync", "rclone"):
        create(bkmd.home, tool, tool, data_dir + ("/" if tool == "rsync" else ""), os.path.join(bkmd.home, tool))
        for _ in range(2):
            assert bkm(bkmd.home, "job", "start", tool, "--wait").returncode == 0
        shown = bkm(bkmd.home, "job", "show", tool).stdout
        progress = next(line for line in shown.splitlines() if line.startswith("progress:"))
        assert "up to date" in progress and "/s" not in progress and "ETA" not in progress, progress
        assert progress.split()[1] == "100%"
    shown = bkm(bkmd.home, "job", "show", "rsync").stdout
    assert "up to date, 5.9 KiB checked" in shown


def test_expected_noise_is_labelled_in_the_log(home, data_dir):
    from helpers import Bkmd

    daemon = Bkmd(home, env={"RCLONE_CONFIG": os.path.join(home, "no-such-rclone.conf")}).start()
    try:
        create(home, "rc", "rclone", data_dir, os.path.join(home, "rc"))
        assert bkm(home, "job", "start", "rc", "--wait").returncode == 0
        log = bkm(home, "logs", "rc").stdout
        line = next(line for line in log.splitlines() if "not found - using defaults" in line)
        assert " note " in line and "(expected: no rclone.conf" in line
        source = os.path.join(home, "slow")
        slow_tree(source)
        create(home, "p", "rsync", source + "/", os.path.join(home, "p"), "--bwlimit", "256")
        assert bkm(home, "job", "start", "p").returncode == 0
        wait_for(lambda: show(home, "p")["progress"]["bytes_transferred"] > 0, 10, what="moving")
        assert bkm(home, "job", "pause", "p").returncode == 0
        log = bkm(home, "logs", "p").stdout
        signal_lines = [line for line in log.splitlines() if "code 20" in line or "SIGTERM" in line]
        assert signal_lines and all("(expected: bkm stopped the transfer, as asked)" in line for line in signal_lines)
        assert all(" error " not in line for line in signal_lines)
    finally:
        daemon.stop()


def test_a_stopped_bkmd_is_named_at_once_not_waited_for(bkmd):
    import signal

    from helpers import run_in_terminal

    bkmd.proc.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        code, screen = run_in_terminal(bkmd.home, ["job", "list"], timeout=20)
        assert time.monotonic() - began < 5  # at a terminal: told at once (a script waits)
        assert code == 3
        assert f"bkm: error: bkmd (pid {bkmd.proc.pid}) is stopped" in screen
        assert f"hint: let it go on with: kill -CONT {bkmd.proc.pid}" in screen
    finally:
        bkmd.proc.send_signal(signal.SIGCONT)
    assert bkm(bkmd.home, "job", "list").returncode == 0


def test_empty_logs_and_an_unexpanded_tilde_say_so(bkmd, data_dir):
    create(bkmd.home, "quiet", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"))
    out = bkm(bkmd.home, "logs", "quiet")
    assert out.returncode == 0 and out.stdout == "" and "nothing logged yet for job quiet" in out.stderr
    out = bkm(bkmd.home, "job", "create", "t", "--type", "rsync", "--source", "~/src/", "--dest", "/tmp/x")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert "hint: ~ was not expanded (it was quoted): write $HOME/src/ or leave ~ unquoted" in out.stderr
