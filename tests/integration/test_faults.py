"""Fault injection: bkmd killed, stopped, starved of disk; transfers killed or hung; hostile
users and arguments. Run alone with: pytest -m faults"""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
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
)

pytestmark = pytest.mark.faults
KIB = 1024
TOOLS = ["rsync", "rclone"]


def job(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("tool", TOOLS)
def test_kill_9_mid_transfer_then_recover_and_resume(home, tool):
    daemon = Bkmd(home).start()
    source, dest = os.path.join(home, "src"), os.path.join(home, "dst")
    total = slow_tree(source)
    create(home, "k", tool, source + "/", dest, "--bwlimit", "1024")
    assert bkm(home, "job", "start", "k").returncode == 0
    wait_for(lambda: 0 < len(finished(source, dest)) < 8, 30, interval=0.05, what="some files finished, not all")
    ours = daemon.transfers()
    assert ours
    daemon.kill()
    wait_for(lambda: not alive(ours), 10, interval=0.05, what="the transfer to end with bkmd")
    done = finished(source, dest)
    assert done and len(done) < 8
    changed = ctimes(dest)
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
        # What was finished before the kill was not sent again: not rewritten (ctime; rclone
        # rewrites in place under the same inode), and not counted in what the resumed run moved.
        after = ctimes(dest)
        assert {n: after[n] for n in done} == {n: changed[n] for n in done}
        run = job(home, "k")["last_run"]
        assert run["resumed"] is True and run["exit_code"] == 0
        assert 0 < run["bytes"] <= total - sum(done.values()), (run["bytes"], total, done)
    finally:
        daemon.stop()


def interrupted_job(home: str, name: str, tool: str = "rsync") -> None:
    """Leave ``name`` interrupted: running, with bytes moved, when bkmd was killed."""
    daemon = Bkmd(home).start()
    source = os.path.join(home, name + "-src")
    make_tree(source, {"data.bin": 2 * MIB})
    create(home, name, tool, source + "/", os.path.join(home, name + "-dst"), "--bwlimit", "512")
    with Events(daemon.socket, name) as events:
        assert bkm(home, "job", "start", name).returncode == 0
        events.wait(lambda e: e["status"] == "running" and e["bytes_transferred"] > 0, 20, what="bytes moving")
        ours = daemon.transfers()
        daemon.kill()
    wait_for(lambda: not alive(ours), 10, interval=0.05, what="the transfer to end with bkmd")


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
        # Kill at a different point each round, but only once this round has had creates
        # acknowledged (a loaded machine may take a while to get there).
        wanted = len(acknowledged) + 15 + 5 * round_
        wait_for(lambda n=wanted: len(acknowledged) >= n, 60, interval=0.01, what=f"{wanted} acknowledged creates")
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


@pytest.mark.parametrize("tool", TOOLS)
def test_kill_9_of_the_transfer_fails_the_run(bkmd, tool):
    source = os.path.join(bkmd.home, "src")
    make_tree(source, {"data.bin": 4 * MIB})
    create(bkmd.home, "victim", tool, source + "/", os.path.join(bkmd.home, "dst"), "--bwlimit", "512")
    assert bkm(bkmd.home, "job", "start", "victim").returncode == 0
    ours = wait_for(bkmd.transfers, 10, what="the transfer")
    for pid, _ in alive(ours):  # this bkmd's own transfer, never another process of that name
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: job(bkmd.home, "victim")["status"] == "failed", 15, interval=0.1)
    found = job(bkmd.home, "victim")
    assert "signal 9" in found["last_run"]["error"] or found["last_run"]["exit_code"] not in (0, None)


