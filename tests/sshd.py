"""A real OpenSSH server for the tests of `--host ssh://` and `bkm fleet`.

Each test gets its own sshd on a free loopback port with its own host key, config and
authorized_keys in a short temporary folder, and an ssh_config naming a host alias per bkmd
home (`SetEnv BKM_HOME=...`, accepted by the server's `AcceptEnv`): two "machines" are two
homes behind one real sshd. It runs as whoever runs the tests; as root, sshd needs its
privilege separation folder, which the openssh-server package would make at boot.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time

from helpers import program, short_tempdir

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    """Whether an SSH server greets on ``port`` (a bare connect could still be refused later)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class Sshd:
    def __init__(self) -> None:
        self.dir = short_tempdir()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.hosts: dict[str, str] = {}  # alias -> BKM_HOME on "that machine"
        self.config = os.path.join(self.dir, "ssh_config")
        for key in ("hostkey", "userkey"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.dir, key)], check=True
            )
        shutil.copy(os.path.join(self.dir, "userkey.pub"), os.path.join(self.dir, "authorized_keys"))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def start(self) -> Sshd:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _attempt in range(5):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            with open(self.path("sshd_config"), "w") as f:
                f.write(
                    f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.path('hostkey')}\n"
                    f"AuthorizedKeysFile {self.path('authorized_keys')}\nPidFile none\nStrictModes no\n"
                    "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nAcceptEnv BKM_HOME\nLogLevel ERROR\n"
                )
            self.log = open(self.path("sshd.log"), "wb")
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", self.path("sshd_config")], stdin=subprocess.DEVNULL, stderr=self.log
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None and not answers(self.port):
                time.sleep(0.02)
            if self.proc.poll() is None and answers(self.port):
                break
            self.stop()
        else:
            raise AssertionError(f"sshd did not start: {self.said()}")
        with open(self.path("hostkey.pub")) as f:
            key = " ".join(f.read().split()[:2])
        with open(self.path("known_hosts"), "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {key}\n")
        open(self.path("no_known_hosts"), "w").close()
        self.write_config()
        return self

    def add_host(self, alias: str, home: str) -> str:
        """An ssh host alias whose sessions use the bkmd in ``home``; returns its ssh:// URL."""
        self.hosts[alias] = home
        self.write_config()
        return f"ssh://{alias}"

    def write_config(self) -> None:
        lines = []
        for alias, home in self.hosts.items():
            lines += [f"Host {alias}", f"  SetEnv BKM_HOME={home}"]
        # A host whose key this client has never seen, checked strictly.
        lines += ["Host stranger", f"  UserKnownHostsFile {self.path('no_known_hosts')}"]
        lines += [
            "Host *",
            "  HostName 127.0.0.1",
            f"  Port {self.port}",
            f"  User {self.user}",
            f"  IdentityFile {self.path('userkey')}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {self.path('known_hosts')}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  LogLevel ERROR",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict:
        """The environment of a local `bkm` that reaches these hosts with the real ssh client."""
        bkm = program("bkm")
        assert len(bkm) == 1, "the tests of --host need bkm installed as a program (pip install -e .)"
        env = dict(os.environ, BKM_SSH_COMMAND=f"ssh -F {self.config}", BKM_REMOTE_PATH=bkm[0])
        for name in ("BKM_HOME", "BKM_SOCKET", "BKM_HOST"):
            env.pop(name, None)
        env.update(extra)
        return env

    def said(self) -> str:
        try:
            with open(self.path("sshd.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
