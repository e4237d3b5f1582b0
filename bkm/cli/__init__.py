"""The bkm command line: global options, lazy command loading, and the one error handler.

Commands live one noun per module and are imported only when used: start-up time matters
for a tool called from scripts and shell completion.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types

from bkm import __version__
from bkm.errors import INTERRUPTED, USAGE, BkmError


class _Deferred(types.ModuleType):
    """A standard module imported on first use of one of its names; a few names that click's
    start-up asks for are answered without it (``answers``), as the module would answer.

    click imports inspect (with ast, dis and tokenize) and, through uuid, platform: about a
    sixth of `bkm job show`'s whole time (bench/cli_startup.py), for help rendering and
    parameter types no command here uses at start-up. importlib's LazyLoader cannot defer
    them: `import inspect` itself reads the module's __spec__, which loads it (Python 3.11)."""

    def __init__(self, name: str, answers: dict) -> None:
        super().__init__(name)
        self.__dict__.update(answers)

    def __getattr__(self, name: str):
        # Called only for names this module lacks: once loaded, the module's names (answers
        # included) are copied in.
        return getattr(_real(self.__name__), name)


def _real(name: str) -> types.ModuleType:
    with _loading:  # threads (bkm fleet's) may ask at once
        deferred = sys.modules.get(name)
        if not isinstance(deferred, _Deferred):
            return importlib.import_module(name)
        del sys.modules[name]
        real = importlib.import_module(name)
        deferred.__dict__.update(real.__dict__)
        return real


def _cleandoc(doc: str) -> str:
    # What inspect.cleandoc makes of one line with no tab and nothing to strip at its start
    # (itself, in every Python), the shape of every option's help, which click cleans as it
    # defines each option; anything else goes to inspect.
    if "\n" not in doc and "\t" not in doc and not doc[:1].isspace():
        return doc
    return _real("inspect").cleandoc(doc)


def _system() -> str:
    # platform.system() (which uuid asks at import) on every system but Windows and Java.
    return os.uname().sysname


_loading = threading.RLock()
# tests/unit/test_cli_rules.py checks each answer against the module's own.
_ANSWERS = {"inspect": {"cleandoc": _cleandoc}, "platform": {"system": _system}}
for _name, _answers in _ANSWERS.items():
    if _name not in sys.modules and hasattr(os, "uname"):
        sys.modules[_name] = _Deferred(_name, _answers)

import click  # noqa: E402 (after the deferral above)