def connected(pid: int) -> bool:
    """Whether process ``pid`` holds a connected Unix stream socket (/proc/net/unix state 03)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
    with open("/proc/net/unix") as f:
        next(f)
        return any(parts[5] == "03" and parts[6] in inodes for parts in (line.split() for line in f))


def test_sigstop_of_bkmd_delays_clients_but_loses_nothing(bkmd, data_dir):
    os.kill(bkmd.proc.pid, signal.SIGSTOP)
    clients: list[subprocess.Popen] = []
    try:
        env = dict(os.environ, BKM_HOME=bkmd.home)
        for n in range(5):
            argv = ["job", "create", f"s{n}", "--type", "rsync", "--source", data_dir, "--dest", f"{bkmd.home}/d{n}"]
            clients.append(
                subprocess.Popen(program("bkm") + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
        # Each has reached the stopped bkmd (the kernel accepted its connection) ...
        wait_for(lambda: all(connected(c.pid) for c in clients), 30, interval=0.05, what="5 connected clients")
        # ... and waits for it: none gives up or fails.
        stays(lambda: all(c.poll() is None for c in clients), 3, what="every client waiting")
    finally:
        os.kill(bkmd.proc.pid, signal.SIGCONT)
    for c in clients:
        _, stderr = c.communicate(timeout=30)
        assert c.returncode == 0, stderr
    assert len(bkmd.call("job.list")) == 5


def fake_tool(home: str, body: str, tool: str = "rsync") -> str:
    path = os.path.join(home, "fake-" + tool)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


def test_graceful_stop_within_15_s_when_the_transfer_ignores_sigterm(home, data_dir):
    tool = fake_tool(home, "trap '' TERM\nsleep 600")
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        # No resume at the next start: that would run the stubborn transfer again.
        f.write(f"rsync_path: {tool}\nresume_after_stop: false\n")
    daemon = Bkmd(home).start()
    create(home, "stubborn", "rsync", data_dir + "/", os.path.join(home, "dst"))
    assert bkm(home, "job", "start", "stubborn").returncode == 0
    stubborn = wait_for(lambda: daemon.transfers(("sleep",)), 10, what="the stubborn transfer")
    began = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    assert time.monotonic() - began < 15
    assert not alive(stubborn)
    daemon = Bkmd(home).start()
    try:
        assert job(home, "stubborn")["status"] == "paused"
    finally:
        daemon.stop()


@pytest.mark.parametrize("tool", TOOLS)
def test_stall_watchdog_fails_a_hung_transfer(home, data_dir, tool):
    fake = fake_tool(home, "sleep 600", tool)
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write(f"{tool}_path: {fake}\nstall_timeout: 2\nprogress_interval: 0.2\n")
    daemon = Bkmd(home).start()
    try:
        create(home, "hung", tool, data_dir + "/", os.path.join(home, "dst"))
        out = bkm(home, "job", "start", "hung", "--wait")
        assert out.returncode == 1 and "stalled" in out.stderr
        assert job(home, "hung")["last_run"]["error"] == "stalled"
        assert not daemon.transfers(("sleep",))
    finally:
        daemon.stop()


@pytest.mark.parametrize("tool", TOOLS)
def test_stall_watchdog_ends_a_real_transfer_frozen_mid_run(home, tool):
    """The real tool, stopped with SIGSTOP after it moved some bytes: it cannot even handle the
    watchdog's SIGTERM, so bkmd has to kill it after its grace period; the run is `stalled`."""
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write("stall_timeout: 2\nprogress_interval: 0.2\n")
    daemon = Bkmd(home).start()
    source = os.path.join(home, "src")
    make_tree(source, {"data.bin": 2 * MIB})
    create(home, "frozen", tool, source + "/", os.path.join(home, "dst"), "--bwlimit", "256")
    group = None
    try:
        with Events(daemon.socket, "frozen") as events:
            assert bkm(home, "job", "start", "frozen").returncode == 0
            events.wait(lambda e: e["status"] == "running" and e["bytes_transferred"] > 0, 20, what="bytes moving")
            ours = daemon.transfers()
            # The transfer leads its own process group (bkmd starts it in a new session); its
            # helpers (rsync forks them in the same clock tick) are in that group too.
            leaders = [pid for pid, _ in ours if os.getpgid(pid) == pid]
            assert len(leaders) == 1 and all(os.getpgid(pid) == leaders[0] for pid, _ in ours)
            group = leaders[0]
            os.killpg(group, signal.SIGSTOP)
            failed = events.wait_status("failed", timeout=60)
        assert failed["percent"] < 100
        found = job(home, "frozen")
        assert found["status"] == "failed" and found["last_run"]["error"] == "stalled"
        wait_for(lambda: not alive(ours), 10, interval=0.05, what="the frozen transfer to be gone")
        assert "no progress for 2 s" in bkm(home, "logs", "frozen").stdout
        assert bkm(home, "watch", "frozen").returncode == 1
    finally:
        if group is not None:
            try:
                os.killpg(group, signal.SIGCONT)
            except ProcessLookupError:
                pass
        daemon.stop()


