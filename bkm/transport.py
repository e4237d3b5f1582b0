"""Where a bkmd is: a host URL (`--host`, BKM_HOST), and the stream that reaches it.

`unix:///path` is a socket on this machine. `ssh://[user@]host[:port]` is another machine,
reached the way `docker -H ssh://` does: OpenSSH runs `bkm bridge` there, which joins its
standard input and output to that machine's bkmd socket. The user's ssh config, agent, keys
and known hosts apply; nothing new listens on the network. The client gets one end of a
socket pair whose other end is ssh's standard input and output, so that above `connect`
nothing knows which transport it speaks through.
"""

from __future__ import annotations

import os
import re

from bkm import errors

# A host name, an IPv4 address or a bracketed IPv6 address; never one that starts with '-',
# which ssh would read as an option (`ssh://-oProxyCommand=...`).
_HOST = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.%A-Za-z]+\]")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*")
SSH_EXIT_ERROR = 255  # ssh's own failures (connect, host key, authentication)
DEFAULT_CONNECT = 30.0  # seconds, when the answer itself may take as long as it needs
NOT_FOUND = 127  # the far side's shell: no such command


class Target:
    """A parsed host URL: ``kind`` is "unix" (``path``) or "ssh" (``user``, ``host``, ``port``)."""

    def __init__(self, url: str, kind: str, path: str = "", user: str = "", host: str = "", port: int = 0):
        self.url, self.kind, self.path = url, kind, path
        self.user, self.host, self.port = user, host, port

    @property
    def remote(self) -> bool:
        return self.kind == "ssh"

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh(self, *words: str) -> str:
        """An ssh command line a person can type to reach the same place (for hints)."""
        port = f"-p {self.port} " if self.port else ""
        return " ".join(["ssh", f"{port}{self.destination}", *words])

    def __repr__(self) -> str:
        return f"Target({self.url!r})"


def parse(url: str) -> Target:
    """A host URL, or BkmError (usage) naming what is wrong with it."""
    hint = "write ssh://[USER@]HOST[:PORT] or unix:///PATH/TO/bkmd.sock"
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path.startswith("/"):
            raise errors.BkmError(f"bad host URL {url!r}: a socket path must be absolute", errors.USAGE, hint)
        return Target(url, "unix", path=path)
    if not url.startswith("ssh://"):
        raise errors.BkmError(f"bad host URL {url!r}: it must start with ssh:// or unix://", errors.USAGE, hint)
    rest = url[len("ssh://") :].rstrip("/")
    user, at, hostport = rest.rpartition("@")
    if at and not _USER.fullmatch(user):
        raise errors.BkmError(f"bad host URL {url!r}: bad user name {user!r}", errors.USAGE, hint)
    host, port = hostport, 0
    match = re.fullmatch(r"(.*?):(\d+)", hostport)
    if match and not hostport.endswith("]"):
        host, port = match.group(1), int(match.group(2))
        if not 0 < port < 65536:
            raise errors.BkmError(f"bad host URL {url!r}: port {port} is out of range", errors.USAGE, hint)
    if not _HOST.fullmatch(host):
        raise errors.BkmError(f"bad host URL {url!r}: bad host name {host!r}", errors.USAGE, hint)
    return Target(url, "ssh", user=user, host=host.strip("[]"), port=port)


def ssh_argv(target: Target, system: bool, connect_timeout: float | None) -> list[str]:
    """ssh's argument vector: the contract's `ssh -T -o BatchMode=yes [-p port] [user@]host --
    bkm [--system] bridge`. BKM_SSH_COMMAND replaces `ssh` (as GIT_SSH_COMMAND does: `ssh -F
    FILE`), BKM_REMOTE_PATH the far side's `bkm` (as BORG_REMOTE_PATH does: a non-interactive
    ssh session's PATH often lacks ~/.local/bin)."""
    import shlex

    command = os.environ.get("BKM_SSH_COMMAND") or "ssh"
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise errors.BkmError(f"BKM_SSH_COMMAND cannot be read as words: {e}", errors.USAGE) from None
    if not argv:
        raise errors.BkmError("BKM_SSH_COMMAND is empty", errors.USAGE, "unset it, or name ssh and its options")
    # BatchMode: never a password prompt that no one answers (cron, fleet). ConnectTimeout: an
    # unreachable host fails with ssh's own reason, a little before the answer's time runs out
    # (and an answer with no time limit still has a bounded connect). ServerAlive: a network
    # that dies under `watch` is noticed within a minute, not when TCP gives up.
    connect = max(1, int(0.8 * (connect_timeout or DEFAULT_CONNECT)))
    argv += ["-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect}"]
    argv += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
    if target.port:
        argv += ["-p", str(target.port)]
    argv.append(target.destination)
    return argv + ["--", remote_program()] + (["--system"] if system else []) + ["bridge"]


