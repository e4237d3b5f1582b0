"""Running backups with the real rsync and rclone on real files, supervised by a real bkmd."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from helpers import MIB, RawClient, bkm, create, inodes, make_tree, tree, wait_for

KIB = 1024
TOOLS = ["rsync", "rclone"]


class Events:
    """Collects a job's job_update notifications on its own connection, from before the start."""

    def __init__(self, socket_path: str, job: str) -> None:
        self.client = RawClient(socket_path, timeout=120)
        self.snapshot = self.client.call("events.subscribe", jobs=[job])
        self.events: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                message = self.client.read()
                if message.get("method") == "job_update":
                    self.events.append(message["params"])
        except (ConnectionError, OSError, ValueError):
            pass

    def wait_status(self, *statuses: str, timeout: float = 60) -> dict:
        return wait_for(
            lambda: next((e for e in self.events if e["status"] in statuses), None),
            timeout,
            what=f"a {'/'.join(statuses)} event",
        )

    def close(self) -> None:
        # Wake the reader first: closing a file another thread is reading blocks until it returns.
        import socket

        self.client.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.client.close()


@pytest.mark.parametrize("tool", TOOLS)
def test_throttled_run_completes_with_true_live_progress(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    make_tree(source, {"big.bin": 5 * MIB, "small/a.txt": 3000, "small/b.txt": 5000})
    size = 5 * MIB + 8000
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


def running_transfer(pid_of_bkmd: int) -> list[int]:
    """Pids of bkmd's transfer children (each leads its own process group)."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True).stdout
    return [
        int(p)
        for p, pp, comm in (line.split(None, 2) for line in out.splitlines())
        if int(pp) == pid_of_bkmd and comm.strip() in ("rsync", "rclone")
    ]


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
    make_tree(source, {f"f{i:02d}.bin": 512 * KIB for i in range(12)})
    create(bkmd.home, "p", tool, source + "/", dest, "--bwlimit", "1024")
    assert bkm(bkmd.home, "job", "start", "p").returncode == 0
    wait_for(
        lambda: json.loads(bkm(bkmd.home, "job", "show", "p", "--json").stdout)["progress"]["percent"] >= 30,
        30,
        interval=0.2,
        what="a third of the transfer",
    )
    out = bkm(bkmd.home, "job", "pause", "p", "--json")
    assert out.returncode == 0, out.stderr
    paused = json.loads(out.stdout)
    assert paused["status"] == "paused" and 0 < paused["progress"]["percent"] < 100
    assert running_transfer(bkmd.proc.pid) == []
    source_files = tree(source)
    complete = {name for name, data in tree(dest).items() if source_files.get(name) == data}
    assert complete and len(complete) < len(source_files)
    before = inodes(dest)
    frozen = snapshot(dest)
    time.sleep(1.5)  # a real interval during which nothing may write
    assert snapshot(dest) == frozen
    out = bkm(bkmd.home, "job", "start", "p", "--wait")
    assert out.returncode == 0, out.stderr
    assert tree(dest) == source_files
    after = inodes(dest)
    assert all(after[name] == before[name] for name in complete)
    job = json.loads(bkm(bkmd.home, "job", "show", "p", "--json").stdout)
    assert job["last_run"]["resumed"] is True and [r["exit_code"] for r in job["runs"]][-1] == 0
    # The resumed run moved less than everything: finished files were skipped.
    assert job["last_run"]["bytes"] < 12 * 512 * KIB


def test_a_removed_source_fails_with_the_exit_code_and_a_readable_error(bkmd, data_dir):
    create(bkmd.home, "gone", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    os.rename(data_dir, data_dir + ".moved")
    out = bkm(bkmd.home, "job", "start", "gone", "--wait")
    assert out.returncode == 1
    assert "bkm: error: job gone failed: rsync exit 23" in out.stderr and "No such file or directory" in out.stderr
    job = json.loads(bkm(bkmd.home, "job", "show", "gone", "--json").stdout)
    assert job["status"] == "failed" and job["last_run"]["exit_code"] == 23
    assert "change_dir" in job["last_run"]["error"] or "link_stat" in job["last_run"]["error"]


def test_rclone_failure_is_failed_with_rclones_meaning(bkmd, data_dir):
    create(bkmd.home, "rgone", "rclone", data_dir, os.path.join(bkmd.home, "dst"))
    os.rename(data_dir, data_dir + ".moved")
    out = bkm(bkmd.home, "job", "start", "rgone", "--wait")
    assert out.returncode == 1
    job = json.loads(bkm(bkmd.home, "job", "show", "rgone", "--json").stdout)
    assert job["status"] == "failed" and job["last_run"]["exit_code"] == 3
    assert "directory not found" in job["last_run"]["error"]


def test_wait_exits_5_when_the_job_is_paused_from_elsewhere(bkmd):
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"big.bin": 4 * MIB})
    create(bkmd.home, "w", "rsync", source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "512")
    waiter = subprocess.Popen(
        ["env", f"BKM_HOME={bkmd.home}", *__import__("helpers").program("bkm"), "job", "start", "w", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: json.loads(bkm(bkmd.home, "job", "show", "w", "--json").stdout)["status"] == "running", 20)
    assert bkm(bkmd.home, "job", "pause", "w").returncode == 0
    stdout, stderr = waiter.communicate(timeout=30)
    assert waiter.returncode == 5, stderr
    assert "was paused" in stderr


def test_queue_with_one_slot(bkmd):
    bkm(bkmd.home, "settings", "set", "max_concurrent_jobs", "1")
    for name in ("one", "two"):
        source = os.path.join(bkmd.home, name)
        make_tree(source, {"data.bin": 2 * MIB})
        create(bkmd.home, name, "rsync", source + "/", os.path.join(bkmd.home, name + "-dst"), "--bwlimit", "1024")
    second = Events(bkmd.socket, "two")
    assert bkm(bkmd.home, "job", "start", "one").returncode == 0
    out = bkm(bkmd.home, "job", "start", "two", "--json")
    assert json.loads(out.stdout)["status"] == "queued"
    assert json.loads(bkm(bkmd.home, "job", "show", "one", "--json").stdout)["status"] == "running"
    second.wait_status("completed", timeout=60)
    second.close()
    statuses = [e["status"] for e in second.events]
    assert statuses.index("queued") < statuses.index("running") < statuses.index("completed")
    first = json.loads(bkm(bkmd.home, "job", "show", "one", "--json").stdout)
    then = json.loads(bkm(bkmd.home, "job", "show", "two", "--json").stdout)
    assert first["status"] == "completed"
    # The second run began only once the first had ended.
    assert then["last_run"]["started_at"] >= first["last_run"]["finished_at"]


def test_pausing_a_queued_job(bkmd):
    bkm(bkmd.home, "settings", "set", "max_concurrent_jobs", "1")
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"data.bin": 2 * MIB})
    create(bkmd.home, "a", "rsync", source + "/", os.path.join(bkmd.home, "a"), "--bwlimit", "512")
    create(bkmd.home, "b", "rsync", source + "/", os.path.join(bkmd.home, "b"))
    bkm(bkmd.home, "job", "start", "a")
    assert json.loads(bkm(bkmd.home, "job", "start", "b", "--json").stdout)["status"] == "queued"
    assert json.loads(bkm(bkmd.home, "job", "pause", "b", "--json").stdout)["status"] == "paused"
    assert bkm(bkmd.home, "job", "pause", "b").returncode == 5
    bkm(bkmd.home, "job", "pause", "a")


@pytest.mark.parametrize("tool", TOOLS)
def test_excludes_apply_and_a_rerun_copies_what_changed(bkmd, tool):
    source, dest = os.path.join(bkmd.home, "src"), os.path.join(bkmd.home, "dst")
    make_tree(source, {"keep.txt": 2000, "note.tmp": 100, "cache/x.bin": 1000, "sub/y.txt": 3000})
    create(bkmd.home, "e", tool, source + "/", dest, "--exclude", "*.tmp", "--exclude", "cache/**")
    assert bkm(bkmd.home, "job", "start", "e", "--wait").returncode == 0
    assert set(tree(dest)) == {"keep.txt", "sub/y.txt"}
    untouched = os.stat(os.path.join(dest, "sub/y.txt")).st_ino
    with open(os.path.join(source, "keep.txt"), "wb") as f:
        f.write(b"changed content")
    make_tree(source, {"new.txt": 500})
    assert bkm(bkmd.home, "job", "start", "e", "--wait").returncode == 0
    copied = tree(dest)
    assert copied["keep.txt"] == b"changed content" and "new.txt" in copied
    assert os.stat(os.path.join(dest, "sub/y.txt")).st_ino == untouched
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


def test_sigterm_during_a_transfer_pauses_it(home):
    from helpers import Bkmd

    daemon = Bkmd(home).start()
    source = os.path.join(home, "src")
    make_tree(source, {"big.bin": 4 * MIB})
    create(home, "s", "rsync", source + "/", os.path.join(home, "dst"), "--bwlimit", "512")
    bkm(home, "job", "start", "s")
    wait_for(lambda: running_transfer(daemon.proc.pid), 10, what="the transfer")
    children = running_transfer(daemon.proc.pid)
    assert daemon.stop(signal.SIGTERM) == 0
    assert all(not os.path.exists(f"/proc/{pid}") for pid in children)
    daemon = Bkmd(home).start()
    try:
        job = json.loads(bkm(home, "job", "show", "s", "--json").stdout)
        assert job["status"] == "paused" and job["last_run"]["finished_at"]
    finally:
        daemon.stop()


def test_wait_on_a_terminal_shows_one_live_progress_line(bkmd):
    from helpers import run_in_terminal

    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"big.bin": 3 * MIB})
    create(bkmd.home, "tty", "rsync", source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "1024")
    code, screen = run_in_terminal(bkmd.home, ["job", "start", "tty", "--wait"])
    assert code == 0, screen
    updates = [part for part in screen.split("\r\x1b[K") if part.startswith("tty")]
    assert len(updates) >= 3  # redrawn in place, not one line per event
    assert any("running" in u and "%" in u and "ETA" in u for u in updates)
    assert "completed" in updates[-1] and "100.0%" in updates[-1]
    assert "job tty completed:" in screen


def test_deleting_a_job_removes_its_logs(bkmd, data_dir):
    job = create(bkmd.home, "gone", "rsync", data_dir + "/", os.path.join(bkmd.home, "dst"))
    assert bkm(bkmd.home, "job", "start", "gone", "--wait").returncode == 0
    log = os.path.join(bkmd.home, "logs", job["id"] + ".log")
    assert os.path.exists(log)
    assert bkm(bkmd.home, "job", "delete", "gone", "--yes").returncode == 0
    assert not os.path.exists(log)
