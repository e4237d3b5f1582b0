"""The client's line reader on a real socket pair: lines split across reads, several lines in
one read, a long answer, and a timeout that leaves a half-read line for the next read."""

import socket
import threading

from bkm.client import Client


def client_on(sock: socket.socket) -> Client:
    client = Client(None, timeout=5)
    client._sock = sock
    return client


def test_lines_across_reads_and_together():
    ours, theirs = socket.socketpair()
    try:
        client = client_on(ours)
        big = b"x" * (3 << 20)  # more than one read
        theirs.sendall(b'{"a": 1}\n{"b"')
        assert client._readline(5) == b'{"a": 1}'
        # From a thread: the socket holds less than the whole answer.
        sender = threading.Thread(target=theirs.sendall, args=(b': 2}\n' + big + b"\nlast\n",))
        sender.start()
        assert client._readline(5) == b'{"b": 2}'
        assert client._readline(5) == big
        assert client._readline(5) == b"last"
        sender.join(5)
    finally:
        ours.close()
        theirs.close()


def test_a_timeout_keeps_the_half_read_line():
    ours, theirs = socket.socketpair()
    try:
        client = client_on(ours)
        theirs.sendall(b"first half, ")
        assert client._readline(0.05) is None
        theirs.sendall(b"second half\nnext\n")
        assert client._readline(5) == b"first half, second half"
        assert client._readline(5) == b"next"
    finally:
        ours.close()
        theirs.close()
