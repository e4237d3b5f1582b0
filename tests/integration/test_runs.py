"""Running backups with the real rsync and rclone on real files, supervised by a real bkmd."""

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import (
    MIB,
    Bkmd,
    Events,
    RawClient,
    alive,
    bkm,
    create,
    ctimes,
    finished,
    make_tree,
    program,
    slow_tree,
    stays,
    tree,
    wait_for,
    wait_for_subscribers,
)

KIB = 1024
TOOLS = ["rsync", "rclone"]


def show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("tool", TOOLS)
def test_throttled_run_completes_with_true_live_progress(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    # a.txt sorts first: once rsync finishes a file its list is known (incremental recursion)
    make_tree(source, {"a.txt": 1000, "big.bin": 5 * MIB, "small/a.txt": 3000, "small/b.txt": 5000})
    size = 5 * MIB + 9000
    limit = 1024  # KiB/s: about 5 s
    create(bkmd.home, "t", tool, source + "/", dest, "--bwlimit", str(limit))
    events = Events(bkmd.socket, "t")
    began = time.monotonic()
    out = bkm(bkmd.home, "job", "start", "t", "--wait")
    elapsed = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""  # nothing on a non-terminal
    final = events.wait_status("completed")
    events.close()
    assert tree(dest) == tree(source)
    assert final["percent"] == 100.0
    assert abs(final["total_bytes"] - size) <= 0.02 * size
    running = [e for e in events.events if e["status"] == "running" and 0 < e["percent"] < 100]
    assert len(running) >= 3, events.events
    percents = [e["percent"] for e in running]
    assert percents == sorted(percents)
    assert all(e["speed_bytes"] > 0 for e in running[1:])
    assert any(e["eta_seconds"] is not None and e["eta_seconds"] > 0 for e in running)
    expected = size / (limit * KIB)
    assert 0.6 * expected <= elapsed <= 2 * expected + 2, (elapsed, expected)
    job = json.loads(bkm(bkmd.home, "job", "show", "t", "--json").stdout)
    assert job["status"] == "completed" and job["progress"]["percent"] == 100.0
    run = job["last_run"]
    assert run["exit_code"] == 0 and run["error"] is None and run["finished_at"] >= run["started_at"]
    assert job["runs"] == [run]


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), root)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.mark.parametrize("tool", TOOLS)
def test_pause_stops_writing_and_start_resumes_without_resending(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    total = slow_tree(source)
    create(bkmd.home, "p", tool, source + "/", dest, "--bwlimit", "1024")
    with Events(bkmd.socket, "p") as events:
        assert bkm(bkmd.home, "job", "start", "p").returncode == 0
        # Pause once progress was reported and some files are finished, some not (a window of
        # about 3 s).
        events.wait(lambda e: e["status"] == "running" and e["percent"] > 0, 30, what="progress")
        wait_for(lambda: 0 < len(finished(source, dest)) < 8, 30, interval=0.05, what="some files finished, not all")
        ours = bkmd.transfers()
        with RawClient(bkmd.socket) as client:  # no client start-up inside the window
            paused = client.call("job.pause", job="p")
    assert paused["status"] == "paused" and 0 < paused["progress"]["percent"] < 100
    assert not alive(ours) and not bkmd.transfers()  # the transfer and its helpers are gone
    done = finished(source, dest)
    assert done and len(done) < 8
    changed = ctimes(dest)
    frozen = snapshot(dest)
    stays(lambda: snapshot(dest) == frozen, 1.5, what="nothing written while paused")
    out = bkm(bkmd.home, "job", "start", "p", "--wait")
    assert out.returncode == 0, out.stderr
    assert tree(dest) == tree(source)
    # What was finished before the pause was not sent again: not rewritten (ctime, since
    # rclone rewrites a file in place under the same inode), and not in the bytes moved.
    after = ctimes(dest)
    assert {n: after[n] for n in done} == {n: changed[n] for n in done}
    job = show(bkmd.home, "p")
    assert job["last_run"]["resumed"] is True and [r["exit_code"] for r in job["runs"]][-1] == 0
    pause = job["runs"][-2]
    assert pause["outcome"] == "paused" and pause["exit_code"] is None  # a pause, not an exit code
    assert 0 < job["last_run"]["bytes"] <= total - sum(done.values()), (job["last_run"]["bytes"], total, done)


@pytest.mark.parametrize("tool", TOOLS)
def test_a_removed_source_fails_as_source_vanished(bkmd, data_dir, tool):
    """Whatever the tool's exit code says (rsync 23 or 24, rclone 3), a run whose source
    folder is gone is failed as "source vanished", with the tool's exit code kept."""
    create(bkmd.home, "gone", tool, data_dir + "/", os.path.join(bkmd.home, "dst"))
    os.rename(data_dir, data_dir + ".moved")
    out = bkm(bkmd.home, "job", "start", "gone", "--wait")
    assert out.returncode == 1
    assert "bkm: error: job gone failed: source vanished" in out.stderr and "bkm logs gone" in out.stderr
    job = show(bkmd.home, "gone")
    assert job["status"] == "failed" and job["last_run"]["outcome"] == "failed"
    assert job["last_run"]["exit_code"] not in (0, None)
    assert "source vanished" in job["last_run"]["error"]


def failed_rclone_run(home: str) -> subprocess.CompletedProcess:
    """A job whose rclone fails at once, before any transfer: its remote is in no config."""
    create(home, "nowhere", "rclone", os.path.join(home, "src") + "/", "nosuchremote:backup")
    out = bkm(home, "job", "start", "nowhere", "--wait")
    assert out.returncode == 1
    return out


@pytest.fixture
def rclone_home(home):
    """A bkmd whose rclone reads an empty config file (never the user's own)."""
    config = os.path.join(home, "rclone.conf")
    open(config, "w").close()
    make_tree(os.path.join(home, "src"), {"a.txt": 100})
    daemon = Bkmd(home, env={"RCLONE_CONFIG": config}).start()
    yield home
    daemon.stop()


def test_rclone_failure_names_rclones_own_error_line(rclone_home):
    """The contract: --wait and job show name the tool's most specific error line (here
    rclone's `didn't find section in config file`), not only the meaning of its exit code."""
    out = failed_rclone_run(rclone_home)
    assert "bkm: error: job nowhere failed: " in out.stderr and "bkm logs nowhere" in out.stderr
    assert "didn't find section in config file" in out.stderr, out.stderr
    job = show(rclone_home, "nowhere")
    assert job["status"] == "failed" and job["last_run"]["outcome"] == "failed"
    assert job["last_run"]["exit_code"] == 1
    assert "didn't find section in config file" in job["last_run"]["error"]
    assert "didn't find section in config file" in bkm(rclone_home, "job", "show", "nowhere").stdout
    assert "didn't find section in config file" in bkm(rclone_home, "logs", "nowhere").stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_wait_exits_5_when_the_job_is_paused_from_elsewhere(bkmd, tool):
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"big.bin": 2 * MIB})
    # 32 s at the limit: it is paused long before, however slow the machine.
    create(bkmd.home, "w", tool, source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "64")
    waiter = subprocess.Popen(
        ["env", f"BKM_HOME={bkmd.home}", *program("bkm"), "job", "start", "w", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: show(bkmd.home, "w")["status"] == "running", 20, interval=0.1, what="the run")
        wait_for_subscribers(bkmd.home, 1)  # the waiter listens: the pause is what it must see
        assert bkm(bkmd.home, "job", "pause", "w").returncode == 0
        stdout, stderr = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
        waiter.wait()
    assert waiter.returncode == 5, stderr
    assert "was paused" in stderr
    assert show(bkmd.home, "w")["status"] == "paused"


@pytest.mark.parametrize("tool", TOOLS)
def test_queue_with_one_slot(bkmd, tool):
    assert bkm(bkmd.home, "settings", "set", "max_concurrent_jobs", "1").returncode == 0
    for name, size, limit in (("one", 4 * MIB, "1024"), ("two", 1 * MIB, "0")):
        source = os.path.join(bkmd.home, name)
        make_tree(source, {"data.bin": size})
        create(bkmd.home, name, tool, source + "/", os.path.join(bkmd.home, name + "-dst"), "--bwlimit", limit)
    with Events(bkmd.socket, "one", "two") as events:
        # One connection, no client start-up between the calls: "one" (4 s at its limit) is
        # surely still running while "two" is started and found queued.
        with RawClient(bkmd.socket) as client:
            assert client.call("job.start", job="one")["status"] == "running"
            assert client.call("job.start", job="two")["status"] == "queued"
            assert client.call("job.get", job="one")["status"] == "running"
        events.wait_status("completed", name="two", timeout=60)
    seen = [(e["name"], e["status"]) for e in events.events]
    statuses = [status for name, status in seen if name == "two"]
    assert statuses.index("queued") < statuses.index("running") < statuses.index("completed")
    # "two" ran only once "one" had ended.
    assert seen.index(("one", "completed")) < seen.index(("two", "running"))
    first, then = show(bkmd.home, "one"), show(bkmd.home, "two")
    assert first["status"] == "completed" and then["status"] == "completed"
    assert then["last_run"]["started_at"] >= first["last_run"]["finished_at"]
    assert tree(os.path.join(bkmd.home, "two-dst")) == tree(os.path.join(bkmd.home, "two"))


@pytest.mark.parametrize("tool", TOOLS)
def test_pausing_a_queued_job(bkmd, tool):
    assert bkm(bkmd.home, "settings", "set", "max_concurrent_jobs", "1").returncode == 0
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"data.bin": 2 * MIB})
    # "a" holds the only slot for 32 s at its limit: "b" stays queued for as long as this takes.
    create(bkmd.home, "a", tool, source + "/", os.path.join(bkmd.home, "a"), "--bwlimit", "64")
    create(bkmd.home, "b", tool, source + "/", os.path.join(bkmd.home, "b"))
    assert bkm(bkmd.home, "job", "start", "a").returncode == 0
    assert json.loads(bkm(bkmd.home, "job", "start", "b", "--json").stdout)["status"] == "queued"
    assert json.loads(bkm(bkmd.home, "job", "pause", "b", "--json").stdout)["status"] == "paused"
    assert bkm(bkmd.home, "job", "pause", "b").returncode == 5
    assert show(bkmd.home, "a")["status"] == "running"
    assert bkm(bkmd.home, "job", "pause", "a").returncode == 0
    assert show(bkmd.home, "b")["status"] == "paused"  # the freed slot does not start a paused job
    assert not os.path.exists(os.path.join(bkmd.home, "b"))


