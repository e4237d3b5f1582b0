"""The checks of `bkm doctor`: pure reports on this machine, used by bkmd (system.check, from
the daemon's own point of view) and by bkm itself when bkmd cannot be reached."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

OK, WARN, FAIL = "ok", "warn", "fail"
LOW_DISK = 1024**3  # below this: warn
NO_DISK = 64 * 1024**2  # below this: fail


def check(name: str, status: str, detail: str) -> dict:
    return {"check": name, "status": status, "detail": detail}


def tool(name: str, program: str) -> dict:
    """Found, runnable, and which version."""
    path = shutil.which(program)
    if path is None:
        hint = "apt-get install " + name if "/" not in program else "check the setting " + name + "_path"
        return check(name, FAIL, f"{program} not found ({hint})")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return check(name, FAIL, f"{path} does not run: {e}")
    first = (out.stdout or out.stderr).strip().splitlines()
    version = first[0] if first else "unknown version"
    return check(name, OK if out.returncode == 0 else FAIL, f"{path}: {version}")


def writable_folder(name: str, path: str) -> dict:
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return check(name, FAIL, f"{probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        return check(name, FAIL, f"{probe} is not writable")
    if probe != path:
        return check(name, OK, f"{path} (will be created in {probe})")
    return check(name, OK, path)


def free_disk(path: str) -> dict:
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    usage = shutil.disk_usage(probe)
    detail = f"{usage.free / 1024**3:.1f} GiB free at {probe}"
    if usage.free < NO_DISK:
        return check("disk", FAIL, detail)
    return check("disk", WARN if usage.free < LOW_DISK else OK, detail)


def machine_checks(paths, rsync_path: str, rclone_path: str) -> list[dict]:
    """The six checks of the machine itself, in doctor's order: the two tools (as the settings
    name them), the store's, logs' and settings' folders, and free disk at the store.
    ``paths`` is a ``bkm.paths.Paths``."""
    return [
        tool("rsync", rsync_path),
        tool("rclone", rclone_path),
        writable_folder("store", paths.state_dir),
        writable_folder("logs", paths.logs),
        writable_folder("settings", os.path.dirname(paths.settings)),
        free_disk(paths.state_dir),
    ]


def socket_permissions(path: str, system: bool) -> dict:
    try:
        st = os.stat(path)
        folder = os.stat(os.path.dirname(path))
    except FileNotFoundError:
        return check("socket", WARN, f"{path} does not exist (bkmd not running)")
    mode, folder_mode = stat.S_IMODE(st.st_mode), stat.S_IMODE(folder.st_mode)
    expected = 0o660 if system else 0o600
    detail = f"{path} mode {mode:04o} in a folder of mode {folder_mode:04o}"
    if not stat.S_ISSOCK(st.st_mode):
        return check("socket", FAIL, f"{path} is not a socket")
    if mode & 0o006:
        return check("socket", FAIL, detail + ": any user can connect")
    if mode != expected:
        return check("socket", WARN, detail + f" (expected {expected:04o})")
    return check("socket", OK, detail)


def systemd_units(system: bool) -> dict | None:
    """The state of bkmd's units, where systemd runs; None elsewhere."""
    if not os.path.isdir("/run/systemd/system") or not shutil.which("systemctl"):
        return None
    scope = [] if system else ["--user"]
    states = []
    for unit in ("bkmd.socket", "bkmd.service"):
        out = subprocess.run(["systemctl", *scope, "is-active", unit], capture_output=True, text=True, timeout=10)
        states.append(f"{unit} {out.stdout.strip() or 'unknown'}")
    status = OK if any(s.endswith(" active") for s in states) else WARN
    return check("systemd", status, ", ".join(states))
