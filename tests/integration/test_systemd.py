"""Living on a real machine: bkmd --detach, sd_notify, socket activation, the units."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess

import pytest
from helpers import bkm, can_connect, program, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = os.path.join(ROOT, "systemd")


def bkmd(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        program("bkmd") + list(args),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **(env or {})),
        **kwargs,
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_detach_returns_with_the_socket_ready_and_daemon_stop_ends_it(home):
    out = bkmd("--home", home, "--detach")
    assert out.returncode == 0, out.stderr
    assert can_connect(os.path.join(home, "bkmd.sock"))  # no waiting: ready when it returned
    with open(os.path.join(home, "bkmd.pid")) as f:
        pid = int(f.read())
    try:
        assert json.loads(bkm(home, "status", "--json").stdout)["pid"] == pid
        assert oct(os.stat(os.path.join(home, "bkmd.pid")).st_mode & 0o777) == "0o640"  # umask 027
        again = bkmd("--home", home, "--detach")
        assert again.returncode == 1 and f"pid {pid}" in again.stderr
        assert bkm(home, "daemon", "stop").returncode == 0
        wait_for(lambda: not pid_alive(pid), 10, what="the daemon to exit")
        assert not os.path.exists(os.path.join(home, "bkmd.pid"))
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_stale_pid_file_does_not_block_a_start(home):
    assert bkmd("--home", home, "--detach").returncode == 0
    with open(os.path.join(home, "bkmd.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10)
    assert os.path.exists(os.path.join(home, "bkmd.pid"))  # left behind by the killed daemon
    out = bkmd("--home", home, "--detach")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(home, "bkmd.pid")) as f:
        second = int(f.read())
    assert second != pid
    assert bkm(home, "daemon", "stop").returncode == 0
    wait_for(lambda: not pid_alive(second), 10)


def test_detach_reports_why_it_could_not_start(home):
    with open(os.path.join(home, "jobs.yaml"), "w") as f:
        f.write("version: 1\njobs: [oops\n")
    out = bkmd("--home", home, "--detach")
    assert out.returncode == 1 and "jobs.yaml:3:" in out.stderr
    assert not can_connect(os.path.join(home, "bkmd.sock"))


def test_ready_and_stopping_reach_the_notify_socket(home):
    path = os.path.join(home, "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(15)
    proc = subprocess.Popen(
        program("bkmd") + ["--home", home, "--detach"],
        env=dict(os.environ, NOTIFY_SOCKET=path),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = listener.recv(4096).decode()
        assert "READY=1" in ready.splitlines() and "STATUS=serving 0 jobs" in ready
        assert proc.poll() is None  # under a notify socket --detach does not fork away
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in listener.recv(4096).decode().splitlines()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


def test_socket_activation_answers_the_first_call(home):
    if not shutil.which("systemd-socket-activate"):
        pytest.skip("systemd-socket-activate is not installed (package systemd)")
    path = os.path.join(home, "act.sock")
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", path, *program("bkmd"), "--home", home], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: os.path.exists(path), 10, what="the activation socket")
        out = bkm(home, "status", "--json", env={"BKM_SOCKET": path})
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["pid"] == activator.pid  # the activator execs bkmd in place
    finally:
        activator.terminate()
        activator.wait(20)


def installed_units(tmp_path) -> str:
    """The units with Exec paths pointing at this installation (verify checks they exist)."""
    bindir = os.path.dirname(os.path.realpath(program("bkmd")[0]))
    for name in ("bkmd.service", "bkmd.socket", "bkm-job@.service", "bkm-job@.timer"):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read().replace("/usr/local/bin/", bindir + "/")
        (tmp_path / name).write_text(text)
    for name in ("bkmd.service", "bkmd.socket"):
        with open(os.path.join(UNITS, "user", name)) as f:
            text = f.read().replace("%h/.local/bin/", bindir + "/")
        (tmp_path / ("user-" + name)).write_text(text)
    return str(tmp_path)


def verify(folder: str, *units: str, user: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if user:
        env["XDG_RUNTIME_DIR"] = folder
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", *(["--user"] if user else []), *units],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.fixture
def units(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (package systemd)")
    return installed_units(tmp_path)


def test_every_system_unit_verifies(units):
    out = verify(units, "bkmd.service", "bkmd.socket", "bkm-job@nightly.service", "bkm-job@nightly.timer")
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_user_units_verify(units, tmp_path):
    os.rename(os.path.join(units, "user-bkmd.service"), tmp_path / "bkmd.service")
    os.rename(os.path.join(units, "user-bkmd.socket"), tmp_path / "bkmd.socket")
    out = verify(units, "bkmd.service", "bkmd.socket", user=True)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_verify_would_catch_a_misspelt_directive(units):
    path = os.path.join(units, "broken.service")
    with open(path, "w") as f:
        f.write("[Service]\nExecStrat=/bin/true\nExecStart=/bin/true\n")
    out = verify(units, "broken.service")
    assert out.returncode != 0 and "ExecStrat" in out.stdout + out.stderr


def test_service_security_exposure_is_at_most_3(units):
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", os.path.join(units, "bkmd.service")],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for bkmd.service: (\d+\.\d+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 3.0


def test_timer_runs_the_job_template_with_wait():
    with open(os.path.join(UNITS, "bkm-job@.service")) as f:
        service = f.read()
    with open(os.path.join(UNITS, "bkm-job@.timer")) as f:
        timer = f.read()
    assert "bkm --system job start %i --wait" in service
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
