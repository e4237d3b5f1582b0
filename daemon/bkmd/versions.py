"""Modes, snapshots, restore and verify: what a run of each kind runs, and the short commands
around it (the mirror guard before a mirror, the renaming and retention after a snapshot).

Every command runs as the job's owner, as the transfer does, and as an argument vector. A
snapshot at a `host:path` destination is kept there through the remote shell rsync itself
uses (`-e`/`--rsh` of the settings' or the job's arguments, RSYNC_RSH, else ssh), with every
word quoted for the far side's shell.
"""

from __future__ import annotations

import os
import re
import shlex

from bkm import model
from bkmd import retention
from bkmd.commands import Commands
from bkmd.engines import engine as engine_for

COMMAND_TIMEOUT = 600.0  # seconds: a rename or a listing that takes longer is stuck
GUARD_TIMEOUT = 6 * 3600.0  # the guard lists both trees: as long as a no-op run may take
LIST_LIMIT = 1000  # names kept of each kind of difference a verify found
RETENTION = "retention: "  # a problem of retention only: the snapshot itself is whole
DELETING = ".deleting"  # a snapshot being removed by retention
RETENTION_TIMEOUT = 6 * 3600.0  # removing a snapshot of millions of files takes a while


# -- where things are ----------------------------------------------------------------------


def remote_parts(dest: str) -> tuple[str, str] | None:
    """("user@host", "path") of a `host:path` destination; None for a local one."""
    if not model.is_remote(dest):
        return None
    host, _, path = dest.partition(":")
    return host, path.rstrip("/") or ("/" if path.startswith("/") else ".")


def folder(dest: str, name: str) -> str:
    """DEST/NAME/, local or `host:path` alike (rsync's trailing slash: the folder itself)."""
    base = dest.rstrip("/")
    joiner = "" if base.endswith(":") else "/"
    return f"{base}{joiner}{name}/"


def _path(dest: str, name: str) -> str:
    """NAME inside DEST as the machine that holds DEST names it (no host, no trailing slash)."""
    parts = remote_parts(dest)
    return os.path.join(parts[1] if parts else dest, name)


def remote_shell(job, settings) -> list[str]:
    """The remote shell rsync uses for this job: its -e/--rsh argument, else RSYNC_RSH, else ssh."""
    args = list(settings["rsync_args"]) + list(job.tool_args)
    shell = None
    for i, arg in enumerate(args):
        if arg.startswith("--rsh="):
            shell = arg[len("--rsh=") :]
        elif arg in ("-e", "--rsh") and i + 1 < len(args):
            shell = args[i + 1]
        elif arg.startswith("-e") and not arg.startswith("--"):
            shell = arg[2:]
    shell = shell or os.environ.get("RSYNC_RSH") or "ssh"
    try:
        return shlex.split(shell)
    except ValueError:  # rsync splits it its own way; quotes we cannot read: plain words
        return shell.split()


def on_destination(job, settings, commands: list[list[str]]) -> list[list[str]]:
    """``commands`` run where the destination is: as they are, or one remote shell line."""
    parts = remote_parts(job.dest)
    if parts is None:
        return commands
    line = " && ".join(shlex.join(command) for command in commands)
    return [remote_shell(job, settings) + [parts[0], "--", line]]


# -- snapshots -----------------------------------------------------------------------------


def backup_argv(job, settings, resume: bool, partial: str | None, keeper: bool = False) -> list[str]:
    engine = engine_for(job.type)
    if job.mode == "snapshot":
        # Relative to the new folder: the same for a local and a `host:` destination.
        link = "../" + retention.LATEST
        return engine.argv(job, settings, resume, dest=folder(job.dest, partial), link_dest=link, keeper=keeper)
    return engine.argv(job, settings, resume, delete=job.mode == "mirror", keeper=keeper)


async def list_snapshots(commands: Commands, job, settings) -> tuple[list[str] | None, str | None]:
    """(folder names in DEST, or None; why not): what the destination holds right now."""
    target = _path(job.dest, "")
    argv = on_destination(job, settings, [["ls", "-1A", "--", target]])[0]
    code, out, err = await commands.run(argv, job)
    if code != 0:
        if "No such file or directory" in err:
            return [], None  # no snapshot yet: not even the folder
        return None, _last_line(err) or f"ls exited with {code}"
    return [line for line in out.splitlines() if line], None


