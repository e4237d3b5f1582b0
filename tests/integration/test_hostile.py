"""bkmd keeps serving whatever arrives on its socket."""

import json
import socket
import threading

import pytest
from helpers import RawClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def still_serving(bkmd) -> None:
    assert bkmd.call("daemon.status")["pid"] == bkmd.proc.pid
    assert bkmd.proc.poll() is None


def test_invalid_utf8(bkmd):
    with RawClient(bkmd.socket) as client:
        reply = client.exchange(b'{"jsonrpc":"2.0","method":"daemon.status","id":"\xff\xfe"}\n')
        assert reply["error"]["code"] == -32700
        # The same connection keeps working.
        assert "result" in client.request("daemon.status")


def test_deeply_nested_brackets(bkmd):
    with RawClient(bkmd.socket) as client:
        reply = client.exchange(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        assert reply["error"]["code"] == -32700
        assert "result" in client.request("daemon.status")
    still_serving(bkmd)


def test_deep_but_parseable_params(bkmd):
    nested = "[" * 900 + "]" * 900
    with RawClient(bkmd.socket) as client:
        params = f'{{"name":{nested},"bwlimit":{nested}}}'
        raw = f'{{"jsonrpc":"2.0","method":"job.create","params":{params},"id":1}}\n'
        reply = client.exchange(raw.encode())
        assert reply["error"]["code"] == -32003
        assert len(json.dumps(reply)) < 4096  # error messages never echo the input whole


def test_a_3_mib_line_is_refused_and_the_connection_closed(bkmd):
    with RawClient(bkmd.socket, timeout=30) as client:
        try:
            client.send_raw(b'{"jsonrpc":"2.0","method":"daemon.status","id":1,"pad":"' + b"x" * (3 << 20) + b'"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # bkmd may hang up before the whole line is sent
        reply = client.read()
        assert reply["error"]["code"] == -32600 and "longer than" in reply["error"]["message"]
        with pytest.raises(ConnectionError):
            client.read()
    still_serving(bkmd)


def test_a_line_just_under_the_limit_is_served(bkmd):
    pad = "x" * ((1 << 20) - 200)
    with RawClient(bkmd.socket) as client:
        raw = json.dumps({"jsonrpc": "2.0", "method": "daemon.status", "id": 1, "pad": pad}).encode() + b"\n"
        assert len(raw) < (1 << 20)
        assert "result" in client.exchange(raw)


@pytest.mark.parametrize(
    "params",
    [
        {"job": 5},
        {"job": None},
        {"job": ["a"]},
        {"job": {"x": 1}},
    ],
)
def test_wrong_param_types_for_job(bkmd, params):
    with RawClient(bkmd.socket) as client:
        assert client.request("job.get", params)["error"]["code"] == -32602


@pytest.mark.parametrize(
    "params",
    [
        {"name": 5, "type": [], "source": {}, "dest": 1.5, "bwlimit": "lots", "excludes": "x"},
        {"name": "ok", "type": "rsync", "source": "/", "dest": "/tmp", "excludes": [1, None]},
    ],
)
def test_wrong_param_types_for_create(bkmd, params):
    with RawClient(bkmd.socket) as client:
        reply = client.request("job.create", params)
        assert reply["error"]["code"] == -32003
    still_serving(bkmd)


@pytest.mark.parametrize("params", [{"key": ["x"]}, {"key": {"a": 1}}, {"key": 5}])
def test_wrong_param_types_for_settings(bkmd, params):
    with RawClient(bkmd.socket) as client:
        for method in ("settings.get", "settings.reset"):
            assert client.request(method, params)["error"]["code"] == -32003
        assert client.request("settings.set", {**params, "value": 1})["error"]["code"] == -32003


def test_abrupt_disconnects(bkmd):
    for partial in (b"", b'{"jsonrpc":"2.0",', b'{"jsonrpc":"2.0","method":"daemon.status","id":1}\n'):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(bkmd.socket)
        sock.sendall(partial)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    # A client that asks for a big answer and hangs up without reading it.
    for _ in range(5):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(bkmd.socket)
        sock.sendall(b'{"jsonrpc":"2.0","method":"job.list","id":1}\n' * 200)
        sock.close()
    still_serving(bkmd)


def test_forty_concurrent_clients(bkmd, data_dir):
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with RawClient(bkmd.socket, timeout=30) as c:
                c.call("job.create", name=f"c{n}", type="rsync", source=data_dir, dest=f"{bkmd.home}/d{n}")
                for _ in range(10):
                    c.call("job.get", job=f"c{n}")
                    c.call("daemon.status")
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(bkmd.call("job.list")) == 40


frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
            "method": st.sampled_from(
                [
                    "job.get",
                    "job.list",
                    "job.create",
                    "job.update",
                    "job.delete",
                    "settings.get",
                    "settings.set",
                    "settings.reset",
                    "daemon.status",
                    "nope",
                ]
            ),
            "params": st.one_of(
                st.dictionaries(
                    st.sampled_from(
                        ["job", "key", "value", "name", "status", "type", "source", "dest", "bwlimit", "excludes"]
                    ),
                    st.one_of(st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=3)),
                ),
                st.lists(st.integers(), max_size=3),
                st.text(max_size=5),
            ),
            "id": st.one_of(st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
        }
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
def test_random_frames_never_stop_bkmd(bkmd, frame):
    with RawClient(bkmd.socket) as client:
        client.send_raw(frame.replace(b"\n", b" ") + b"\n")
        # Whatever it made of that frame, a well-formed request right after is answered.
        client.next_id = 10**15  # an id no generated frame uses
        reply = client.request("daemon.status")
        while not (isinstance(reply, dict) and reply.get("id") == client.next_id):
            reply = client.read()
        assert reply["result"]["pid"] == bkmd.proc.pid