@pytest.mark.parametrize("tool", TOOLS)
def test_excludes_apply_and_a_rerun_copies_what_changed(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    make_tree(source, {"keep.txt": 2000, "note.tmp": 100, "cache/x.bin": 1000, "sub/y.txt": 3000})
    create(bkmd.home, "e", tool, source + "/", dest, "--exclude", "*.tmp", "--exclude", "cache/**")
    assert bkm(bkmd.home, "job", "start", "e", "--wait").returncode == 0
    assert set(tree(dest)) == {"keep.txt", "sub/y.txt"}
    # ctime, not the inode: rclone rewrites a file in place under the same inode.
    untouched = os.stat(os.path.join(dest, "sub/y.txt")).st_ctime_ns
    with open(os.path.join(source, "keep.txt"), "wb") as f:
        f.write(b"changed content")
    make_tree(source, {"new.txt": 500})
    assert bkm(bkmd.home, "job", "start", "e", "--wait").returncode == 0
    copied = tree(dest)
    assert copied["keep.txt"] == b"changed content" and "new.txt" in copied
    assert os.stat(os.path.join(dest, "sub/y.txt")).st_ctime_ns == untouched
    job = json.loads(bkm(bkmd.home, "job", "show", "e", "--json").stdout)
    assert len(job["runs"]) == 2 and job["status"] == "completed"


def test_job_log_has_the_argv_output_and_outcome(bkmd, data_dir):
    job = create(bkmd.home, "logged", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    assert bkm(bkmd.home, "job", "start", "logged", "--wait").returncode == 0
    with open(os.path.join(bkmd.home, "logs", job["id"] + ".log")) as f:
        text = f.read()
    assert "run started: rsync -a" in text and f"-- {data_dir}/ {bkmd.home}/dst" in text
    assert "Total file size:" in text and "run completed: exit code 0" in text
    assert "%" not in text.split("run started")[1].split("\n", 1)[1]  # progress records are not logged


def test_rclone_job_log_has_the_argv_output_and_outcome(bkmd, data_dir):
    assert bkm(bkmd.home, "settings", "set", "rclone_args", "-v").returncode == 0  # one line per file copied
    dest = os.path.join(bkmd.home, "dst")
    create(bkmd.home, "rlog", "rclone", data_dir + "/", dest, "--bwlimit", "4096", "--exclude", "*.tmp")
    assert bkm(bkmd.home, "job", "start", "rlog", "--wait").returncode == 0
    out = bkm(bkmd.home, "logs", "rlog")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "run started: rclone copy" in lines[0] and "--bwlimit=4096" in lines[0] and "--exclude=*.tmp" in lines[0]
    assert lines[0].endswith(f"-- {data_dir}/ {dest}")
    assert any("a.txt" in line and "Copied" in line for line in lines)  # rclone's own output
    assert any("sub/b.bin" in line and "Copied" in line for line in lines)
    assert "run completed: exit code 0" in lines[-1]
    # Stats records become progress, not log lines.
    assert not any('"stats"' in line or "Transferred:" in line for line in lines)
    # A failed run: the outcome and rclone's own error line, in the log.
    os.rename(data_dir, data_dir + ".moved")
    assert bkm(bkmd.home, "job", "start", "rlog", "--wait").returncode == 1
    failed = bkm(bkmd.home, "logs", "rlog").stdout
    assert failed.count("run started: rclone copy") == 2
    assert "directory not found" in failed and "run failed" in failed


def test_log_rotation(bkmd, data_dir):
    bkm(bkmd.home, "settings", "set", "log_max_bytes", "4096")
    bkm(bkmd.home, "settings", "set", "log_backups", "2")
    job = create(bkmd.home, "rot", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    for _ in range(12):  # about 1.3 KB of log a run: rotated more than twice
        assert bkm(bkmd.home, "job", "start", "rot", "--wait").returncode == 0
    logs = sorted(n for n in os.listdir(os.path.join(bkmd.home, "logs")) if n.startswith(job["id"]))
    assert logs == [f"{job['id']}.log", f"{job['id']}.log.1", f"{job['id']}.log.2"]
    assert all(os.path.getsize(os.path.join(bkmd.home, "logs", n)) <= 4096 for n in logs)


def test_start_and_pause_conflicts(bkmd, data_dir):
    create(bkmd.home, "c", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    out = bkm(bkmd.home, "job", "pause", "c")
    assert out.returncode == 5 and "pending" in out.stderr
    assert bkm(bkmd.home, "job", "start", "ghost").returncode == 4


@pytest.mark.parametrize("tool", TOOLS)
def test_sigterm_during_a_transfer_pauses_it_and_the_next_bkmd_resumes_it(home, tool):
    from bkmd import store

    daemon = Bkmd(home).start()
    source, dest = os.path.join(home, "src"), os.path.join(home, "dst")
    make_tree(source, {"a.txt": 1000, "big.bin": 8 * MIB})
    # 32 s at the limit: still running when the signal comes, however slow the machine. Some
    # data written first: rsync holds up to 256 KiB in memory before it writes.
    create(home, "s", tool, source + "/", dest, "--bwlimit", "256")
    with Events(daemon.socket, "s") as events:
        assert bkm(home, "job", "start", "s").returncode == 0
        events.wait(lambda e: e["status"] == "running" and e["bytes_transferred"] > MIB, 30, what="1 MiB moved")
        ours = daemon.transfers()
        assert ours
        assert daemon.stop(signal.SIGTERM) == 0
    assert not alive(ours)
    kept = os.path.join(dest, "big.bin") if tool == "rclone" else os.path.join(dest, ".rsync-partial", "big.bin")
    assert 0 < os.path.getsize(kept) < 8 * MIB  # partial data kept
    # What the stopping bkmd saved: paused, a pause (no exit code), with its progress.
    [record] = store.load_jobs(os.path.join(home, "jobs.yaml"))
    assert record["status"] == "paused" and 0 < record["progress"]["percent"] < 100
    run = record["last_run"]
    assert run["outcome"] == "paused" and run["exit_code"] is None and run["finished_at"]
    # The next bkmd resumes a job that bkmd's stop paused (resume_after_stop, default true) ...
    daemon = Bkmd(home).start()
    try:
        wait_for(lambda: show(home, "s")["status"] == "running", 20, interval=0.1, what="the job resumed")
        assert show(home, "s")["last_run"]["resumed"] is True
        # ... but not one a person paused.
        assert bkm(home, "job", "pause", "s").returncode == 0
        assert daemon.stop() == 0
        daemon = Bkmd(home).start()
        stays(lambda: show(home, "s")["status"] == "paused", 2, interval=0.2, what="the job paused")
        assert not daemon.transfers()
    finally:
        daemon.stop()


def test_a_paused_first_run_keeps_its_file_in_flight_without_partial_dir_and_the_resume_builds_on_it(bkmd):
    # bkmd keeps the unfinished file itself at a stop (rsync's --partial-dir would cost every
    # file of every run a lookup): the first run has no --partial-dir, the resumed one has.
    home = bkmd.home
    source, dest = os.path.join(home, "src"), os.path.join(home, "dst")
    make_tree(source, {"small/a.txt": 1000, "big.bin": 8 * MIB})
    create(home, "k", "rsync", source + "/", dest, "--bwlimit", "512")
    with Events(bkmd.socket, "k") as events:
        assert bkm(home, "job", "start", "k").returncode == 0
        events.wait(lambda e: e["status"] == "running" and e["bytes_transferred"] > 2 * MIB, 30, what="2 MiB moved")
        [first] = [cmdline(pid) for pid, _ in bkmd.transfers()][:1]
        assert bkm(home, "job", "pause", "k").returncode == 0
    assert "--partial-dir=.rsync-partial" not in first and "--filter=-p .rsync-partial/" in first
    kept = os.path.getsize(os.path.join(dest, ".rsync-partial", "big.bin"))
    assert MIB < kept < 8 * MIB
    assert sorted(os.listdir(dest)) == [".rsync-partial", "small"]  # no temporary file left
    assert store_record(home, "k")["partial_kept"] is True  # the next run, whatever it is, looks
    out = bkm(home, "job", "start", "k", "--wait")
    assert out.returncode == 0, out.stderr
    assert store_record(home, "k")["partial_kept"] is False
    run = show(home, "k")["last_run"]
    assert run["outcome"] == "completed" and run["resumed"] is True
    # What the pause kept was not sent again (local: rsync's delta algorithm with --no-W).
    log = bkm(home, "logs", "k").stdout
    sent = int(log.rsplit("Total bytes sent: ", 1)[1].split()[0])
    assert sent < 8 * MIB - kept + 256 * 1024, (sent, kept)
    with open(os.path.join(dest, "big.bin"), "rb") as a, open(os.path.join(source, "big.bin"), "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(os.path.join(dest, ".rsync-partial"))  # rsync removed what it used


def store_record(home: str, name: str) -> dict:
    from bkmd import store

    path = os.path.join(home, "jobs.yaml")
    records, _, _ = store.apply_journal(path, store.load_jobs(path))  # as bkmd saved it
    [record] = [r for r in records if r["name"] == name]
    return record


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def test_wait_on_a_terminal_shows_one_live_progress_line(bkmd):
    from helpers import run_in_terminal

    source = os.path.join(bkmd.home, "src")
    # 6 s at 1 MiB/s: rsync's total is known once its percent pins it down (within 2 %), and
    # the speed after a few one-second windows; the ETA needs both.
    # a.txt first: rsync's file list (incremental recursion) is complete once it is done.
    make_tree(source, {"a.txt": 1000, "big.bin": 6 * MIB})
    create(bkmd.home, "tty", "rsync", source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "1024")
    code, screen = run_in_terminal(bkmd.home, ["job", "start", "tty", "--wait"])
    assert code == 0, screen
    updates = [part for part in screen.split("\r\x1b[K") if part.startswith("tty")]
    assert len(updates) >= 3  # redrawn in place, not one line per event
    assert any("running" in u and "%" in u and "ETA" in u for u in updates)
    assert "completed" in updates[-1] and " 100% " in updates[-1]
    assert "job tty completed:" in screen


def test_deleting_a_job_removes_its_logs(bkmd, data_dir):
    job = create(bkmd.home, "gone", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    assert bkm(bkmd.home, "job", "start", "gone", "--wait").returncode == 0
    log = os.path.join(bkmd.home, "logs", job["id"] + ".log")
    assert os.path.exists(log)
    assert bkm(bkmd.home, "job", "delete", "gone", "--yes").returncode == 0
    assert not os.path.exists(log)
