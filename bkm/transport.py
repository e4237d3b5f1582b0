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
NOT_FOUND = 127  # the far side's shell: no such command


class Target:
    """A parsed host URL: ``kind`` is "unix" (``path``) or "ssh" (``user``, ``host``, ``port``)."""

    def __init__(self, url: str, kind: str, path: str = "", user: str = "", host: str = "", port: int = 0):
        self.url, self.kind, self.path = url, kind, path
        self.user, self.host, self.port = user, host, port

    @property
    def remote(self) -> bool:
        return self.kind == "ssh"

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

    argv = shlex.split(os.environ.get("BKM_SSH_COMMAND") or "ssh")
    # BatchMode: never a password prompt that no one answers (cron, fleet). ConnectTimeout: an
    # unreachable host fails within the answer's time, not TCP's two minutes.
    argv += ["-T", "-o", "BatchMode=yes"]
    if connect_timeout:
        argv += ["-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    if target.port:
        argv += ["-p", str(target.port)]
    argv.append(f"{target.user}@{target.host}" if target.user else target.host)
    # ssh joins the words after the host into one line for the far side's shell: quote them.
    remote = shlex.quote(os.environ.get("BKM_REMOTE_PATH") or "bkm")
    return argv + ["--", remote] + (["--system"] if system else []) + ["bridge"]


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
        import subprocess

        self.sock.close()
        try:
            self.process.wait(timeout=5)  # our end is closed: ssh sees the end of its input
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()

    def failure(self) -> errors.BkmError:
        """Why the stream ended: ssh's own last error line, or the far side's bkm's error."""
        import subprocess

        self.sock.close()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
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
    last = lines[-1] if lines else f"ssh exited with status {code}"
    if code == NOT_FOUND or last.endswith(("command not found", ": not found", "No such file or directory")):
        return errors.BkmError(
            f"bkm is not installed on {where} ({last})",
            errors.UNREACHABLE,
            f"install bkm on {where} so that 'ssh {where} bkm --version' works, or name it with BKM_REMOTE_PATH",
        )
    if code == SSH_EXIT_ERROR:
        return errors.BkmError(f"cannot reach {target.url}: {last}", errors.UNREACHABLE, _ssh_hint(last, where))
    return errors.BkmError(f"lost the connection to {target.url}: {last}", errors.UNREACHABLE)


def _ssh_hint(last: str, where: str) -> str | None:
    lowered = last.lower()
    if "host key verification failed" in lowered:
        return f"check and accept {where}'s host key once with: ssh {where} true"
    if "permission denied" in lowered:
        return f"bkm uses ssh without prompts (BatchMode): set up a key or an agent for {where}"
    return None
