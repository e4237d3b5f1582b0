"""The store lock: one bkmd per store, held for the daemon's whole life."""

from __future__ import annotations

import os


class StoreLocked(Exception):
    pass


def holder_pid(path: str) -> int | None:
    """The pid holding a flock on ``path``, read from /proc/locks (Linux)."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            lines = f.readlines()
    except OSError:
        return None
    device_inode = f":{st.st_ino}"
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:56789 0 EOF"; waiting entries carry "->".
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5].endswith(device_inode):
            major, minor = (int(x, 16) for x in fields[5].split(":")[:2])
            if os.makedev(major, minor) == st.st_dev:
                return int(fields[4])
    return None


def acquire(path: str):
    """Hold the store lock or raise StoreLocked naming the holder."""
    from filelock import FileLock, Timeout

    lock = FileLock(path, timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        pid = holder_pid(path)
        holder = f"bkmd pid {pid}" if pid else "another process"
        raise StoreLocked(f"the store {path[:-5]} is in use by {holder}") from None
    return lock
