"""bkmd's life: one per store, a private socket, clean stops, a store it never damages."""

import os
import signal
import socket
import stat
import subprocess

import pytest
from helpers import Bkmd, bkm, can_connect, program


def test_socket_is_private(bkmd):
    assert stat.S_IMODE(os.stat(bkmd.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(bkmd.home).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(bkmd.socket).st_mode)
    # No temporary socket is left next to the real one.
    assert [n for n in os.listdir(bkmd.home) if n.endswith(".sk")] == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(home, sig):
    daemon = Bkmd(home).start()
    assert daemon.stop(sig) == 0
    assert not os.path.exists(daemon.socket)
    assert "Traceback" not in daemon.stderr()


def test_daemon_stop_command(bkmd):
    out = bkm(bkmd.home, "daemon", "stop")
    assert out.returncode == 0, out.stderr
    assert f"pid {bkmd.proc.pid}" in out.stdout
    assert bkmd.proc.wait(10) == 0
    assert not os.path.exists(bkmd.socket)


def test_second_daemon_is_refused_and_the_first_keeps_serving(bkmd):
    second = subprocess.run(program("bkmd") + ["--home", bkmd.home], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert f"in use by bkmd pid {bkmd.proc.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert bkmd.call("daemon.status")["pid"] == bkmd.proc.pid


def test_stale_socket_is_replaced(home):
    path = os.path.join(home, "bkmd.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    os.chmod(path, 0o666)
    stale.close()  # the file stays, nobody listens: what a killed daemon leaves
    assert not can_connect(path)
    daemon = Bkmd(home).start()
    try:
        assert daemon.call("daemon.status")["pid"] == daemon.proc.pid
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # not the stale socket's mode
    finally:
        daemon.stop()


def test_something_else_at_the_socket_path_is_not_clobbered(home):
    path = os.path.join(home, "bkmd.sock")
    with open(path, "w") as f:
        f.write("precious")
    out = subprocess.run(program("bkmd") + ["--home", home], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "not a socket" in out.stderr
    assert open(path).read() == "precious"


def test_store_survives_a_restart(home, data_dir):
    daemon = Bkmd(home).start()
    created = daemon.call("job.create", name="keep", type="rsync", source=data_dir, dest=home + "/d")
    daemon.call("settings.set", key="max_concurrent_jobs", value=5)
    assert daemon.stop() == 0
    daemon = Bkmd(home).start()
    try:
        assert daemon.call("job.get", job="keep") == {**created, "runs": []}
        assert daemon.call("settings.get", key="max_concurrent_jobs")["value"] == 5
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "name, content, where",
    [
        ("jobs.yaml", b"version: 1\njobs:\n- {id: x, name: [oops\n", ":4:"),
        ("jobs.yaml", b"version: 1\njobs:\n  - a\n - b\n", ":4:"),
        ("settings.yaml", b"max_concurrent_jobs: [1\n", ":2:"),
    ],
)
def test_a_store_that_does_not_parse_stops_bkmd_and_is_left_untouched(home, name, content, where):
    path = os.path.join(home, name)
    with open(path, "wb") as f:
        f.write(content)
    out = subprocess.run(program("bkmd") + ["--home", home], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"{path}{where}" in out.stderr
    assert "Traceback" not in out.stderr
    with open(path, "rb") as f:
        assert f.read() == content
    assert not os.path.exists(os.path.join(home, "bkmd.sock"))


def test_invalid_setting_value_stops_bkmd(home):
    path = os.path.join(home, "settings.yaml")
    with open(path, "w") as f:
        f.write("progress_interval: 0.01\n")
    out = subprocess.run(program("bkmd") + ["--home", home], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "progress_interval" in out.stderr and "0.2 to 60" in out.stderr


def test_too_long_socket_path_is_a_clear_error(home):
    long_path = os.path.join(home, "s" * 120 + ".sock")
    out = subprocess.run(
        program("bkmd") + ["--home", home, "--socket", long_path], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "more than the 107" in out.stderr and "Traceback" not in out.stderr
    client = bkm(home, "--socket", long_path, "job", "list")
    assert client.returncode == 2
    assert client.stderr.startswith("bkm: error: socket path is") and "Traceback" not in client.stderr


def test_socket_override(home):
    other = os.path.join(home, "alt.sock")
    daemon = Bkmd(home, "--socket", other)
    daemon.socket = other
    daemon.start()
    try:
        out = bkm(home, "status", "--json", env={"BKM_SOCKET": other})
        assert out.returncode == 0 and other in out.stdout
    finally:
        daemon.stop()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_socket_folder_others_can_write_to_is_refused(home, mode):
    folder = os.path.join(home, "open")
    os.mkdir(folder)
    os.chmod(folder, mode)
    out = subprocess.run(
        program("bkmd") + ["--home", home, "--socket", os.path.join(folder, "bkmd.sock")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"bkmd: error: the socket's folder {folder} (mode {mode:04o}) is writable by")
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    assert os.listdir(folder) == []


def test_a_missing_socket_folder_is_created_private(home):
    path = os.path.join(home, "new", "bkmd.sock")
    daemon = Bkmd(home, "--socket", path)
    daemon.socket = path
    daemon.start()
    try:
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        daemon.stop()
