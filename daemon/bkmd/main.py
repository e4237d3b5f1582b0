"""bkmd: arguments, the single-instance lock, loading the store, serving until told to stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import stat
import sys

from bkm import __version__
from bkm import paths as bkm_paths

log = logging.getLogger("bkmd")

EXIT_OK = 0
EXIT_FAILURE = 1


class StartupError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bkmd",
        description="The bkm daemon: owns the job store, runs rsync and rclone transfers and "
        "serves JSON-RPC 2.0 on a Unix socket. Runs in the foreground; logs go to stderr.",
    )
    parser.add_argument("--home", metavar="DIR", help="keep everything in DIR (also BKM_HOME)")
    parser.add_argument("--socket", metavar="PATH", help="listen on PATH (also BKM_SOCKET)")
    parser.add_argument("--system", action="store_true", help="use the system paths (/etc, /var/lib, /run)")
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (python-daemon); return once the socket accepts connections. Ignored under systemd",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"bkmd {__version__}")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _make_dir(path: str, mode: int = 0o700) -> None:
    """Create ``path`` (and missing parents) when it does not exist, the folder itself with
    exactly ``mode``: makedirs' mode is masked by the umask, hence the chmod. An existing
    folder is left as it is."""
    try:
        os.makedirs(path, mode=mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise StartupError(f"cannot create {path}: something that is not a folder is in the way") from None
        return
    except OSError as e:
        raise StartupError(f"cannot create {path}: {e.strerror}") from None
    try:
        os.chmod(path, mode)
    except OSError as e:
        raise StartupError(f"cannot set the mode of {path}: {e.strerror}") from None


def socket_folder_problem(path: str, euid: int, allowed_gid: int | None) -> str | None:
    """Why the socket may not live in the folder ``path``, or None: whoever can write to the
    folder can replace the socket. Its owner must be bkmd's user (``euid``) or root; only its
    owner may write to it, or also its group when that is bkmd's own (``allowed_gid``)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"cannot use the socket's folder {path}: {e.strerror}"
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        return f"the socket's folder {path} is not a folder"
    if st.st_uid not in (euid, 0):
        return (
            f"the socket's folder {path} belongs to uid {st.st_uid}, not to bkmd's user (uid {euid}) or root,"
            " who could replace the socket; choose another --socket"
        )
    if mode & stat.S_IWOTH:
        who = "other users"
    elif mode & stat.S_IWGRP and st.st_gid != allowed_gid:
        who = f"its group (gid {st.st_gid})"
    else:
        return None
    return (
        f"the socket's folder {path} (mode {mode:04o}) is writable by {who}, who could replace the socket;"
        f" make it private (chmod go-w {path}) or choose another --socket"
    )


SYSTEM_GROUP = "bkm"


def system_group() -> int | None:
    import grp

    try:
        return grp.getgrnam(SYSTEM_GROUP).gr_gid
    except KeyError:
        log.warning("no group %r: only root and bkmd's own user can use the socket", SYSTEM_GROUP)
        return None


def _socket_folder(paths: bkm_paths.Paths, gid: int | None) -> None:
    """The socket's folder: created private when missing (0700; 0750, group ``gid``, in system
    mode), and refused when someone else could replace the socket in it."""
    mode = 0o750 if gid is not None else 0o700
    _make_dir(paths.socket_dir, mode)
    if paths.system and gid is not None:  # the group may reach the socket's folder, nobody else
        try:
            os.chown(paths.socket_dir, -1, gid)
            os.chmod(paths.socket_dir, mode)
        except OSError as e:
            raise StartupError(f"cannot give {paths.socket_dir} to the group {SYSTEM_GROUP}: {e.strerror}") from None
    problem = socket_folder_problem(paths.socket_dir, os.geteuid(), gid)
    if problem:
        raise StartupError(problem)


def prepare(paths: bkm_paths.Paths):
    """Folders, the lock and the loaded store; raises StartupError with a one-line reason."""
    from bkmd import lock, store
    from bkmd.settings import Settings

    for directory in {paths.state_dir, os.path.dirname(paths.settings)} - {paths.socket_dir}:
        _make_dir(directory)
    _socket_folder(paths, system_group() if paths.system else None)
    try:
        held = lock.acquire(paths.lock)
    except lock.StoreLocked as e:
        raise StartupError(str(e)) from None
    except OSError as e:
        raise StartupError(f"cannot lock the store: {paths.lock}: {e.strerror}") from None
    try:
        records, _, warning = store.apply_journal(paths.store, store.load_jobs(paths.store))
        if warning:
            log.warning("%s", warning)
        settings = Settings(paths.settings, store.read_settings(paths.settings))
    except store.StoreError as e:
        held.release()
        previous = f"; the previous generation is {e.path}.bak" if os.path.exists(e.path + ".bak") else ""
        raise StartupError(f"{e} (the file was left as it is; fix it or move it away{previous})") from None
    return held, records, settings


