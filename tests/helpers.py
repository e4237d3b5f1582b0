"""Running the real bkmd and bkm in tests: short private homes, deadlines instead of sleeps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

BIN = os.path.dirname(sys.executable)
MIB = 1024 * 1024


def program(name: str) -> list[str]:
    """The installed console script when there is one, else the module with this Python."""
    script = os.path.join(BIN, name)
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", {"bkm": "bkm.cli", "bkmd": "bkmd"}[name]]


def short_tempdir() -> str:
    # Socket paths must stay under 107 bytes: keep homes short whatever TMPDIR is.
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="bkm-", dir=base)


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def can_connect(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


class Bkmd:
    """One real bkmd process in its own home."""

    def __init__(self, home: str, *args: str, env: dict | None = None) -> None:
        self.home = home
        self.args = list(args)
        self.env = env
        self.socket = os.path.join(home, "bkmd.sock")
        self.proc: subprocess.Popen | None = None
        self.prefix: list[str] = []  # e.g. setpriv, to run it as another user
        self.stderr_path = os.path.join(home, f"bkmd-{time.monotonic_ns()}.err")

    def start(self, wait: bool = True) -> Bkmd:
        env = dict(os.environ, **(self.env or {}))
        env.pop("BKM_SOCKET", None)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.prefix + program("bkmd") + ["--home", self.home, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        if wait:
            wait_for(lambda: self.proc.poll() is not None or can_connect(self.socket), 15, what="bkmd socket")
            if self.proc.poll() is not None:
                raise AssertionError(f"bkmd exited {self.proc.returncode}: {self.stderr()}")
        return self

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("bkmd did not stop in time") from None
        self._stderr.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and not self._stderr.closed:
            self._stderr.close()

    def connect(self) -> RawClient:
        return RawClient(self.socket)

    def call(self, method: str, **params: Any) -> Any:
        with self.connect() as client:
            return client.call(method, **params)


class RawClient:
    """A bare socket speaking lines, for protocol tests."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.next_id = 0

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("bkmd closed the connection")
        return json.loads(line)

    def exchange(self, data: bytes) -> Any:
        self.send_raw(data)
        return self.read()

    def request(self, method: str, params: Any = None) -> dict:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            message["params"] = params
        return self.exchange(json.dumps(message).encode() + b"\n")

    def call(self, method: str, **params: Any) -> Any:
        reply = self.request(method, params)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]


def bkm(
    home: str | None, *args: str, input: str | None = None, env: dict | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("BKM_SOCKET", None)
    full_env.pop("BKM_HOME", None)
    if home is not None:
        full_env["BKM_HOME"] = home
    full_env.update(env or {})
    return subprocess.run(
        program("bkm") + list(args),
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def run_in_terminal(
    home: str, args: list[str], timeout: float = 60.0, prompt: bytes | None = None, reply: bytes | None = None
) -> tuple[int, str]:
    """Run bkm with a pseudo-terminal as stdin, stdout and stderr; return (exit code, screen).
    When ``prompt`` appears, type ``reply`` and Enter, or with no reply press Ctrl-C."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.environ["BKM_HOME"] = home
        os.environ.pop("BKM_SOCKET", None)
        argv = program("bkm") + args
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        if prompt is not None and prompt in output:
            if reply is None:
                os.kill(pid, signal.SIGINT)
            else:
                os.write(fd, reply + b"\r")
            prompt = None
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child is gone and the terminal closed
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def make_tree(root: str, files: dict[str, int]) -> None:
    for name, size in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(size))


def tree(root: str) -> dict[str, bytes]:
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".rsync-partial"]
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def inodes(root: str) -> dict[str, int]:
    return {name: os.stat(os.path.join(root, name)).st_ino for name in tree(root)}


def create(home: str, name: str, tool: str, source: str, dest: str, *extra: str) -> dict:
    out = bkm(home, "job", "create", name, "--type", tool, "--source", source, "--dest", dest, *extra, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
