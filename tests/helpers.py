"""Running the real bkmd and bkm in tests: short private homes, deadlines instead of sleeps."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

BIN = os.path.dirname(sys.executable)
MIB = 1024 * 1024


def program(name: str) -> list[str]:
    """The installed console script when there is one, else the module with this Python."""
    script = os.path.join(BIN, name)
    if os.path.exists(script):
        return [script]
    if name == "bkm":  # bkm.cli is a package without __main__: call its entry point
        return [sys.executable, "-c", "import sys; sys.argv[0] = 'bkm'; from bkm.cli import run; run()"]
    return [sys.executable, "-m", "bkmd"]


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


def stays(condition, seconds: float, interval: float = 0.05, what: str = "condition") -> None:
    """``condition`` holds, checked again and again, for ``seconds`` (an observation interval,
    for what must *not* happen: nothing written while paused, no client giving up)."""
    deadline = time.monotonic() + seconds
    while True:
        if not condition():
            raise AssertionError(f"{what} stopped holding within {seconds} s")
        if time.monotonic() > deadline:
            return
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

    # Every bkmd a test started; conftest kills any still running when the test ends, pass or fail.
    started: list[Bkmd] = []

    def __init__(self, home: str, *args: str, env: dict | None = None) -> None:
        self.home = home
        self.args = list(args)
        self.env = env
        self.socket = os.path.join(home, "bkmd.sock")
        self.proc: subprocess.Popen | None = None
        self.prefix: list[str] = []  # e.g. setpriv, to run it as another user
        # Resource limits for bkmd (and so its transfers), e.g. {resource.RLIMIT_FSIZE: 65536}:
        # set in the child before bkmd starts, which needs no root and no prlimit.
        self.rlimits: dict[int, int] = {}
        self.stderr_path = os.path.join(home, f"bkmd-{time.monotonic_ns()}.err")

    def _limit(self) -> None:
        for which, value in self.rlimits.items():
            resource.setrlimit(which, (value, value))

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
            preexec_fn=self._limit if self.rlimits else None,
        )
        Bkmd.started.append(self)
        if wait:
            wait_for(lambda: self.proc.poll() is not None or self._answers(), 15, what="bkmd socket")
            if self.proc.poll() is not None:
                raise AssertionError(f"bkmd exited {self.proc.returncode}: {self.stderr()}")
        return self

    def _answers(self) -> bool:
        """Whether this bkmd answers on the socket. Not just any connect: right after a kill -9,
        a child the dead bkmd forked but had not yet turned into rsync still holds its listening
        socket for a moment, and the kernel accepts connections on it that nobody will answer."""
        if not can_connect(self.socket):
            return False
        try:
            with RawClient(self.socket, timeout=0.5) as client:
                return client.call("daemon.status")["pid"] == self.proc.pid
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            return False

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

    def transfers(self, names: tuple[str, ...] = ("rsync", "rclone")) -> set[tuple[int, int]]:
        """(pid, start time) of this bkmd's transfer processes (its descendants named so)."""
        if self.proc is None or self.proc.poll() is not None:
            return set()
        return {(pid, start) for pid, (comm, start) in descendants(self.proc.pid).items() if comm in names}


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
        # As in a person's terminal: Ctrl-C interrupts. A test run started in the background
        # of a non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ["BKM_HOME"] = home
        os.environ.pop("BKM_SOCKET", None)
        argv = program("bkm") + args
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + timeout
    interrupted = None  # when Ctrl-C was last pressed
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        if prompt is not None and prompt in output:
            if reply is None:
                os.kill(pid, signal.SIGINT)
                interrupted = time.monotonic()
            else:
                os.write(fd, reply + b"\r")
            prompt = None
        elif interrupted is not None and time.monotonic() - interrupted > 1.0:
            # A SIGINT that lands after the prompt is written but before Python's input()
            # blocks in read() is only noticed at the next key: press Ctrl-C again, as a
            # person would (a race in CPython's input(), not in bkm).
            os.kill(pid, signal.SIGINT)
            interrupted = time.monotonic()
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


def create(home: str, name: str, tool: str, source: str, dest: str, *extra: str) -> dict:
    out = bkm(home, "job", "create", name, "--type", tool, "--source", source, "--dest", dest, *extra, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# -- processes: only this test's own, never matched machine-wide ----------------------------


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(command name, state, parent pid, start time in clock ticks) of ``pid``, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode("utf-8", "replace")
    fields = data[data.rindex(b")") + 2 :].split()
    return comm, fields[0].decode(), int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, tuple[str, int]]:
    """Every living process below ``root``: pid -> (command name, start time)."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is None or stat[1] in ("Z", "X"):
            continue
        children.setdefault(stat[2], []).append(int(entry))
        info[int(entry)] = (stat[0], stat[3])
    found: dict[int, tuple[str, int]] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in info and pid not in found:
            found[pid] = info[pid]
            todo.extend(children.get(pid, []))
    return found


def alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Those of ``processes`` (pid, start time) still running: a reused pid is not them."""
    living = set()
    for pid, start in processes:
        stat = _stat(pid)
        if stat is not None and stat[3] == start and stat[1] not in ("Z", "X"):
            living.add((pid, start))
    return living


# -- files ----------------------------------------------------------------------------------

PAST_NS = 1_600_000_000_123_456_789  # 2020-09-13, with nanoseconds: no copy in progress has it


