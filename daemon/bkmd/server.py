"""The Unix socket: binding it safely, admitting peers, framing lines, answering them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import struct
import time

from bkm import protocol
from bkmd.rpc import Dispatcher

log = logging.getLogger("bkmd.server")
MAX_CONNECTIONS = 512
# Requests (lines) per connection: a burst, then this many a second. A batch is one line.
RATE_BURST = 2000
RATE_PER_SECOND = 1000.0


class SocketInUse(Exception):
    pass


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)


def _groups_of_uid(uid: int) -> set[int]:
    """Every group the user ``uid`` belongs to, from the group database (primary and
    supplementary). Not from /proc/PID/status, which ProtectProc=invisible hides from bkmd."""
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(entry.pw_name, entry.pw_gid))


class Admission:
    """Who may talk to this bkmd: its own user and root; in system mode also the members of
    its group (by the peer's primary gid, or the group database's list for the peer's uid)."""

    def __init__(self, uids: set[int], gid: int | None = None, groups_of=_groups_of_uid) -> None:
        self.uids = uids
        self.gid = gid
        self.groups_of = groups_of

    def admits(self, creds: tuple[int, int, int] | None) -> bool:
        if creds is None:
            return False
        _, uid, gid = creds
        if uid in self.uids:
            return True
        return self.gid is not None and (gid == self.gid or self.gid in self.groups_of(uid))


def bind_socket(path: str, mode: int = 0o600, gid: int | None = None) -> socket.socket:
    """A listening socket at ``path`` with exactly ``mode`` (0600; 0660 and group ``gid`` in
    system mode), that never appears half-ready.

    It is bound under a temporary name and renamed into place, which also replaces a stale
    socket left by a dead daemon (whose mode is not inherited). A socket some live process
    still answers on is refused.
    """
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            pass  # stale: nobody listens; the rename below replaces it
        else:
            raise SocketInUse(f"another daemon is listening on {path}")
        finally:
            probe.close()
    temp = os.path.join(os.path.dirname(path), f".{os.getpid()}.sk")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        sock.bind(temp)
        if gid is not None:
            os.chown(temp, -1, gid)
        os.chmod(temp, mode)
        sock.listen(128)
        os.rename(temp, path)
    except BaseException:
        sock.close()
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return sock


class Connection:
    """One client: answers go out with ``send``, notifications with ``notify``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.peer: tuple[int, int, int] | None = None  # (pid, uid, gid) from SO_PEERCRED
        self._closers: list = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def notify(self, data: bytes, max_backlog: int) -> bool:
        """Queue a notification without waiting; False when the client has stopped reading."""
        transport = self.writer.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > max_backlog:
            transport.abort()
            return False
        self.writer.write(data)
        return True

    def on_close(self, callback) -> None:
        self._closers.append(callback)

    def closed(self) -> None:
        for callback in self._closers:
            callback()
        self._closers.clear()


class Server:
    def __init__(self, dispatcher: Dispatcher, admission: Admission) -> None:
        self.dispatcher = dispatcher
        self.admission = admission
        self.connections: set[Connection] = set()
        self.handlers: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self.path: str | None = None
        self._inode: int | None = None

    async def start(self, path: str, mode: int = 0o600, gid: int | None = None) -> None:
        sock = bind_socket(path, mode, gid)
        self.path = path
        self._inode = os.stat(path).st_ino
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=protocol.MAX_LINE_BYTES)

    async def adopt(self, sock: socket.socket) -> None:
        """Serve on a socket made by someone else (systemd): never renamed or removed by us."""
        self.path, self._inode = None, None
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=protocol.MAX_LINE_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Let handlers of connections accepted just now start, then end every one of them:
        # a handler task still pending when the loop closes makes asyncio log a traceback.
        await asyncio.sleep(0)
        for connection in list(self.connections):
            connection.writer.close()
        if self.handlers:
            await asyncio.wait(set(self.handlers), timeout=5)
        if self.path and self._inode is not None:
            # Only remove the socket if it is still ours (not a successor's).
            try:
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            creds = peer_credentials(writer.get_extra_info("socket"))
            connection.peer = creds
            if not self.admission.admits(creds):
                log.warning("refused a connection from uid %s", creds[1] if creds else None)
                await self._refuse(connection, "permission denied: this bkmd serves another user")
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                await self._refuse(connection, "too many connections; try again")
                return
            self.connections.add(connection)
            await self._read_lines(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            self.connections.discard(connection)
            self.handlers.discard(task)
            connection.closed()
            writer.close()

    async def _refuse(self, connection: Connection, message: str) -> None:
        await connection.send(protocol.encode(protocol.error(None, protocol.UNAVAILABLE, message)))

    async def _read_lines(self, connection: Connection) -> None:
        tokens, refilled = float(RATE_BURST), time.monotonic()
        while True:
            try:
                line = await connection.reader.readline()
            except ValueError:
                # asyncio raises ValueError when a line outgrows the limit: refuse and hang up.
                message = f"Invalid Request: line longer than {protocol.MAX_LINE_BYTES} bytes"
                await connection.send(protocol.encode(protocol.error(None, protocol.INVALID_REQUEST, message)))
                return
            if not line:
                return
            if not line.strip():
                continue
            clock = time.monotonic()
            tokens = min(RATE_BURST, tokens + (clock - refilled) * RATE_PER_SECOND)
            refilled = clock
            if tokens < 1:
                busy = protocol.error(None, protocol.UNAVAILABLE, "too many requests; slow down")
                await connection.send(protocol.encode(busy))
                continue
            tokens -= 1
            response = await self.dispatcher.handle(line, connection)
            if response is not None:
                await connection.send(response)