COMMANDS = {
    "job": ("bkm.cli.job", "job", "Create, list, show, edit, start, pause and delete backup jobs."),
    "schedule": ("bkm.cli.schedule", "schedule", "List scheduled jobs; pause and resume their schedules."),
    "metrics": ("bkm.cli.metrics", "metrics", "Print metrics in the Prometheus text format."),
    "notify": ("bkm.cli.notify", "notify", "Send a test notification to a job's or every notify URL."),
    "watch": ("bkm.cli.watch", "watch", "Watch running, queued and paused jobs live."),
    "logs": ("bkm.cli.logs", "logs", "Show, search, export or follow job logs."),
    "status": ("bkm.cli.status", "status", "The dashboard: daemon, job counts, active jobs, recent activity."),
    "recover": ("bkm.cli.recover", "recover", "Make jobs interrupted by a bkmd crash resumable (or dismiss them)."),
    "snapshots": ("bkm.cli.versions", "snapshots", "A snapshot job's snapshots: time, files, size."),
    "restore": ("bkm.cli.versions", "restore", "Copy files back from a job's backup or one of its snapshots."),
    "verify": ("bkm.cli.versions", "verify", "Compare a job's source and backup by checksum."),
    "apply": ("bkm.cli.apply", "apply", "Make the jobs match a YAML file (jobs as code)."),
    "export": ("bkm.cli.apply", "export", "Print jobs as a YAML file that bkm apply takes."),
    "fleet": ("bkm.cli.fleet", "fleet", "Status and jobs of every host in the hosts file, asked at once."),
    "bridge": ("bkm.cli.bridge", "bridge", "Join standard input and output to bkmd's socket (what --host runs)."),
    "settings": ("bkm.cli.settings", "settings", "Show and change bkmd's settings."),
    "daemon": ("bkm.cli.daemon", "daemon", "Control the bkmd daemon."),
    "doctor": ("bkm.cli.doctor", "doctor", "Check tools, daemon, folders, socket and disk."),
    "completion": ("bkm.cli.completion", "completion", "Print the shell completion script (bash, zsh, fish)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, so `bkm --help` imports no command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help) for name, (_, _, help) in COMMANDS.items()])


class Options:
    """The global options; paths are resolved only when a command needs them."""

    def __init__(self, home: str | None, socket: str | None, system: bool, host: str | None = None) -> None:
        self.home, self.socket, self.system = home, socket, system
        self.target = None
        if host:
            from bkm.transport import parse

            self.target = parse(host)
            if home or socket:
                raise BkmError(
                    f"--host and --{'home' if home else 'socket'} name two different bkmds", USAGE, "give one of them"
                )
            if self.target.kind == "unix":
                self.socket = self.target.path
        self._paths = None

    @property
    def remote(self) -> bool:
        """Whether the bkmd is on another machine (``--host ssh://``)."""
        return self.target is not None and self.target.remote

    def local_only(self, what: str) -> None:
        """Refuse, under ``--host ssh://``, a command that acts on this machine itself."""
        if self.remote:
            raise BkmError(
                f"{what} works on this machine only, not through --host",
                USAGE,
                f"run it on {self.target.host}: {self.target.ssh('bkm ...')}",
            )

    @property
    def paths(self):
        if self._paths is None:
            from bkm.paths import PathError, resolve

            try:
                self._paths = resolve(home=self.home, socket=self.socket, system=self.system)
            except PathError as e:
                raise BkmError(str(e), USAGE, e.hint) from None
        return self._paths

    def client(self, timeout: float | None = -1):
        """A client; ``timeout``: how long an answer may take (None: no limit), -1 the default."""
        from bkm.client import CALL_TIMEOUT, Client

        timeout = CALL_TIMEOUT if timeout == -1 else timeout
        if self.remote:
            return Client(None, timeout, target=self.target, system=self.system)
        return Client(self.paths, timeout)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", metavar="DIR", help="Use the bkmd whose files are in DIR (also BKM_HOME).")
@click.option("--socket", metavar="PATH", help="Talk to bkmd on this socket (also BKM_SOCKET).")
@click.option("--system", is_flag=True, help="Talk to the system bkmd (/run/bkm/bkmd.sock).")
@click.option(
    "--host",
    metavar="URL",
    envvar="BKM_HOST",
    help="Talk to the bkmd of another machine through OpenSSH: ssh://[USER@]HOST[:PORT] (with --system: "
    "its system bkmd); or to a socket: unix:///PATH (also BKM_HOST).",
)
@click.version_option(__version__, "--version", prog_name="bkm", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, home: str | None, socket: str | None, system: bool, host: str | None) -> None:
    """bkm: run, watch and remember rsync and rclone backups through the bkmd daemon.

    JOB is a job's name or its id. Commands that print data take --json.
    """
    ctx.obj = Options(home, socket, system, host)


def _print_error(message: str, hint: str | None) -> None:
    from bkm.render import safe

    sys.stderr.write(f"bkm: error: {safe(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {safe(hint)}\n")


def _quiet_broken_pipe() -> None:
    # The reader went away (`bkm job list | head -1`): drop the rest without a traceback.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return cli.main(args=argv, prog_name="bkm", standalone_mode=False) or 0
        finally:
            sys.stdout.flush()
    except BkmError as e:
        _print_error(e.message, e.hint)
        return e.exit_code
    except click.UsageError as e:
        command = e.ctx.command_path if e.ctx else "bkm"
        _print_error(e.format_message(), f"see: {command} --help")
        return USAGE
    except click.ClickException as e:
        _print_error(e.format_message(), None)
        return e.exit_code
    except (KeyboardInterrupt, click.Abort):
        sys.stderr.write("\n")
        return INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0


def run() -> None:
    """The `bkm` command: main(), then straight out with its exit status.

    When a command returns, nothing is left to clean up (output is flushed here, the kernel
    closes the socket), and the interpreter's own teardown of the modules click brings took
    10 ms, a sixth of a short command's time (issue 11). main() stays importable for callers
    that go on living.
    """
    try:
        code = main()
    except SystemExit as e:  # sys.exit(N) from a command, as sys.exit would treat it
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)