async def serve(paths: bkm_paths.Paths, records: list[dict], settings, on_ready=None) -> None:
    from bkmd import access, methods, systemd
    from bkmd.app import Daemon
    from bkmd.rpc import Dispatcher
    from bkmd.server import Admission, Server, SocketInUse

    _more_files()
    daemon = Daemon(paths, records, settings)
    # Before anyone can ask: survivors of an earlier bkmd ended, nothing shown running that is not.
    daemon.start_up()
    dispatcher = Dispatcher(
        methods.build(daemon), daemon.commit, lambda connection: access.caller_of(connection, paths.system)
    )
    loop = asyncio.get_running_loop()
    # Before the socket exists: whoever can connect may also send SIGTERM, and must get a clean stop.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stopping.set)
    # SIGHUP (a closed terminal, `systemctl reload`, `kill -HUP`) reloads settings.yaml; it
    # never stops bkmd.
    loop.add_signal_handler(signal.SIGHUP, _reload_quietly, daemon)
    gid = system_group() if paths.system else None
    server = Server(dispatcher, Admission({os.getuid(), 0}, gid))
    activated = systemd.listening_socket()
    try:
        if activated is not None:
            await server.adopt(activated)  # socket activation: systemd made and owns it
        else:
            # System mode: members of the group bkm may use the socket too (0660, group bkm).
            await server.start(paths.socket, 0o660 if gid is not None else 0o600, gid)
    except (SocketInUse, OSError) as e:
        raise StartupError(f"cannot listen on {paths.socket}: {getattr(e, 'strerror', None) or e}") from None
    checkpoints = loop.create_task(daemon.checkpoints())
    scheduling = loop.create_task(daemon.scheduler.run())
    await daemon.metrics.apply(settings["metrics_listen"])
    where = "the socket systemd passed" if activated is not None else paths.socket
    log.info("bkmd %s ready on %s (%d jobs, store %s)", __version__, where, len(daemon.jobs.by_id), paths.store)
    systemd.notify("READY=1", f"STATUS=serving {len(daemon.jobs.by_id)} jobs")
    if on_ready is not None:
        on_ready()
    try:
        await daemon.stopping.wait()
        log.info("stopping: pausing %d running job(s)", len(daemon.runs.active))
        systemd.notify("STOPPING=1", "STATUS=pausing running jobs")
    finally:
        checkpoints.cancel()
        scheduling.cancel()
        await daemon.stop()
        await server.close()
    log.info("stopped")


def _more_files() -> None:
    """The soft limit of open files up to the hard one (at most 65536): every client,
    transfer pipe and metrics connection holds one, and 1024 is soon reached."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass


def _reload_quietly(daemon) -> None:
    from bkmd.errors import Unavailable

    try:
        daemon.reload_settings()
    except Unavailable:
        pass  # logged; the settings in use are kept


def configure_logging(verbose: bool, path: str | None = None) -> None:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s bkmd[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def run(paths: bkm_paths.Paths, on_ready=None) -> int:
    """Everything after the arguments: the lock, the store, serving until stopped."""
    held, records, settings = prepare(paths)
    try:
        asyncio.run(serve(paths, records, settings, on_ready))
    finally:
        held.release()
    return EXIT_OK


def _stop_during_startup(signum, frame) -> None:
    raise KeyboardInterrupt  # a SIGTERM before serving: the same clean exit 0 as Ctrl-C


def _hangup_during_startup(signum, frame) -> None:
    """SIGHUP before serving: nothing to reload yet, and never a reason to die. (A function,
    not SIG_IGN: a handler is reset in children at exec, an ignored signal would stay ignored.)"""


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_during_startup)
    signal.signal(signal.SIGHUP, _hangup_during_startup)
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        paths = bkm_paths.resolve(home=args.home, socket=args.socket, system=args.system)
        bkm_paths.check_socket_path(paths.socket)
        if args.detach:
            from bkmd import systemd

            if systemd.under_systemd():
                log.info("started by systemd: staying in the foreground")
            else:
                return _detached(paths, args.verbose)
        return run(paths)
    except (StartupError, bkm_paths.PathError) as e:
        hint = f"; {e.hint}" if getattr(e, "hint", None) else ""
        print(f"bkmd: error: {e}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _detached(paths: bkm_paths.Paths, verbose: bool) -> int:
    from bkmd.detach import detach

    # The pid file lives beside the socket (or in --home), and is taken before anything else.
    _socket_folder(paths, system_group() if paths.system else None)
    _make_dir(os.path.dirname(paths.pidfile))
    _make_dir(paths.logs)

    def daemon_main(readiness) -> int:
        configure_logging(verbose, os.path.join(paths.logs, "bkmd.log"))
        try:
            return run(paths, on_ready=lambda: readiness.tell("ok"))
        except StartupError as e:
            log.error("%s", e)
            readiness.tell(str(e))
            return EXIT_FAILURE
        except Exception as e:
            log.exception("bkmd failed")
            readiness.tell(f"bkmd failed: {e}")
            return EXIT_FAILURE

    return detach(paths.pidfile, daemon_main)


if __name__ == "__main__":
    sys.exit(main())
