"""Talking to bkmd: connect, call, and turn RPC errors into the contract's exit codes.

This is the only place that maps protocol error codes to exit codes.
"""

from __future__ import annotations

# The C module, not `socket`: its Python wrapper builds enums of every constant at import,
# a tenth of a short command's start-up, for nothing the client uses.
import _socket
import json
from typing import Any

from bkm import errors, protocol
from bkm.paths import PathError, Paths, check_socket_path

CALL_TIMEOUT = 30.0
STOPPED_CHECK = 1.0  # seconds without an answer before looking whether bkmd is stopped


def _interactive() -> bool:
    import sys

    try:
        return sys.stderr.isatty() and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _peer_state(sock) -> tuple[int, str] | None:
    """(pid, state letter of /proc/PID/stat) of the process at the other end of ``sock``."""
    import struct

    try:
        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
    except (OSError, ValueError):
        return None
    from bkm.procfs import stat_fields

    fields = stat_fields(pid)
    return None if not fields else (pid, fields[0].decode())


_EXIT_FOR_CODE = {
    protocol.NO_SUCH_JOB: errors.NO_SUCH_JOB,
    protocol.CONFLICT: errors.CONFLICT,
    protocol.VALIDATION: errors.USAGE,
    protocol.INVALID_PARAMS: errors.USAGE,
}


class RpcError(errors.BkmError):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        exit_code = _EXIT_FOR_CODE.get(code, errors.FAILED)
        hint = None
        if code == protocol.UNAVAILABLE and isinstance(data, dict) and "permission" in data:
            exit_code = errors.USAGE  # a rule of who may do what, not a passing condition
            hint = "ask root (sudo bkm --system ...)"
        elif code == protocol.VALIDATION and isinstance(data, dict):
            message = "; ".join(f"{field}: {problem}" for field, problem in data.items())
        elif code == protocol.METHOD_NOT_FOUND:
            hint = "bkmd may be older than bkm: restart it (bkm daemon stop, then start bkmd)"
        super().__init__(message, exit_code, hint)
        self.code = code
        self.data = data


def start_hint(paths: Paths) -> str:
    if paths.home:
        import shlex

        system = " --system" if paths.system else ""
        return f"start it with: bkmd{system} --home {shlex.quote(paths.home)} --detach"
    if paths.system:
        return "start it with: systemctl start bkmd"
    return "start it with: bkmd --detach   (or: systemctl --user start bkmd)"


