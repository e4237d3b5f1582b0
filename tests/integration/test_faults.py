"""Fault injection: bkmd killed, stopped, starved of disk; transfers killed or hung; hostile
users and arguments. Run alone with: pytest -m faults"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from helpers import MIB, Bkmd, RawClient, bkm, create, inodes, make_tree, program, tree, wait_for

pytestmark = pytest.mark.faults


def job(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def transfer_pids(name: str = "rsync") -> set[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_kill_9_mid_transfer_then_recover_and_resume(home):
    daemon = Bkmd(home).start()
    source, dest = os.path.join(home, "src"), os.path.join(home, "dst")
    make_tree(source, {f"f{i}.bin": 512 * 1024 for i in range(8)})
    create(home, "k", "rsync", source + "/", dest, "--bwlimit", "1024")
    before = transfer_pids()
    assert bkm(home, "job", "start", "k").returncode == 0
    wait_for(lambda: job(home, "k")["progress"]["percent"] >= 30, 30, interval=0.2, what="a third")
    ours = transfer_pids() - before
    assert ours
    daemon.kill()
    wait_for(lambda: not (transfer_pids() & ours), 10, interval=0.1, what="the transfer to end")
    done = {n for n, data in tree(dest).items() if data == tree(source).get(n)}
    kept = inodes(dest)
    daemon = Bkmd(home).start()
    try:
        assert job(home, "k")["status"] == "interrupted"
        status = bkm(home, "status").stdout
        assert "interrupted when bkmd stopped: k" in status and "bkm recover" in status
        assert bkm(home, "recover").returncode == 0
        assert job(home, "k")["status"] == "paused"
        out = bkm(home, "job", "start", "k", "--wait")
        assert out.returncode == 0, out.stderr
        assert tree(dest) == tree(source)
        assert all(inodes(dest)[n] == kept[n] for n in done)
    finally:
        daemon.stop()


def interrupted_job(home: str, name: str) -> None:
    """Leave ``name`` interrupted: running when bkmd was killed."""
    daemon = Bkmd(home).start()
    source = os.path.join(home, name + "-src")
    make_tree(source, {"data.bin": 2 * MIB})
    create(home, name, "rsync", source + "/", os.path.join(home, name + "-dst"), "--bwlimit", "512")
    bkm(home, "job", "start", name)
    wait_for(lambda: job(home, name)["progress"]["bytes_transferred"] > 0, 20, interval=0.1)
    daemon.kill()


def test_dismiss_fails_them_with_interrupted(home):
    interrupted_job(home, "d")
    daemon = Bkmd(home).start()
    try:
        assert bkm(home, "recover", "--dismiss").returncode == 0
        found = job(home, "d")
        assert found["status"] == "failed" and found["last_run"]["error"] == "interrupted"
        assert bkm(home, "recover").stdout.strip() == "no interrupted jobs"
    finally:
        daemon.stop()


def test_on_interrupted_resume_completes_the_job_by_itself(home):
    interrupted_job(home, "auto")
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write("on_interrupted: resume\n")
    daemon = Bkmd(home).start()
    try:
        wait_for(lambda: job(home, "auto")["status"] == "completed", 30, interval=0.2, what="the resumed run")
        assert tree(os.path.join(home, "auto-dst")) == tree(os.path.join(home, "auto-src"))
    finally:
        daemon.stop()


def test_on_interrupted_pause(home):
    interrupted_job(home, "pz")
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write("on_interrupted: pause\n")
    daemon = Bkmd(home).start()
    try:
        assert job(home, "pz")["status"] == "paused"
    finally:
        daemon.stop()


def test_kill_9_rounds_while_15_clients_create(home, data_dir):
    acknowledged: set[str] = set()
    lock = threading.Lock()
    for round_ in range(8):
        daemon = Bkmd(home).start()
        stop = threading.Event()

        def client(n: int, socket_path: str, prefix: str, stop: threading.Event) -> None:
            i = 0
            while not stop.is_set():
                name = f"{prefix}-c{n}-{i}"
                try:
                    with RawClient(socket_path, timeout=5) as c:
                        reply = c.request(
                            "job.create", {"name": name, "type": "rsync", "source": data_dir, "dest": f"{home}/d"}
                        )
                except (OSError, ConnectionError, ValueError):
                    return  # bkmd is gone: whatever was not answered was not acknowledged
                if "result" in reply:
                    with lock:
                        acknowledged.add(name)
                i += 1

        threads = [threading.Thread(target=client, args=(n, daemon.socket, f"r{round_}", stop)) for n in range(15)]
        for t in threads:
            t.start()
        time.sleep(0.3 + 0.1 * round_)
        daemon.kill()
        stop.set()
        for t in threads:
            t.join(10)
        # The store always loads (a bkmd starts on it) and holds every acknowledged create.
        daemon = Bkmd(home).start()
        try:
            names = {j["name"] for j in daemon.call("job.list")}
        finally:
            daemon.stop()
        assert acknowledged <= names, sorted(acknowledged - names)[:5]
    assert len(acknowledged) > 100


def test_kill_9_of_the_transfer_fails_the_run(bkmd):
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"data.bin": 4 * MIB})
    create(bkmd.home, "victim", "rsync", source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "512")
    before = transfer_pids()
    bkm(bkmd.home, "job", "start", "victim")
    wait_for(lambda: transfer_pids() - before, 10, what="the transfer")
    for pid in transfer_pids() - before:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: job(bkmd.home, "victim")["status"] == "failed", 15, interval=0.1)
    found = job(bkmd.home, "victim")
    assert "signal 9" in found["last_run"]["error"] or found["last_run"]["exit_code"] not in (0, None)


def test_sigstop_of_bkmd_delays_clients_but_loses_nothing(bkmd, data_dir):
    results: list[int] = []

    def client(n: int) -> None:
        results.append(
            bkm(
                bkmd.home,
                "job",
                "create",
                f"s{n}",
                "--type",
                "rsync",
                "--source",
                data_dir,
                "--dest",
                f"{bkmd.home}/d{n}",
            ).returncode
        )

    os.kill(bkmd.proc.pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        time.sleep(3)
        assert results == []  # they wait for the stopped daemon; none gives up or fails
    finally:
        os.kill(bkmd.proc.pid, signal.SIGCONT)
    for t in threads:
        t.join(30)
    assert results == [0] * 5
    assert len(bkmd.call("job.list")) == 5


def fake_tool(home: str, body: str) -> str:
    path = os.path.join(home, "fake-rsync")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


def test_graceful_stop_within_15_s_when_the_transfer_ignores_sigterm(home, data_dir):
    tool = fake_tool(home, "trap '' TERM\nsleep 600")
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write(f"rsync_path: {tool}\n")
    daemon = Bkmd(home).start()
    create(home, "stubborn", "rsync", data_dir + "/", os.path.join(home, "dst"))
    bkm(home, "job", "start", "stubborn")
    wait_for(lambda: transfer_pids("sleep"), 10, what="the stubborn transfer")
    began = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    assert time.monotonic() - began < 15
    daemon = Bkmd(home).start()
    try:
        assert job(home, "stubborn")["status"] == "paused"
    finally:
        daemon.stop()


def test_stall_watchdog_fails_a_hung_transfer(home, data_dir):
    tool = fake_tool(home, "sleep 600")
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write(f"rsync_path: {tool}\nstall_timeout: 2\nprogress_interval: 0.2\n")
    daemon = Bkmd(home).start()
    try:
        create(home, "hung", "rsync", data_dir + "/", os.path.join(home, "dst"))
        out = bkm(home, "job", "start", "hung", "--wait")
        assert out.returncode == 1 and "stalled" in out.stderr
        assert job(home, "hung")["last_run"]["error"] == "stalled"
    finally:
        daemon.stop()


@pytest.fixture
def small_disk():
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    from helpers import short_tempdir

    path = short_tempdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", path]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    yield path
    subprocess.run(["umount", "-l", path])
    shutil.rmtree(path, ignore_errors=True)


def test_disk_full_during_a_write(small_disk, data_dir):
    home = small_disk
    daemon = Bkmd(home).start()
    try:
        assert (
            bkm(home, "job", "create", "before", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/x").returncode
            == 0
        )
        with open(os.path.join(home, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass  # the disk is full
        out = bkm(home, "job", "create", "during", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/y")
        assert out.returncode == 1 and "could not save" in out.stderr
        # A start that cannot be saved does not happen: no transfer, the job as it was.
        started = bkm(home, "job", "start", "before")
        assert started.returncode == 1 and "could not save" in started.stderr
        shown = job(home, "before")
        assert shown["status"] == "pending" and shown["last_run"] is None
        # Still serving, and what it serves is what is on disk.
        names = [j["name"] for j in json.loads(bkm(home, "job", "list", "--json").stdout)]
        assert names == ["before"]
        os.unlink(os.path.join(home, "filler"))
        assert (
            bkm(home, "job", "create", "after", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/z").returncode
            == 0
        )
    finally:
        daemon.stop()
    daemon = Bkmd(home).start()
    try:
        assert {j["name"] for j in daemon.call("job.list")} == {"before", "after"}
    finally:
        daemon.stop()


def test_last_good_generation_is_kept(bkmd, data_dir):
    bkm(bkmd.home, "job", "create", "one", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/x")
    bkm(bkmd.home, "job", "create", "two", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/x")
    from bkmd import store

    assert [j["name"] for j in store.load_jobs(os.path.join(bkmd.home, "jobs.yaml.bak"))] == ["one"]


def test_another_user_cannot_reach_the_socket(bkmd, data_dir):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run(as_nobody + program("bkm") + ["--version"], capture_output=True).returncode != 0:
        pytest.skip("this checkout's Python cannot be run by uid 65534")
    env = dict(os.environ, BKM_HOME=bkmd.home)
    for args in (["job", "list"], ["job", "create", "x", "--type", "rsync", "--source", "/", "--dest", "/tmp"]):
        out = subprocess.run(as_nobody + program("bkm") + args, capture_output=True, text=True, env=env)
        assert out.returncode == 3 and "permission denied" in out.stderr
    assert bkmd.call("job.list") == []


@pytest.mark.parametrize("tool", ["rsync", "rclone"])
def test_injection_attempts_create_no_file_and_run_no_command(bkmd, tool):
    marker = os.path.join(bkmd.home, "pwned")
    bare = f"bkm-pwned-{os.getpid()}"  # names cannot hold a '/': a command would run in bkmd's folder
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"a.txt": 10})
    attempts = {
        "name": [f"$(touch {bare})", f"; touch {bare}", f"`touch {bare}`"],
        "exclude": [f"--rsh=touch {marker}", f"-e touch {marker}", f"*; touch {marker}"],
    }
    for i, name in enumerate(attempts["name"]):
        created = create(bkmd.home, name, tool, source + "/", os.path.join(bkmd.home, f"n{i}"))
        assert bkm(bkmd.home, "job", "start", created["id"], "--wait").returncode == 0
    for i, pattern in enumerate(attempts["exclude"]):
        create(bkmd.home, f"x{i}", tool, source + "/", os.path.join(bkmd.home, f"x{i}"), "--exclude", pattern)
        bkm(bkmd.home, "job", "start", f"x{i}", "--wait")
    for path in (f"-e touch {marker}", f"--rsh=touch {marker}"):
        out = bkm(bkmd.home, "job", "create", "bad", "--type", tool, "--source", path, "--dest", "/tmp/x")
        assert out.returncode == 2
    weird = os.path.join(bkmd.home, "$(touch " + marker + ")")
    make_tree(weird, {"b.txt": 10})
    create(bkmd.home, "weird", tool, weird + "/", os.path.join(bkmd.home, "w"))
    assert bkm(bkmd.home, "job", "start", "weird", "--wait").returncode == 0
    assert not os.path.exists(marker)
    assert not os.path.exists(bare) and not os.path.exists(os.path.join(bkmd.home, bare))
