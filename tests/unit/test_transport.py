"""Host URLs, ssh's argument vector, and what an ended ssh stream is reported as (on ssh's
real words, captured from OpenSSH 9.2 against the tests' sshd)."""

import pytest

from bkm import errors
from bkm.transport import describe, parse, ssh_argv


def test_urls_parse_to_their_parts():
    t = parse("ssh://backup@nas.local:2222")
    assert (t.kind, t.user, t.host, t.port, t.remote) == ("ssh", "backup", "nas.local", 2222, True)
    t = parse("ssh://nas")
    assert (t.user, t.host, t.port) == ("", "nas", 0)
    assert parse("ssh://[fe80::1]:22").host == "fe80::1"
    assert parse("ssh://me@[::1]").host == "::1"
    t = parse("unix:///run/bkm/bkmd.sock")
    assert (t.kind, t.path, t.remote) == ("unix", "/run/bkm/bkmd.sock", False)


@pytest.mark.parametrize(
    "url, why",
    [
        ("nas", "it must start with ssh:// or unix://"),
        ("ssh://-oProxyCommand=sh", "bad host name '-oProxyCommand=sh'"),
        ("ssh://-x@nas", "bad user name '-x'"),
        ("ssh://nas:0", "port 0 is out of range"),
        ("ssh://nas:70000", "port 70000 is out of range"),
        ("ssh://", "bad host name ''"),
        ("ssh://a b", "bad host name 'a b'"),
        ("unix://run/x.sock", "a socket path must be absolute"),
    ],
)
def test_bad_urls_are_usage_errors_that_say_why(url, why):
    with pytest.raises(errors.BkmError) as caught:
        parse(url)
    assert caught.value.exit_code == errors.USAGE
    assert caught.value.message == f"bad host URL {url!r}: {why}"


def test_the_argv_is_the_contracts_and_quotes_the_far_command(monkeypatch):
    monkeypatch.delenv("BKM_SSH_COMMAND", raising=False)
    monkeypatch.delenv("BKM_REMOTE_PATH", raising=False)
    alive = ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
    # No time limit for the answer (a dry run): the connect still has one, 0.8 of 30 s.
    assert ssh_argv(parse("ssh://backup@nas:2222"), system=True, connect_timeout=None) == [
        "ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=24", *alive, "-p", "2222", "backup@nas", "--",
        "bkm", "--system", "bridge",
    ]  # fmt: skip
    monkeypatch.setenv("BKM_SSH_COMMAND", "ssh -F '/etc/my ssh/config'")
    monkeypatch.setenv("BKM_REMOTE_PATH", "/opt/my bkm/bin/bkm")
    # ssh fails with its own reason before the answer's 10 s run out.
    assert ssh_argv(parse("ssh://nas"), system=False, connect_timeout=10) == [
        "ssh", "-F", "/etc/my ssh/config", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=8", *alive, "nas", "--",
        "'/opt/my bkm/bin/bkm'", "bridge",
    ]  # fmt: skip
    monkeypatch.setenv("BKM_REMOTE_PATH", "~/.local/bin/bkm")  # the far shell expands ~/
    assert ssh_argv(parse("ssh://nas"), system=False, connect_timeout=3)[-2] == "~/.local/bin/bkm"
    for command, why in (("ssh -F '/x", "cannot be read as words"), (" ", "is empty")):
        monkeypatch.setenv("BKM_SSH_COMMAND", command)
        with pytest.raises(errors.BkmError) as caught:
            ssh_argv(parse("ssh://nas"), system=False, connect_timeout=3)
        assert caught.value.exit_code == errors.USAGE and why in caught.value.message


NAS = parse("ssh://nas")


@pytest.mark.parametrize(
    "code, said, message, hint",
    [
        (255, "ssh: connect to host 127.0.0.1 port 2: Connection refused\r\n",
         "cannot reach ssh://nas: ssh: connect to host 127.0.0.1 port 2: Connection refused", None),
        (255, "No ED25519 host key is known for [127.0.0.1]:2297 and you have requested strict checking.\r\n"
              "Host key verification failed.\r\n",
         "cannot reach ssh://nas: Host key verification failed.",
         "check and accept nas's host key once with: ssh nas true"),
        (255, "backup@nas: Permission denied (publickey).\r\n",
         "cannot reach ssh://nas: backup@nas: Permission denied (publickey).",
         "bkm uses ssh without prompts (BatchMode): set up a key or an agent for nas"),
        (127, "bash: line 1: bkm: command not found\n",
         "bkm is not installed on nas (bash: line 1: bkm: command not found)",
         "install bkm on nas so that 'ssh nas bkm --version' works, or name it with BKM_REMOTE_PATH"),
        (127, "sh: 1: bkm: not found\n", "bkm is not installed on nas (sh: 1: bkm: not found)",
         "install bkm on nas so that 'ssh nas bkm --version' works, or name it with BKM_REMOTE_PATH"),
        (3, "bkm: error: bkmd is not running (nothing listens on /run/user/1000/bkm/bkmd.sock)\n"
            "hint: start it with: bkmd --detach   (or: systemctl --user start bkmd)\n",
         "on nas: bkmd is not running (nothing listens on /run/user/1000/bkm/bkmd.sock)",
         "on nas: start it with: bkmd --detach   (or: systemctl --user start bkmd)"),
        (2, "bkm: error: No such command 'bridge'.\nhint: see: bkm --help\n",
         "on nas: bkm is too old to be reached with --host (it has no 'bridge')", "upgrade bkm on nas"),
        (255, "", "cannot reach ssh://nas: ssh exited with status 255", None),
        # ssh's own trouble with a file of ours is not a missing bkm on the far side.
        (255, "unix_listener: cannot bind to path /tmp/s/nodir/cm-1a2b: No such file or directory\r\n",
         "cannot reach ssh://nas: unix_listener: cannot bind to path /tmp/s/nodir/cm-1a2b: No such file or directory",
         None),
        (0, "", "bkmd on nas closed the connection (it may have stopped)", None),
    ],
)  # fmt: skip
def test_an_ended_stream_is_one_line_naming_the_cause(code, said, message, hint):
    error = describe(NAS, code, said)
    assert (error.message, error.hint, error.exit_code) == (message, hint, errors.UNREACHABLE)