def backdate(root: str) -> None:
    """Give every file under ``root`` an mtime in the past, so a file under its final name at
    the destination is finished only when its tool set that mtime (rclone writes in place)."""
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), ns=(PAST_NS, PAST_NS))


def slow_tree(source: str) -> int:
    """Four small files that finish at once, then four of 1 MiB: at --bwlimit 1024, whether the
    tool copies one file at a time (rsync) or four at once (rclone), some files are finished and
    others not for about 4 s. Backdated (see finished()). Returns the total size."""
    files = {**{f"a{i}.bin": 64 * 1024 for i in range(4)}, **{f"b{i}.bin": MIB for i in range(4)}}
    make_tree(source, files)
    backdate(source)
    return sum(files.values())


def finished(source: str, dest: str) -> dict[str, int]:
    """Files at ``dest`` completely copied from ``source`` (same mtime, then same bytes):
    name -> size. Both tools set the mtime only once a file's data is all written."""
    done = {}
    for folder, dirs, files in os.walk(dest):
        dirs[:] = [d for d in dirs if d != ".rsync-partial"]
        for name in files:
            copy = os.path.join(folder, name)
            original = os.path.join(source, os.path.relpath(copy, dest))
            try:
                if os.stat(original).st_mtime_ns != os.stat(copy).st_mtime_ns:
                    continue
                with open(original, "rb") as a, open(copy, "rb") as b:
                    if a.read() != b.read():
                        continue
            except FileNotFoundError:
                continue
            done[os.path.relpath(copy, dest)] = os.path.getsize(copy)
    return done


def ctimes(root: str) -> dict[str, int]:
    """Inode change times: any write, truncation or attribute change moves one. (Inode numbers
    prove nothing for rclone, which rewrites a file in place under the same inode.)"""
    return {name: os.stat(os.path.join(root, name)).st_ctime_ns for name in tree(root)}


# -- watching a bkmd --------------------------------------------------------------------------


class Events:
    """A connection subscribed to job_update events, read by a thread; the subscription is in
    place when the constructor returns (bkmd answered it), so start jobs after it."""

    def __init__(self, socket_path: str, *jobs: str, timeout: float = 120) -> None:
        self.client = RawClient(socket_path, timeout=timeout)
        self.snapshot = self.client.call("events.subscribe", **({"jobs": list(jobs)} if jobs else {}))
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

    def wait(self, predicate: Callable[[dict], bool], timeout: float = 60, what: str = "an event") -> dict:
        return wait_for(lambda: next((e for e in list(self.events) if predicate(e)), None), timeout, what=what)

    def wait_status(self, *statuses: str, name: str | None = None, timeout: float = 60) -> dict:
        return self.wait(
            lambda e: e["status"] in statuses and (name is None or e["name"] == name),
            timeout,
            what=f"a {'/'.join(statuses)} event" + (f" of {name}" if name else ""),
        )

    def close(self) -> None:
        # Wake the reader first: closing a file another thread is reading blocks until it returns.
        try:
            self.client.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.client.close()

    def __enter__(self) -> Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lines:
    """A child's output pipe read line by line by a thread, so a test waits with a deadline
    instead of blocking on readline()."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self.lines.append(line)

    def wait(self, predicate: Callable[[list[str]], bool], timeout: float = 20, what: str = "output") -> list[str]:
        wait_for(lambda: predicate(list(self.lines)), timeout, what=what)
        return list(self.lines)


def subscribers(home: str) -> int:
    with RawClient(os.path.join(home, "bkmd.sock")) as client:
        return client.call("daemon.status")["subscribers"]


def wait_for_subscribers(home: str, count: int, timeout: float = 20) -> None:
    """Until that many connections listen (a watch, a --wait or a follow has subscribed)."""
    wait_for(lambda: subscribers(home) >= count, timeout, interval=0.05, what=f"{count} subscriber(s)")


# -- captured output -------------------------------------------------------------------------

DATA = os.path.join(os.path.dirname(__file__), "data")


def job_record(**changes) -> dict:
    """A stored job with only what a record must have."""
    record = {
        "id": "0" * 32,
        "name": "a",
        "type": "rsync",
        "source": "/s",
        "dest": "/d",
        "bwlimit": 0,
        "excludes": [],
        "schedule": None,
        "retries": 0,
        "retry_wait_seconds": 60,
        "max_age_seconds": None,
        "hooks": {"before": [], "after": [], "on_success": [], "on_failure": []},
        "healthcheck": None,
        "notify": [],
        "tool_args": [],
        "mode": "copy",
        "keep": {},
        "status": "pending",
        "created_at": "2026-11-29T00:00:00Z",
        "updated_at": "2026-11-29T00:00:00Z",
    }
    record.update(changes)
    return record


def replay(name: str) -> tuple[int | None, list[tuple[float, str, bytes]]]:
    """A capture of every read from a tool's pipes (tests/data/CAPTURES.md): its exit code and
    (seconds since start, "out" or "err", the bytes read)."""
    import ast

    code, chunks = None, []
    with open(os.path.join(DATA, name + ".timing")) as f:
        for line in f:
            if line.startswith("# rc="):
                code = int(line.split()[1].split("=")[1])
            elif not line.startswith("#"):
                seconds, stream, _, data = line.split(None, 3)
                chunks.append((float(seconds), stream, ast.literal_eval(data)))
    return code, chunks
