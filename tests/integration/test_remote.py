"""`bkm --host ssh://` and `bkm bridge` through a real sshd and the real ssh client.

The far side is the same machine reached through OpenSSH on a loopback port: the bytes go
through ssh, the far side's login shell and `bkm bridge` exactly as they would on a server.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import Bkmd, bkm, program, short_tempdir, slow_tree
from sshd import Sshd


@pytest.fixture
def sshd():
    server = Sshd().start()
    yield server
    server.cleanup()


def remote(sshd: Sshd, url: str, *args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess:
    return bkm(None, "--host", url, *args, env=sshd.env(**env), timeout=timeout)


def shown(out: subprocess.CompletedProcess):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_bridge_relays_requests_and_is_exit_3_without_bkmd(bkmd, home):
    request = b'{"jsonrpc":"2.0","id":7,"method":"daemon.status","params":{}}\n'
    out = subprocess.run(
        program("bkm") + ["bridge"], input=request, capture_output=True, env=dict(os.environ, BKM_HOME=home), timeout=30
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["id"] == 7 and answer["result"]["pid"] == bkmd.proc.pid
    bkmd.stop()
    out = subprocess.run(
        program("bkm") + ["bridge"], input=b"", capture_output=True, env=dict(os.environ, BKM_HOME=home), timeout=30
    )
    assert out.returncode == 3
    assert out.stderr.decode().startswith("bkm: error: bkmd is not running")


def test_commands_through_ssh_act_on_the_far_bkmd_as_they_do_locally(sshd, bkmd, home):
    url = sshd.add_host("alpha", home)
    source = os.path.join(home, "src")
    slow_tree(source)
    dest = os.path.join(home, "dest")
    created = shown(
        remote(sshd, url, "job", "create", "far", "--type", "rsync", "--source", source + "/", "--dest", dest,
               "--bwlimit", "1024", "--json")
    )  # fmt: skip
    assert bkmd.call("job.get", job="far")["id"] == created["id"]  # made on that bkmd
    # Relative paths would name this machine's folders: refused, with the host in the hint.
    out = remote(sshd, url, "job", "create", "rel", "--type", "rsync", "--source", "src/", "--dest", "d")
    assert out.returncode == 2 and "relative path" in out.stderr and "on alpha" in out.stderr
    assert "Traceback" not in out.stderr

    env = sshd.env()
    follower = subprocess.Popen(
        program("bkm") + ["--host", url, "logs", "far", "-f"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher = None
    try:
        out = remote(sshd, url, "job", "start", "far")
        assert out.returncode == 0 and out.stdout.strip() == "job far started", out.stderr
        # Events arrive through ssh: the watcher sees the run move.
        watcher = subprocess.Popen(
            program("bkm") + ["--host", url, "watch", "far", "--json"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        moving = None
        for line in watcher.stdout:
            event = json.loads(line)
            if event["status"] == "running" and event["bytes_transferred"] > 0:
                moving = event
                break
        assert moving is not None and moving["job_id"] == created["id"], watcher.stderr.read()
        followed = []
        for line in follower.stdout:
            followed.append(line)
            if "run started" in line:
                break
        assert any("run started" in line for line in followed), followed
        out = remote(sshd, url, "job", "pause", "far")
        assert out.returncode == 0 and out.stdout.startswith("job far paused at"), out.stderr
        watcher.wait(30)  # a watched job that stops running ends the watch, as locally: 5 paused
        assert watcher.returncode == 5
    finally:
        for proc in (watcher, follower):
            if proc is None:
                continue
            proc.kill()
            proc.wait()
    # The same questions, asked here and through ssh, get the same answers.
    for args in (["job", "show", "far", "--json"], ["job", "list", "--json"], ["job", "history", "far", "--json"]):
        assert shown(remote(sshd, url, *args)) == shown(bkm(home, *args)), args
    assert shown(remote(sshd, url, "job", "show", "far", "--json"))["status"] == "paused"
    here = bkm(home, "job", "show", "far").stdout.splitlines()
    there = remote(sshd, url, "job", "show", "far").stdout.splitlines()
    assert [line for line in there if "ago)" not in line] == [line for line in here if "ago)" not in line]
    out = remote(sshd, url, "doctor")
    assert out.returncode == 2 and "works on this machine only" in out.stderr
    # Jobs as code through ssh: the far jobs exported and applied back there change nothing.
    exported = remote(sshd, url, "export")
    assert exported.returncode == 0 and "name: far" in exported.stdout
    out = bkm(None, "--host", url, "apply", "--dry-run", "-", input=exported.stdout, env=sshd.env())
    assert out.returncode == 0 and "nothing to do" in out.stdout, out.stdout + out.stderr


def test_ssh_failures_are_exit_3_with_one_line_naming_the_cause(sshd, home):
    sshd.add_host("alpha", home)
    cases = {
        # Nothing listens there.
        f"ssh://alpha:{_closed_port()}": "Connection refused",
        # A host key this client has never seen, with StrictHostKeyChecking=yes.
        "ssh://stranger": "Host key verification failed",
        # bkmd does not run on the far side.
        "ssh://alpha": "on alpha: bkmd is not running",
    }
    for url, cause in cases.items():
        out = remote(sshd, url, "job", "list")
        assert out.returncode == 3, (url, out.stderr)
        lines = out.stderr.splitlines()
        assert lines[0].startswith("bkm: error: ") and cause in lines[0], (url, out.stderr)
        assert all(line.startswith("hint: ") for line in lines[1:]), (url, out.stderr)
        assert "Traceback" not in out.stderr
    # The far side has no bkm (not on its PATH).
    out = remote(sshd, "ssh://alpha", "status", BKM_REMOTE_PATH="bkm-not-installed-here")
    assert out.returncode == 3
    lines = out.stderr.splitlines()
    # bash says "command not found", dash (a normal user's /bin/sh login shell) "not found".
    assert lines[0].startswith("bkm: error: bkm is not installed on alpha") and "not found" in lines[0]
    assert lines[1:] and lines[1].startswith("hint: install bkm on alpha")


def test_the_user_and_port_of_the_url_reach_ssh_and_bad_urls_are_refused(sshd, home):
    Bkmd(home).start()
    sshd.add_host("alpha", home)
    out = remote(sshd, f"ssh://{sshd.user}@alpha:{sshd.port}", "daemon", "status", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["socket"] == os.path.join(home, "bkmd.sock")
    # BKM_HOST works as --host does.
    out = bkm(None, "job", "list", "--json", env=sshd.env(BKM_HOST="ssh://alpha"))
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stderr
    # unix:// names a socket on this machine.
    out = bkm(None, "--host", f"unix://{home}/bkmd.sock", "job", "list", "--json", env=sshd.env())
    assert out.returncode == 0, out.stderr
    for url in ("ssh://-oProxyCommand=sh", "http://alpha", "ssh://alpha:99999", "unix://rel/path"):
        out = bkm(None, "--host", url, "job", "list", env=sshd.env())
        assert out.returncode == 2 and out.stderr.startswith(f"bkm: error: bad host URL '{url}'"), out.stderr
    out = bkm(None, "--host", "ssh://alpha", "--home", home, "job", "list", env=sshd.env())
    assert out.returncode == 2 and "two different bkmds" in out.stderr


def _closed_port() -> int:
    from sshd import free_port

    return free_port()  # bound and released: nothing listens there now


def test_remote_home_is_private_to_each_alias(sshd):
    """Two aliases, two homes: the same command reaches two different bkmds."""
    homes = [short_tempdir(), short_tempdir()]
    try:
        daemons = [Bkmd(h).start() for h in homes]
        urls = [sshd.add_host(f"h{i}", h) for i, h in enumerate(homes)]
        pids = [shown(remote(sshd, url, "daemon", "status", "--json"))["pid"] for url in urls]
        assert pids == [d.proc.pid for d in daemons]
    finally:
        for h in homes:
            for daemon in Bkmd.started:
                if daemon.home == h:
                    daemon.kill()
            subprocess.run(["rm", "-rf", h], check=False)


def _hosts_file(sshd: Sshd, hosts: dict[str, str]) -> str:
    path = sshd.path(f"hosts-{len(os.listdir(sshd.dir))}.yaml")
    with open(path, "w") as f:
        f.write("hosts:\n" + "".join(f"  {name}: {url}\n" for name, url in hosts.items()))
    return path


def _fleet(sshd: Sshd, hosts: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    import time

    began = time.monotonic()
    out = bkm(None, "fleet", *args, "--hosts", hosts, env=sshd.env(COLUMNS="300"))  # rows not cut
    return out, time.monotonic() - began


def test_fleet_asks_every_host_at_once_and_names_the_unreachable_one(sshd, data_dir, home):
    other = short_tempdir()
    try:
        Bkmd(home).start()
        Bkmd(other).start()
        hosts = {
            "alpha": sshd.add_host("alpha", home),
            "beta": sshd.add_host("beta", other),
            "gamma": f"ssh://alpha:{_closed_port()}",
        }
        assert bkm(home, "job", "create", "docs", "--type", "rsync", "--source", data_dir + "/",
                   "--dest", os.path.join(home, "d"), "--json").returncode == 0  # fmt: skip
        assert bkm(home, "job", "start", "docs", "--wait").returncode == 0
        assert bkm(other, "job", "create", "mail", "--type", "rsync", "--source", os.path.join(other, "none"),
                   "--dest", os.path.join(other, "d")).returncode == 2  # fmt: skip
        os.makedirs(os.path.join(other, "mail"))
        assert bkm(other, "job", "create", "mail", "--type", "rsync", "--source", os.path.join(other, "mail"),
                   "--dest", os.path.join(other, "d")).returncode == 0  # fmt: skip
        everything = _hosts_file(sshd, hosts)

        out, _ = _fleet(sshd, everything, "status", "--json")
        assert out.returncode == 1, out.stderr  # gamma did not answer
        rows = json.loads(out.stdout)
        assert [(r["host"], r["reachable"]) for r in rows] == [("alpha", True), ("beta", True), ("gamma", False)]
        assert rows[0]["counts"]["completed"] == 1 and rows[0]["last_success_at"] is not None
        assert rows[1]["counts"]["pending"] == 1 and rows[1]["last_success_at"] is None
        assert "Connection refused" in rows[2]["error"]
        out, _ = _fleet(sshd, everything, "status")
        lines = out.stdout.splitlines()
        assert out.returncode == 1 and len(lines) == 4 and lines[0].split()[:3] == ["HOST", "REACHABLE", "JOBS"]
        assert lines[3].split()[:2] == ["gamma", "no"]
        assert lines[3].endswith(f"cannot reach {hosts['gamma']}: ssh: connect to host 127.0.0.1 port "
                                 f"{hosts['gamma'].rsplit(':', 1)[1]}: Connection refused")  # fmt: skip
        out, _ = _fleet(sshd, everything, "list", "--json")
        assert out.returncode == 1 and "host gamma did not answer" in out.stderr
        assert sorted((j["host"], j["name"]) for j in json.loads(out.stdout)) == [("alpha", "docs"), ("beta", "mail")]
        # Every host answers and nothing is failed or stale: exit 0.
        out, _ = _fleet(sshd, _hosts_file(sshd, {k: hosts[k] for k in ("alpha", "beta")}), "status")
        assert out.returncode == 0, out.stdout + out.stderr

        # At once, not one after another: the fleet takes about as long as its slowest host.
        # Measured in turns (each host alone, then all), best of four each, so that a moment of
        # load on the machine falls on both sides of the comparison.
        singles = {name: _hosts_file(sshd, {name: url}) for name, url in hosts.items()}
        alone = {name: [] for name in singles}
        together = []
        for _ in range(4):
            for name, path in singles.items():
                alone[name].append(_fleet(sshd, path, "status")[1])
            together.append(_fleet(sshd, everything, "status")[1])
        slowest = max(min(times) for times in alone.values())
        assert min(together) < 1.5 * slowest, (together, alone)
    finally:
        for daemon in Bkmd.started:
            if daemon.home == other:
                daemon.kill()
        subprocess.run(["rm", "-rf", other], check=False)


def test_a_host_that_never_speaks_is_ssh_s_own_timeout_within_the_fleet_timeout(sshd, home):
    import socket
    import time

    sshd.add_host("alpha", home)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hosts = _hosts_file(sshd, {"mute": f"ssh://alpha:{silent.getsockname()[1]}"})
        began = time.monotonic()
        out, _ = _fleet(sshd, hosts, "status", "--json", "--timeout", "2")
        took = time.monotonic() - began
    (row,) = json.loads(out.stdout)
    assert out.returncode == 1 and row["reachable"] is False
    assert "timed out" in row["error"] and row["error"].startswith("cannot reach ssh://alpha:"), row["error"]
    assert took < 8, took


def test_fleet_refuses_a_bad_hosts_file_with_its_form(sshd):
    out = bkm(None, "fleet", "status", "--hosts", sshd.path("missing.yaml"), env=sshd.env())
    assert out.returncode == 2 and out.stderr.startswith("bkm: error: no hosts file at ")
    bad = _hosts_file(sshd, {"nas": "nas.local"})
    out = bkm(None, "fleet", "status", "--hosts", bad, env=sshd.env())
    assert out.returncode == 2 and "host nas: bad host URL 'nas.local'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    with open(bad, "wb") as f:
        f.write(b"hosts:\n  b\xff: ssh://alpha\n")
    out = bkm(None, "fleet", "status", "--hosts", bad, env=sshd.env())
    assert out.returncode == 2 and "is not a YAML text file" in out.stderr and "Traceback" not in out.stderr