def test_a_store_write_over_the_file_size_limit_is_refused_and_bkmd_keeps_serving(home, data_dir):
    """The disk-full case without root: bkmd runs under RLIMIT_FSIZE just above the store's
    size, so writing a bigger store fails part-way (EFBIG), as on a full disk. The store is
    big (long excludes), so that the job logs and the activity log stay far below the limit."""
    patterns = [f"pattern-{i:03d}-" + "x" * 480 for i in range(100)]
    store_path = os.path.join(home, "jobs.yaml")
    daemon = Bkmd(home).start()
    try:
        create(home, "before", "rsync", data_dir + "/", os.path.join(home, "d1"), *(f"--exclude={p}" for p in patterns))
    finally:
        daemon.stop()
    size = os.path.getsize(store_path)
    assert size > 48 * KIB
    daemon = Bkmd(home)
    daemon.rlimits = {resource.RLIMIT_FSIZE: size + 16}  # no new job, no run record fits
    daemon.start()
    try:
        with open(store_path, "rb") as f:
            before = f.read()
        # A job bigger than the whole store does not fit in its journal either (jobs.yaml.journal).
        out = bkm(
            home,
            "job",
            "create",
            "during",
            "--type",
            "rsync",
            "--source",
            data_dir,
            "--dest",
            f"{home}/d2",
            *(f"--exclude={p}" for p in patterns + ["y" * 480] * 10),
        )
        assert out.returncode == 1 and "could not save" in out.stderr, out.stderr
        assert os.strerror(errno.EFBIG) in out.stderr and "Traceback" not in out.stderr
        # A start that cannot be saved does not happen: no transfer, the job as it was.
        started = bkm(home, "job", "start", "before")
        assert started.returncode == 1 and "could not save" in started.stderr, started.stderr
        shown = job(home, "before")
        assert shown["status"] == "pending" and shown["last_run"] is None
        assert not os.path.exists(os.path.join(home, "d1")) and not daemon.transfers()
        # The store on disk is byte for byte what it was, still loads, and no temp file is left.
        with open(store_path, "rb") as f:
            assert f.read() == before
        from bkmd import store

        assert [j["name"] for j in store.load_jobs(store_path)] == ["before"]
        assert [n for n in os.listdir(home) if n.startswith(".jobs.yaml")] == []
        # Still serving, what it serves is what is on disk, and a change that fits is saved.
        assert [j["name"] for j in json.loads(bkm(home, "job", "list", "--json").stdout)] == ["before"]
        small = bkm(home, "job", "create", "small", "--type", "rsync", "--source", data_dir, "--dest", f"{home}/d3")
        assert small.returncode == 0, small.stderr
        assert "could not save" in daemon.stderr()  # bkmd said so in its own log too
    finally:
        daemon.stop()
    daemon = Bkmd(home).start()
    try:
        listed = [(j["name"], j["excludes"]) for j in daemon.call("job.list")]
        assert sorted(listed) == [("before", patterns), ("small", [])]
    finally:
        daemon.stop()


@pytest.fixture
def small_disk():
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    from helpers import short_tempdir

    path = short_tempdir()
    # mode=0700: a tmpfs root is 1777 by default, and bkmd refuses a socket folder others can write to.
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", path]).returncode != 0:
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
    """Each time bkmd writes the store whole (the first job; then at stop, or when its journal
    is full) the file it replaces stays as jobs.yaml.bak. In between, changes go to the journal,
    and a stopped bkmd leaves jobs.yaml complete and no journal."""
    from bkmd import store

    bkm(bkmd.home, "job", "create", "one", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/x")
    bkm(bkmd.home, "job", "create", "two", "--type", "rsync", "--source", data_dir, "--dest", "/tmp/x")
    store_path = os.path.join(bkmd.home, "jobs.yaml")
    assert [j["name"] for j in store.load_jobs(store_path)] == ["one"]
    assert os.path.getsize(store_path + ".journal") > 0
    assert bkmd.stop() == 0
    assert [j["name"] for j in store.load_jobs(store_path)] == ["one", "two"]
    assert [j["name"] for j in store.load_jobs(store_path + ".bak")] == ["one"]
    assert not os.path.exists(store_path + ".journal")


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