def remote_program() -> str:
    """The far side's bkm, quoted for its shell (ssh joins the words after the host into one
    line); a leading ~/ stays unquoted so that the far shell expands it."""
    import shlex

    program = os.environ.get("BKM_REMOTE_PATH") or "bkm"
    if program.startswith("~/"):
        return "~/" + shlex.quote(program[2:])
    return shlex.quote(program)


class SshStream:
    """ssh running `bkm bridge` on the far side, joined to one end of a socket pair; the
    other end (``sock``) is what the client reads and writes."""

    def __init__(self, target: Target, system: bool, timeout: float | None) -> None:
        import _socket
        import subprocess
        import tempfile

        self.target = target
        argv = ssh_argv(target, system, timeout)
        self.sock, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        # A file, not a pipe: nobody reads ssh's errors until it is over, and a full pipe would
        # stop it.
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=self.errors,
                # Ctrl-C at the terminal is for bkm, which then closes the stream itself: ssh
                # must not die first and take the last words with it.
                start_new_session=True,
            )
        except OSError as e:
            self.sock.close()
            raise errors.BkmError(
                f"cannot run {argv[0]}: {e.strerror or e}",
                errors.UNREACHABLE,
                "install OpenSSH's client (ssh), or name it with BKM_SSH_COMMAND",
            ) from None
        finally:
            theirs.close()

    def close(self) -> None:
        self.sock.close()  # ssh sees the end of its input and ends the session
        self._end(2.0)
        self.errors.close()

    def _end(self, grace: float) -> int:
        """ssh's exit code, once it is gone: it is given ``grace`` seconds (one still in its
        handshake reads no input, so it does not see our end), then stopped. Never left behind,
        even by a second Ctrl-C."""
        import subprocess

        try:
            try:
                return self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    return self.process.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    return self.process.wait()
        except KeyboardInterrupt:
            self.process.kill()
            self.process.wait()
            raise

    def failure(self) -> errors.BkmError:
        """Why the stream ended: ssh's own last error line, or the far side's bkm's error."""
        self.sock.close()
        code = self._end(5.0)
        self.errors.seek(0)
        said = self.errors.read(65536).decode("utf-8", "replace")
        return describe(self.target, code, said)


def describe(target: Target, code: int, said: str) -> errors.BkmError:
    """The one error line for an ssh stream that ended with ``code`` after writing ``said``."""
    lines = [line.strip() for line in said.replace("\r", "\n").splitlines() if line.strip()]
    where = target.host
    bkm_error = [line for line in lines if line.startswith("bkm: error: ")]
    if bkm_error:  # the far side's bkm spoke: bkmd not running there, an old bkm, ...
        hints = [line[len("hint: ") :] for line in lines if line.startswith("hint: ")]
        message = bkm_error[-1][len("bkm: error: ") :]
        if "No such command 'bridge'" in message:
            return errors.BkmError(
                f"on {where}: bkm is too old to be reached with --host (it has no 'bridge')",
                errors.UNREACHABLE,
                f"upgrade bkm on {where}",
            )
        return errors.BkmError(
            f"on {where}: {message}", errors.UNREACHABLE, f"on {where}: {hints[-1]}" if hints else None
        )
    if code == 0 and not lines:  # the far side ended the session: its bkmd went away
        return errors.BkmError(f"bkmd on {where} closed the connection (it may have stopped)", errors.UNREACHABLE)
    last = lines[-1] if lines else f"ssh exited with status {code}"
    not_found = code == NOT_FOUND or last.endswith(("command not found", ": not found", "No such file or directory"))
    if code != SSH_EXIT_ERROR and not_found:  # 255 is ssh's own: a config or socket of ours
        return errors.BkmError(
            f"bkm is not installed on {where} ({last})",
            errors.UNREACHABLE,
            f"install bkm on {where} so that '{target.ssh('bkm --version')}' works, or name it with BKM_REMOTE_PATH",
        )
    if code == SSH_EXIT_ERROR:
        return errors.BkmError(f"cannot reach {target.url}: {last}", errors.UNREACHABLE, _ssh_hint(last, target))
    return errors.BkmError(f"lost the connection to {target.url}: {last}", errors.UNREACHABLE)


def _ssh_hint(last: str, target: Target) -> str | None:
    lowered = last.lower()
    if "host key verification failed" in lowered:
        return f"check and accept {target.host}'s host key once with: {target.ssh('true')}"
    if "permission denied" in lowered:
        return f"bkm uses ssh without prompts (BatchMode): set up a key or an agent for {target.host}"
    return None
