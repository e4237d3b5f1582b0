"""bkm bridge: standard input and output joined to this machine's bkmd socket.

This is what `bkm --host ssh://HOST ...` runs on HOST through ssh. It relays bytes, both
ways, and understands none of them: bkmd sees an ordinary local client (with the peer
credentials of the user ssh logged in as), so its access rules hold unchanged.
"""

from __future__ import annotations

import os

import click

CHUNK = 65536


@click.command()
@click.pass_obj
def bridge(obj) -> None:
    """Join standard input and output to the local bkmd's socket, byte for byte, until either
    side closes (what --host ssh:// runs on the far side). Exit 3 when bkmd does not run."""
    obj.local_only("bkm bridge")
    from bkm.client import Client

    client = Client(obj.paths)
    client.connect()  # the usual exit 3 and message when bkmd does not run
    try:
        relay(client._sock, 0, 1)
    finally:
        client.close()


def relay(sock, stdin: int, stdout: int) -> None:
    """Copy stdin to ``sock`` and ``sock`` to stdout until bkmd hangs up, or stdin ends and
    bkmd has answered what it was sent (it closes a connection whose client stopped
    writing)."""
    import select

    inputs = [stdin, sock]
    while inputs:
        ready = select.select(inputs, [], [])[0]
        if sock in ready:
            try:
                data = sock.recv(CHUNK)
            except ConnectionResetError:
                data = b""
            if not data:
                return  # bkmd hung up: nothing more can come either way
            _write_all(stdout, data)
        if stdin in ready:
            data = os.read(stdin, CHUNK)
            if data:
                sock.sendall(data)
            else:
                inputs.remove(stdin)
                import _socket

                sock.shutdown(_socket.SHUT_WR)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
