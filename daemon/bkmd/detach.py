"""bkmd --detach: become a daemon with python-daemon, and let the caller return only once
the socket accepts connections (or with the reason it never will)."""

from __future__ import annotations

import fcntl
import os
import signal
import sys


class PidFile:
    """A pid file held with flock: a stale one (its holder dead) never blocks a start."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> PidFile:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise RuntimeError(f"{self.path} is held by a running bkmd (pid {holder or '?'})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


class Readiness:
    """A pipe from the daemon to the command that started it: "ok", or why not."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def wait(self) -> tuple[bool, str]:
        os.close(self.write_fd)
        chunks = []
        while True:
            chunk = os.read(self.read_fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.read_fd)
        text = b"".join(chunks).decode(errors="replace").strip()
        if text == "ok":
            return True, ""
        return False, text or "bkmd exited before it was ready"

    def tell(self, text: str) -> None:
        if self.write_fd is None:
            return
        try:
            os.write(self.write_fd, text.encode())
        except OSError:
            pass
        os.close(self.write_fd)
        self.write_fd = None


def detach(pidfile: str, run) -> int:
    """Fork; the child becomes a daemon and calls ``run(readiness)``; this process waits for
    readiness and returns the exit status for the command line."""
    readiness = Readiness()
    child = os.fork()
    if child:
        ok, reason = readiness.wait()
        os.waitpid(child, 0)  # the intermediate process; the daemon itself was forked from it
        if not ok:
            print(f"bkmd: error: {reason}", file=sys.stderr)
            return 1
        return 0
    os.close(readiness.read_fd)
    import daemon  # python-daemon

    context = daemon.DaemonContext(
        umask=0o027,  # python-daemon's default of 0 would make every file world-writable
        working_directory="/",
        detach_process=True,
        files_preserve=[readiness.write_fd],
        pidfile=PidFile(pidfile),
        # SIGTERM is bkmd's own business (a graceful stop), handled in its event loop.
        signal_map={signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None},
    )
    try:
        context.open()
    except Exception as e:  # e.g. the pid file is held
        readiness.tell(str(getattr(e, "__cause__", None) or e))
        os._exit(1)
    code = 1
    try:
        code = run(readiness)
    finally:
        readiness.tell("")  # if run() never said, the caller learns it failed
        context.close()
    os._exit(code)
