"""The JSON-RPC 2.0 specification's section 7 examples, adapted to bkmd's methods."""

import json

import pytest
from helpers import RawClient, wait_for

# (sent, expected) where expected is None for "no response at all".
EXAMPLES = [
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": ["max_concurrent_jobs"], "id": 1}',
        {"jsonrpc": "2.0", "result": {"key": "max_concurrent_jobs", "value": 2, "default": 2}, "id": 1},
        id="positional params",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": {"key": "keep_runs"}, "id": 3}',
        {"jsonrpc": "2.0", "result": {"key": "keep_runs", "value": 20, "default": 20}, "id": 3},
        id="named params",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": {"key": "keep_runs"}}', None, id="notification"
    ),
    pytest.param(b'{"jsonrpc": "2.0", "method": "foobar"}', None, id="notification of unknown method"),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
        {"jsonrpc": "2.0", "error": {"code": -32601}, "id": "1"},
        id="method not found",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        {"jsonrpc": "2.0", "error": {"code": -32700}, "id": None},
        id="invalid JSON",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
        {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None},
        id="invalid request object",
    ),
    pytest.param(
        b'[{"jsonrpc": "2.0", "method": "settings.get", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]',
        {"jsonrpc": "2.0", "error": {"code": -32700}, "id": None},
        id="batch, invalid JSON",
    ),
    pytest.param(b"[]", {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}, id="empty array"),
    pytest.param(b"[1]", [{"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}], id="invalid batch of one"),
    pytest.param(b"[1,2,3]", [{"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}] * 3, id="invalid batch"),
    pytest.param(
        b'[{"jsonrpc": "2.0", "method": "settings.get", "params": ["keep_runs"], "id": "1"},'
        b'{"jsonrpc": "2.0", "method": "daemon.status", "params": []},'
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": {"key": "log_backups"}, "id": "2"},'
        b'{"foo": "boo"},'
        b'{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},'
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": {"key": "on_interrupted"}, "id": "9"}]',
        [
            {"jsonrpc": "2.0", "result": {"key": "keep_runs", "value": 20, "default": 20}, "id": "1"},
            {"jsonrpc": "2.0", "result": {"key": "log_backups", "value": 3, "default": 3}, "id": "2"},
            {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None},
            {"jsonrpc": "2.0", "error": {"code": -32601}, "id": "5"},
            {"jsonrpc": "2.0", "result": {"key": "on_interrupted", "value": "ask", "default": "ask"}, "id": "9"},
        ],
        id="mixed batch",
    ),
    pytest.param(
        b'[{"jsonrpc": "2.0", "method": "daemon.status", "params": []},'
        b'{"jsonrpc": "2.0", "method": "settings.get", "params": ["keep_runs"]}]',
        None,
        id="batch of notifications",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "job.get", "params": {"nope": 1}, "id": 7}',
        {"jsonrpc": "2.0", "error": {"code": -32602}, "id": 7},
        id="invalid params",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "job.get", "params": {"job": "missing"}, "id": 8}',
        {"jsonrpc": "2.0", "error": {"code": -32001}, "id": 8},
        id="application error: no such job",
    ),
    pytest.param(
        b'{"jsonrpc": "1.0", "method": "daemon.status", "id": 9}',
        {"jsonrpc": "2.0", "error": {"code": -32600}, "id": 9},
        id="wrong protocol version",
    ),
]


def matches(actual, expected) -> bool:
    """Equal, except that an expected error only pins its code (messages are free text)."""
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return False
        # The specification allows any order in a batch response.
        remaining = list(actual)
        for item in expected:
            found = next((a for a in remaining if matches(a, item)), None)
            if found is None:
                return False
            remaining.remove(found)
        return True
    if isinstance(expected, dict) and "error" in expected:
        return (
            isinstance(actual, dict)
            and actual.get("id", "missing") == expected["id"]
            and actual.get("jsonrpc") == "2.0"
            and "result" not in actual
            and actual["error"]["code"] == expected["error"]["code"]
            and isinstance(actual["error"]["message"], str)
        )
    return actual == expected


@pytest.mark.parametrize("sent, expected", EXAMPLES)
def test_specification_example(bkmd, sent, expected):
    with RawClient(bkmd.socket) as client:
        client.send_raw(sent + b"\n")
        if expected is None:
            # Nothing may come back: a following request's answer must be the next line.
            reply = client.request("daemon.status")
            assert reply["id"] == client.next_id and "result" in reply
        else:
            assert matches(client.read(), expected)


def test_batch_answers_in_one_line_and_commits_once(bkmd, data_dir):
    creates = [
        {
            "jsonrpc": "2.0",
            "method": "job.create",
            "id": i,
            "params": {"name": f"b{i}", "type": "rsync", "source": data_dir + "/", "dest": bkmd.home + f"/d{i}"},
        }
        for i in range(50)
    ]
    with RawClient(bkmd.socket) as client:
        replies = client.exchange(json.dumps(creates).encode() + b"\n")
    assert sorted(r["id"] for r in replies) == list(range(50))
    assert all("result" in r for r in replies)
    assert len(bkmd.call("job.list")) == 50


def test_application_error_codes(bkmd, data_dir):
    with RawClient(bkmd.socket) as client:
        good = {"name": "a", "type": "rsync", "source": data_dir, "dest": bkmd.home + "/d"}
        assert "result" in client.request("job.create", good)
        assert client.request("job.create", good)["error"]["code"] == -32002
        invalid = client.request("job.create", {"name": "", "type": "scp"})
        assert invalid["error"]["code"] == -32003
        assert set(invalid["error"]["data"]) == {"name", "type", "source", "dest"}


def test_a_peer_of_another_uid_is_refused(bkmd):
    """SO_PEERCRED: even with the socket opened up, another uid gets no answer but a refusal."""
    import os
    import shutil
    import subprocess
    import sys

    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another uid")
    os.chmod(bkmd.home, 0o755)
    os.chmod(bkmd.socket, 0o777)
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        # bkmd refuses at once and hangs up: the request may find it gone (EPIPE), and the
        # refusal is in our receive buffer all the same.
        "try:\n"
        '    s.sendall(b\'{"jsonrpc":"2.0","method":"job.list","id":1}\\n\')\n'
        "except BrokenPipeError:\n"
        "    pass\n"
        "print(s.makefile().readline().strip())\n"
    )
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-S", "-c", code, bkmd.socket],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.stdout, out.stderr
    reply = json.loads(out.stdout)
    assert reply["error"]["code"] == -32004 and "permission denied" in reply["error"]["message"]
    assert "result" not in reply
    wait_for(lambda: bkmd.call("daemon.status")["pid"] == bkmd.proc.pid, what="bkmd still serving")
