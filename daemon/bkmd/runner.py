"""One supervised transfer: a child process in its own process group that dies with bkmd.

The runner only reports (started, output, exit) to the callbacks it was given; what those
mean for the job is decided by ``jobs``.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import stat
import time
from collections.abc import Callable

from bkm.procfs import stat_fields

log = logging.getLogger("bkmd.runner")

PR_SET_PDEATHSIG = 1
READ_SIZE = 65536
DRAIN_BYTES = 4 * 1024 * 1024  # read at most this much at a time (the pipe holds PIPE_SIZE)
# After a read, let output gather this long before looking again: rsync writes one record
# per finished file, and waking for each cost bkmd 0.2 s of CPU on a 2,000-file copy,
# taken from the transfer it shares the cores with. The pipe holds PIPE_SIZE meanwhile: at
# rsync's 20,000 records (1.5 MB) a second on a tree of small files, a default pipe of 64 KiB
# would fill within 50 ms and stop rsync until bkmd reads.
GATHER_SECONDS = 0.2
PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask for (fs.pipe-max-size)
F_SETPIPE_SZ = 1031
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        # In the child, before exec: SIGTERM when bkmd dies (SIGTERM, not SIGKILL, so rsync
        # still keeps its partial file), and give up at once if bkmd is already gone.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22)."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


def group_members(pgid: int) -> list[int]:
    """The processes of a process group (/proc/PID/stat field 5)."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(name)
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(name))
    return members


def stopped_group(pgid: int, timeout: float) -> list[int]:
    """The group's processes, once every one is stopped (state T), or as they are when
    ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        members = group_members(pgid)
        states = [fields[0] for fields in map(stat_fields, members) if fields is not None]
        if all(state in (b"T", b"t", b"Z") for state in states) or time.monotonic() > deadline:
            return members
        time.sleep(0.005)


def files_open_for_writing(pid: int) -> list[str]:
    """The regular files ``pid`` has open for writing, by the path that names each now."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            path = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = _flags(f.read())
            if not path.startswith("/") or flags & os.O_ACCMODE == os.O_RDONLY:
                continue  # a pipe or socket, or a file only read
            opened, named = os.stat(f"/proc/{pid}/fd/{fd}"), os.stat(path, follow_symlinks=False)
        except (OSError, ValueError):
            continue  # closed meanwhile, or its name is gone (" (deleted)")
        if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino) and stat.S_ISREG(named.st_mode):
            found.append(path)
    return found


def _flags(fdinfo: str) -> int:
    for line in fdinfo.splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise ValueError("no flags")


def _drain(fd: int) -> tuple[bytes, bool]:
    """What the pipe holds now (at most DRAIN_BYTES: a child that writes as fast as it is read
    would keep this loop, and bkmd's, busy for ever), and whether the writer has closed it."""
    chunks = []
    for _ in range(DRAIN_BYTES // READ_SIZE):
        try:
            chunk = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Transfer:
    def __init__(
        self,
        argv: list[str],
        env: dict,
        on_started: Callable[[int, int | None], None],
        on_output: Callable[[str, bytes], None],
        on_exit: Callable[[int | None, str | None], None],
        run_as=None,
    ) -> None:
        """``run_as`` (bkmd.access.RunAs): the uid, gid and groups the process takes, or None
        for bkmd's own."""
        self.argv = argv
        self.run_as = run_as
        self.env = env
        self.on_started = on_started
        self.on_output = on_output
        self.on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.stop_requested = False
        self.done = asyncio.Event()
        self.task: asyncio.Task | None = None
        self._exited: asyncio.Future | None = None
        self._kill_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            # Our own pipes, read with os.read when we choose to (see GATHER_SECONDS), rather
            # than asyncio's, which wake the loop for every write the child makes.
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                fcntl.fcntl(out_w, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:  # a lower fs.pipe-max-size: the default pipe still works
                pass
            credentials = {}
            if self.run_as is not None:
                # Popen drops to them in the child (setgroups, setgid, setuid); PR_SET_PDEATHSIG,
                # set after that in preexec_fn, still holds.
                who = self.run_as
                credentials = {"user": who.uid, "group": who.gid, "extra_groups": list(who.groups)}
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    **credentials,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(os.getpid()),
                )
            except OSError as e:
                for fd in (out_r, err_r):
                    os.close(fd)
                self.on_exit(None, f"cannot run {self.argv[0]}: {e.strerror or e}")
                return
            finally:
                os.close(out_w)
                os.close(err_w)
            pid = self.process.pid
            self.on_started(pid, process_start_time(pid))
            if self.stop_requested:  # a pause arrived while the process was being started
                self._signal(signal.SIGTERM)
            self._exited = asyncio.ensure_future(self.process.wait())
            await asyncio.gather(self._pump(out_r, "out"), self._pump(err_r, "err"))
            code = await self._exited
            await self._wait_group_gone(pid)
            self.on_exit(code, None)
        except Exception as e:  # the job must never stay "running" because of a bug here
            log.exception("transfer supervision failed")
            self.on_exit(None, f"bkmd lost track of the transfer: {e}")
        finally:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self.done.set()

    async def _pump(self, fd: int, name: str) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        try:
            while True:
                readable = loop.create_future()
                loop.add_reader(fd, readable.set_result, None)
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                data, closed = _drain(fd)
                if data:
                    self.on_output(name, data)
                if closed:
                    return
                if not self._exited.done():  # once the child is gone, read the rest at once
                    await asyncio.wait({self._exited}, timeout=GATHER_SECONDS)
        finally:
            os.close(fd)

    async def _wait_group_gone(self, pgid: int, timeout: float = 5.0) -> None:
        """rsync's helper processes share its group: the run is over when all of them are.
        They are usually gone within milliseconds of the main process: look often at first."""
        began = time.monotonic()
        while group_alive(pgid):
            waited = time.monotonic() - began
            if waited > timeout:
                self._signal(signal.SIGKILL)
                return
            await asyncio.sleep(0.002 if waited < 0.1 else 0.05)

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def abandon(self, error: str | None) -> None:
        """End without starting (a before hook failed, or a pause came first): reported like a
        child that could not start (``error``), or like a stopped one (None)."""
        self.on_exit(None, error)
        self.done.set()

    def request_stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole group now (partial data is kept), SIGKILL after ``grace``
        seconds if it is still there; ``done`` is set once it is gone and reaped."""
        if self.stop_requested:
            return
        self.stop_requested = True
        self._signal(signal.SIGTERM)
        self._kill_timer = asyncio.get_running_loop().call_later(grace, self._kill)

    def _kill(self) -> None:
        if not self.done.is_set():
            log.warning("transfer %s ignored SIGTERM: killing it", self.argv[0])
            self._signal(signal.SIGKILL)


def end_group(pgid: int, grace: float = 5.0) -> str:
    """End a process group no asyncio loop supervises (a survivor of an earlier bkmd):
    SIGTERM, then SIGKILL after ``grace`` seconds. Says which it took."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)  # a group held while its file was kept takes it now
    except ProcessLookupError:
        return "already gone"
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            return "killed (SIGKILL)"
        time.sleep(0.05)
    return "stopped (SIGTERM)"
