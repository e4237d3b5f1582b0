"""Where things live: the contract's path table, shared by bkm and bkmd.

Plain string paths and ``os.path`` on purpose: the client imports this on every call and
pathlib would cost start-up time for nothing.
"""

from __future__ import annotations

import os
import stat

# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107

SYSTEM_SETTINGS_DIR = "/etc/bkm"
SYSTEM_STATE_DIR = "/var/lib/bkm"
SYSTEM_LOG_DIR = "/var/log/bkm"
SYSTEM_RUNTIME_DIR = "/run/bkm"
# Where a login session's runtime folder is (pam_systemd/logind): /run/user/UID.
USER_RUNTIME_BASE = "/run/user"


class PathError(Exception):
    """A path setting that cannot work; the message says why and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Paths:
    """Every path of one bkm installation. (A plain class: dataclasses cost start-up time.)"""

    __slots__ = ("settings", "store", "lock", "logs", "socket", "pidfile", "system", "home")

    def __init__(
        self,
        settings: str,
        store: str,
        lock: str,
        logs: str,
        socket: str,
        pidfile: str,
        system: bool = False,
        home: str | None = None,
    ) -> None:
        self.settings, self.store, self.lock, self.logs = settings, store, lock, logs
        self.socket, self.pidfile, self.system, self.home = socket, pidfile, system, home

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Paths(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    @property
    def state_dir(self) -> str:
        return os.path.dirname(self.store)

    @property
    def socket_dir(self) -> str:
        return os.path.dirname(self.socket)


def _xdg(env: dict, name: str, fallback: str) -> str:
    # The XDG spec says relative values are invalid and must be ignored.
    value = env.get(name, "")
    if value and os.path.isabs(value):
        return value
    return os.path.join(os.path.expanduser("~"), fallback)


def _user_runtime_dir(env: dict, base: str, uid: int | None) -> str | None:
    """$XDG_RUNTIME_DIR; without it (cron, ssh without PAM) the login session's BASE/UID when
    that folder exists and belongs to the user; else None."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return runtime
    uid = os.getuid() if uid is None else uid
    folder = os.path.join(base, str(uid))
    try:
        st = os.stat(folder)
    except (OSError, ValueError):
        return None
    return folder if stat.S_ISDIR(st.st_mode) and st.st_uid == uid else None


def resolve(
    home: str | None = None,
    socket: str | None = None,
    system: bool = False,
    env: dict | None = None,
    *,
    runtime_base: str = USER_RUNTIME_BASE,
    uid: int | None = None,
) -> Paths:
    """Resolve every path from flags first, then the environment, then the defaults.

    ``runtime_base`` and ``uid`` (default: this process's real uid) say where a login
    session's runtime folder is looked for when XDG_RUNTIME_DIR is unset; tests change them.
    """
    env = os.environ if env is None else env
    if not system:
        home = home or env.get("BKM_HOME") or None
    if home:
        # With --system too: system mode's rules (group bkm, owners), its files in DIR.
        home = os.path.abspath(os.path.expanduser(home))
        paths = _replace(_paths_in(home, home, os.path.join(home, "logs"), home), home=home, system=system)
    elif system:
        paths = _paths_in(SYSTEM_SETTINGS_DIR, SYSTEM_STATE_DIR, SYSTEM_LOG_DIR, SYSTEM_RUNTIME_DIR)
        paths = _replace(paths, system=True)
    else:
        config = os.path.join(_xdg(env, "XDG_CONFIG_HOME", ".config"), "bkm")
        state = os.path.join(_xdg(env, "XDG_STATE_HOME", os.path.join(".local", "state")), "bkm")
        runtime = _user_runtime_dir(env, runtime_base, uid)
        run_dir = os.path.join(runtime, "bkm") if runtime else state
        paths = _paths_in(config, state, os.path.join(state, "logs"), run_dir)
    socket = socket or env.get("BKM_SOCKET") or None
    if socket:
        socket = os.path.abspath(os.path.expanduser(socket))
        pidfile = paths.pidfile if home else os.path.join(os.path.dirname(socket), "bkmd.pid")
        paths = _replace(paths, socket=socket, pidfile=pidfile)
    return paths


def _paths_in(config_dir: str, state_dir: str, log_dir: str, run_dir: str) -> Paths:
    store = os.path.join(state_dir, "jobs.yaml")
    return Paths(
        settings=os.path.join(config_dir, "settings.yaml"),
        store=store,
        lock=store + ".lock",
        logs=log_dir,
        socket=os.path.join(run_dir, "bkmd.sock"),
        pidfile=os.path.join(run_dir, "bkmd.pid"),
    )


def _replace(paths: Paths, **changes) -> Paths:
    values = {key: getattr(paths, key) for key in Paths.__slots__}
    values.update(changes)
    return Paths(**values)


def check_socket_path(path: str) -> None:
    """Refuse a socket path AF_UNIX cannot hold, before bind() or connect() fails obscurely."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise PathError(
            f"socket path is {size} bytes, more than the {MAX_SOCKET_PATH_BYTES} a Unix socket allows: {path}",
            hint="choose a shorter one with --socket PATH or BKM_SOCKET (or a shorter --home)",
        )