async def finish_snapshot(
    commands: Commands, job, settings, partial: str, zone, clock
) -> tuple[str | None, str | None, list[str]]:
    """The run into ``partial`` completed: name it, point `latest` at it, apply retention.
    (the snapshot's name once it has it, else None; a problem or None; the snapshots removed)."""
    names, problem = await list_snapshots(commands, job, settings)
    if names is None:
        return None, f"snapshot: cannot list {job.dest}: {problem}", []
    name = partial[: -len(retention.PARTIAL_SUFFIX)]
    while name in names:
        # Taken: by a run before this one that bkmd did not live to record, or by another
        # job writing to the same folder. This one is another snapshot: the next second's.
        name = retention.name_for(retention.parse_name(name).timestamp() + 1)
    latest = _path(job.dest, retention.LATEST)
    if remote_parts(job.dest) is None:
        # -T: into that very name, never into a folder of that name (GNU coreutils, as on
        # every machine bkmd runs on); `latest` that is a real folder fails loudly.
        steps = [
            ["mv", "-T", "--", _path(job.dest, partial), _path(job.dest, name)],
            ["ln", "-sfnT", "--", name, latest],
        ]
    else:  # whatever the far side's mv and ln are: the name is new; rm -f refuses a folder
        steps = [
            ["mv", "--", _path(job.dest, partial), _path(job.dest, name)],
            ["rm", "-f", "--", latest],
            ["ln", "-s", "--", name, latest],
        ]
    named = False
    for argv in on_destination(job, settings, steps):
        code, _, err = await commands.run(argv, job)
        if code != 0:
            what = "point latest at it" if named else "give it its name"
            # A latest that is not moved would restore old files as the newest: no success.
            return (name if named else None), f"snapshot {name}: could not {what}: {_last_line(err) or code}", []
        named = True  # the first step (or the one remote line) is done
    if not job.keep:
        return name, None, []
    # Only snapshots this job made: another job's in the same folder, or a folder someone put
    # there, are not this job's to remove.
    own = set(job.snapshot_stats) | {name}
    mine = [n for n in {*names, name} if n in own and n != partial]
    rules = {f"keep_{rule}": n for rule, n in job.keep.items()}
    _, removed = retention.keep(mine, rules, zone)
    removed = [n for n in removed if n != name]  # the one just made stays, whatever its name
    # Renamed first, so that a removal cut short (a huge tree, a stop) never leaves a part of
    # a snapshot that still has a snapshot's name; the leftovers of one are removed next time.
    leftovers = [n for n in names if n.endswith(DELETING) and retention.parse_name(n[: -len(DELETING)])]
    doomed = [n + DELETING for n in removed] + leftovers
    if doomed:
        renames = [["mv", "--", _path(job.dest, n), _path(job.dest, n + DELETING)] for n in removed]
        steps = renames + [["rm", "-rf", "--", *(_path(job.dest, n) for n in doomed)]]
        argv = on_destination(job, settings, steps)
        code, err = 0, ""
        for command in argv:
            code, _, err = await commands.run(command, job, RETENTION_TIMEOUT)
            if code != 0:
                break
        if code != 0:
            return name, f"{RETENTION}could not remove old snapshots: {_last_line(err)}", []
    return name, None, removed


# -- the mirror guard ----------------------------------------------------------------------


async def mirror_guard(commands: Commands, job, settings) -> str | None:
    """Why a mirror run must not run now, or None. An unmounted disk or a missing share looks
    like an empty source, and a mirror of it deletes the whole backup: refused when the source
    has no files, or when more than half of the destination's would be deleted."""
    engine = engine_for(job.type)
    code, out, err = await commands.run(engine.guard_argv(job, settings), job, GUARD_TIMEOUT)
    counts = engine.guard_counts(out, err) if code in engine.GUARD_OK else None
    if counts is None:
        return f"mirror guard: could not count what the mirror would delete ({_last_line(err) or code})"
    source, dest, deleted = counts
    hint = f"if that is really wanted, run it once with: bkm job start {shlex.quote(job.name)} --force"
    if source == 0 and dest > 0:
        return f"mirror guard: the source has no files; the mirror would delete all {dest} at the destination ({hint})"
    if deleted * 2 > dest and deleted > 0:
        return f"mirror guard: the mirror would delete {deleted} of the {dest} files at the destination ({hint})"
    return None


# -- restore and verify --------------------------------------------------------------------


def restore_argv(job, settings, paths: list[str], into: str, snapshot: str | None) -> list[str]:
    """The backup (its destination, or one of its snapshots) back into ``into``."""
    engine = engine_for(job.type)
    root = folder(job.dest, snapshot) if snapshot else job.dest
    into = into.rstrip("/") + "/"
    if job.type == "rsync":
        # SRC/./PATH with --relative: PATH keeps its folders below INTO.
        sources = [folder(root, f"./{path}").rstrip("/") for path in paths] or [folder(root, ".")]
        if remote_parts(job.dest) is not None:
            # The far rsync expands wildcards in the paths it is sent (even with -s): a name
            # with [ ] * ? is meant as it is written.
            sources = [_literal(source) for source in sources]
        return engine.argv(job, settings, sources=sources, dest=into, filters=False)
    return engine.argv(job, settings, sources=[root], dest=into, filters=False, includes=paths)


def _literal(remote: str) -> str:
    host, _, path = remote.partition(":")
    return host + ":" + re.sub(r"([\\*?\[\]])", r"\\\1", path)


def verify_target(job) -> str:
    return folder(job.dest, retention.LATEST) if job.mode == "snapshot" else job.dest


def verify_result(job, found: dict[str, list[str]], at: str) -> dict:
    """The job's last_verify: what differs, is missing at the backup, or (mirror) is extra."""
    if job.mode != "mirror":
        found = {**found, "extra": []}  # a copy or a snapshot keeps what the source deleted
    counts = {kind: len(names) for kind, names in found.items()}
    return {
        "at": at,
        "ok": not any(counts.values()),
        "counts": counts,
        **{kind: names[:LIST_LIMIT] for kind, names in found.items()},
        "error": None,
    }


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