class Client:
    """A connection to one bkmd: this machine's socket (``paths``), or another machine's
    through ssh (``target``, see bkm.transport); everything above ``connect`` is the same."""

    def __init__(
        self, paths: Paths | None, timeout: float | None = CALL_TIMEOUT, target=None, system: bool = False
    ) -> None:
        self.paths = paths
        self.timeout = timeout
        self.target = target if target is not None and target.remote else None
        self.system = system
        self._stream = None  # the ssh transport, when there is one
        self._sock: _socket.socket | None = None
        self._buffer = b""
        self._next_id = 0
        self.notifications: list[dict] = []  # arrived while waiting for an answer

    @property
    def where(self) -> str:
        return f"bkmd on {self.target.host}" if self.target else "bkmd"

    def connect(self) -> None:
        if self.target is not None:
            from bkm.transport import SshStream

            self._stream = SshStream(self.target, self.system, self.timeout)
            self._sock = self._stream.sock
            self._buffer = b""
            return
        path = self.paths.socket
        try:
            check_socket_path(path)
        except PathError as e:
            raise errors.BkmError(str(e), errors.USAGE, e.hint) from None
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
            sock.settimeout(None)  # reads wait with select (see _readline)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise errors.BkmError(
                f"bkmd is not running (nothing listens on {path})", errors.UNREACHABLE, start_hint(self.paths)
            ) from None
        except PermissionError:
            sock.close()
            raise errors.BkmError(
                f"permission denied on {path}",
                errors.UNREACHABLE,
                "bkmd's socket belongs to another user; use your own (--home) or ask its owner",
            ) from None
        except OSError as e:
            sock.close()
            raise errors.BkmError(
                f"cannot reach bkmd at {path}: {e.strerror or e}", errors.UNREACHABLE, start_hint(self.paths)
            ) from None
        self._sock = sock
        self._buffer = b""

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        elif self._sock is not None:
            self._sock.close()
        self._sock = self._stream = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: Any) -> None:
        if self._sock is None:
            self.connect()
        try:
            self._sock.sendall(protocol.encode(message))
        except OSError as e:
            raise self._lost(e) from None

    def _readline(self, timeout: float | None) -> bytes | None:
        """One line; None if ``timeout`` passed first. Our own buffer, so that a timeout never
        leaves a half-read line behind (socket files are unusable after one)."""
        import select

        # Each chunk is searched once and the line joined once: a 10,000-job answer (8 MB)
        # searched and copied whole at every read cost 0.4 s.
        chunks, size, last = [self._buffer], len(self._buffer), self._buffer
        while b"\n" not in last:
            if timeout is not None and not self._ready(select, timeout):
                self._buffer = b"".join(chunks)
                return None
            last = self._sock.recv(1 << 20)
            if not last:
                self._buffer = b"".join(chunks)
                raise self._lost(None)
            chunks.append(last)
            size += len(last)
            if size > protocol.MAX_LINE_BYTES * 64:
                raise errors.BkmError("bkmd sent an answer too long to read", errors.FAILED)
        line, _, self._buffer = b"".join(chunks).partition(b"\n")
        return line

    def _ready(self, select, timeout: float) -> bool:
        """Whether an answer can be read within ``timeout``; after a moment without one, a
        bkmd that is stopped (SIGSTOP, a debugger) is named at once instead of waited for."""
        first = min(timeout, STOPPED_CHECK)
        if select.select([self._sock], [], [], first)[0]:
            return True
        # A person at a terminal is told at once; a script waits (a stop may be brief) and is
        # told only if the answer's time runs out.
        if _interactive():
            self._raise_if_stopped()
        if select.select([self._sock], [], [], max(timeout - first, 0))[0]:
            return True
        self._raise_if_stopped()
        return False

    def _raise_if_stopped(self) -> None:
        if self._stream is not None:
            return  # the peer is ssh; the far bkmd's state is not ours to read
        state = _peer_state(self._sock)
        if state is not None and state[1] in ("T", "t"):
            pid = state[0]
            raise errors.BkmError(
                f"bkmd (pid {pid}) is stopped (process state {state[1]}: SIGSTOP or a debugger) and cannot answer",
                errors.UNREACHABLE,
                f"let it go on with: kill -CONT {pid}",
            )

    def receive(self, timeout: float | None = -1) -> Any:
        """The next message; with a ``timeout`` (seconds), None if nothing came in time."""
        try:
            if timeout == -1:  # an answer is due: wait at most the call timeout
                line = self._readline(self.timeout)
                if line is None:
                    raise errors.BkmError(
                        f"{self.where} did not answer within {self.timeout:.0f} s",
                        errors.UNREACHABLE,
                        "it may be stopped or overloaded; check it with: bkm status",
                    )
            else:
                line = self._readline(timeout)
                if line is None:
                    return None
        except OSError as e:
            raise self._lost(e) from None
        try:
            return json.loads(line)
        except ValueError:
            raise errors.BkmError(
                f"{self.where} sent something that is not JSON-RPC: {line[:80].decode('utf-8', 'replace')!r}",
                errors.FAILED,
                "over ssh: a shell start-up file of the far side may print text; make it quiet"
                if self._stream
                else None,
            ) from None

    def next_notification(self, timeout: float | None = None) -> dict | None:
        """The next notification (job_update, log_line); None if ``timeout`` passed first."""
        if self.notifications:
            return self.notifications.pop(0)
        while True:
            message = self.receive(timeout)
            if message is None:
                return None
            if isinstance(message, dict) and "method" in message:
                return message

    def _lost(self, e: OSError | None) -> errors.BkmError:
        if self._stream is not None:
            return self._stream.failure()
        reason = f": {e.strerror or e}" if e else ""
        return errors.BkmError(f"lost the connection to bkmd{reason}", errors.UNREACHABLE, start_hint(self.paths))

    def call(self, method: str, **params: Any) -> Any:
        self._next_id += 1
        self.send(protocol.request(method, params, self._next_id))
        reply = self.receive()
        while isinstance(reply, dict) and "method" in reply and "id" not in reply:
            self.notifications.append(reply)
            reply = self.receive()
        if not isinstance(reply, dict):
            raise errors.BkmError("bkmd sent an answer bkm does not understand", errors.FAILED)
        if "error" in reply:
            error = reply["error"] or {}
            code = error.get("code", protocol.INTERNAL_ERROR)
            if reply.get("id") is None and code == protocol.UNAVAILABLE:
                raise errors.BkmError(f"bkmd refused the connection: {error.get('message')}", errors.UNREACHABLE)
            raise RpcError(code, error.get("message", "unknown error"), error.get("data"))
        return reply.get("result")
