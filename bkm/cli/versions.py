"""bkm snapshots, bkm restore, bkm verify: the versions a job keeps, bringing files back, and
checking that the backup is what the source is."""

from __future__ import annotations

import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo, json_option, print_json
from bkm.errors import BkmError

SHOWN_NAMES = 20  # of each kind of difference, on a terminal; --json and the log have them all


@click.command()
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@json_option("One array of objects, newest first: name, time, partial, latest, files, bytes, new_bytes.")
@click.pass_obj
def snapshots(obj, job_ref, as_json) -> None:
    """A snapshot job's snapshots, newest first (an unfinished one, which the next run goes on
    writing, above them): time (local), files, size, and NEW: the bytes it
    holds that the snapshot before it did not (written anew, not hard-linked), as counted when it
    was made; "-" when unknown (made by hand or before bkm kept count)."""
    from bkm import render

    with obj.client(timeout=None) as client:  # the far side of a host: destination is asked
        listed = client.call("job.snapshots", job=job_ref)
    if as_json:
        print_json(listed)
        return
    if not listed:
        echo(f"job {render.safe(job_ref)} has no snapshot yet; the next run makes the first")
        return

    def size(value) -> str:
        return "-" if value is None else render.human_bytes(value)

    rows = [
        (
            render.safe(s["name"]),
            render.local_stamp(s["time"]),
            "unfinished" if s["partial"] else ("latest" if s["latest"] else ""),
            "-" if s["files"] is None else s["files"],
            size(s["bytes"]),
            size(s["new_bytes"]),
        )
        for s in listed
    ]
    echo(render.table(("SNAPSHOT", "TIME", "", "FILES", "SIZE", "NEW"), rows))


def _snapshot(value: str | None) -> str | None:
    """A snapshot as a person gives it: its folder name, latest, or its time (as `bkm
    snapshots` shows it, or in UTC): the folder name."""
    if value is None or value == "latest" or (len(value) == 18 and value.endswith("Z") and "T" in value):
        return value
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(value.replace(" +", "+").replace(" -", "-").replace("Z", "+00:00"))
    except ValueError:
        raise BkmError(
            f"not a snapshot: {value!r}",
            errors.USAGE,
            "give its name (2026-11-29T023000Z), its time as bkm snapshots shows it, or latest",
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a time without offset is local
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")


@click.command()
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@click.argument("paths", metavar="[PATH]...", nargs=-1)
@click.option(
    "--to",
    "into",
    metavar="DIR",
    required=True,
    help="The folder to restore into (made if missing, in a folder that exists); never inside the backup; the"
    " backed-up source only when DIR names it exactly.",
)
@click.option(
    "--snapshot",
    metavar="SNAPSHOT",
    help="Snapshot mode: restore from this snapshot (its name, its time as bkm snapshots shows it, or latest:"
    " the default).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be restored (the tool's own dry run).")
@click.option("--wait", is_flag=True, help="Wait for the restore to end: exit 0 completed, 1 failed, 5 paused.")
@json_option()
@click.pass_obj
def restore(obj, job_ref, paths, into, snapshot, dry_run, wait, as_json) -> None:
    """Copy files back from JOB's backup into DIR: the whole tree, or the PATHs given (relative
    to the backed-up tree: photos/2024 photos/cat.jpg), from the destination or one snapshot.

    It is a run of the job (trigger "restore"): progress in bkm watch, a log, pause with bkm job
    pause; a paused restore goes on when the same bkm restore is run again (what is there is
    not copied twice). Files in DIR that are not in the backup are left alone.
    """
    from bkm import render
    from bkm.cli.job import local_path

    params = {
        "job": job_ref,
        "to": local_path(into, obj, "to"),
        "paths": list(paths) or None,
        "snapshot": _snapshot(snapshot),
    }
    if dry_run:
        if wait:
            raise BkmError("--dry-run and --wait cannot be used together", errors.USAGE, "a dry run always waits")
        from bkm.cli.job import say_counted

        with obj.client(timeout=None) as client:
            counted = client.call("job.restore_dry_run", **params)
        where = render.safe(params["to"])
        say_counted(counted, as_json, "a restore now would copy", f" into {where}; nothing was written")
        return
    with obj.client() as client:
        if wait:
            client.call("events.subscribe", jobs=[job_ref])  # first: not even a short run ends unseen
        started = client.call("job.restore", **params)
        name = render.safe(started["name"])
        if not wait:
            if as_json:
                print_json(started)
            else:
                state = "queued" if started["status"] == "queued" else "started"
                where = render.safe(params["to"])
                echo(f"restore of job {name} into {where} {state}; follow it with: bkm watch {name}")
            return
        _wait(client, started)
        job = client.call("job.get", job=started["id"])
    from bkm.cli.job import _report_run

    # The restore's own outcome: the job's status stays what its backups made it.
    outcome = (job.get("last_run") or {}).get("outcome") or job["status"]
    _report_run(job, outcome, as_json)
    if outcome == "completed" and not as_json:
        run = job.get("last_run") or {}
        echo(
            f"restored into {render.safe(params['to'])}: {render.human_bytes(run.get('bytes') or 0)}"
            f" in {render.human_duration(run.get('duration_seconds'))}"
        )
    code = errors.exit_for([outcome])
    if code:
        sys.exit(code)


def _wait(client, started: dict) -> dict:
    from bkm import render
    from bkm.cli.run import follow

    try:
        return follow(client, [started["id"]], show_progress=True)[started["id"]]
    except KeyboardInterrupt:
        name = render.safe(started["name"])
        sys.stderr.write(f"\nbkm: note: stopped waiting; the run of job {name} goes on\n")
        sys.stderr.write(f"hint: pause it with: bkm job pause {name}\n")
        sys.exit(errors.INTERRUPTED)


@click.command()
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@json_option('The result: {"ok", "counts", "differ": [...], "missing": [...], "extra": [...], "error"}.')
@click.pass_obj
def verify(obj, job_ref, as_json) -> None:
    """Compare JOB's source and backup by checksum, and list every file that differs, is missing
    at the backup, or (mirror mode) is extra there; a snapshot job's latest snapshot is compared.

    This reads every file on both sides in full (rsync --checksum, rclone check --download): as
    long as a first backup, and as much disk and network. It is a run of the job (trigger
    "verify", progress in bkm watch, a log) and waits for its end. The result is kept as the
    job's last_verify (bkm job show). Exit 0 when all is the same, 1 when not, 5 when paused.
    """
    from bkm import render

    with obj.client() as client:
        client.call("events.subscribe", jobs=[job_ref])
        started = client.call("job.verify", job=job_ref)
        _wait(client, started)
        job = client.call("job.get", job=started["id"])
    result = job.get("last_verify") or {}
    name = render.safe(job["name"])
    if (job.get("last_run") or {}).get("outcome") == "paused":
        sys.stderr.write(f"bkm: error: the verify of job {name} was paused before it finished\n")
        sys.exit(errors.CONFLICT)
    if as_json:
        print_json(result)
    elif result.get("ok"):
        echo(f"job {name}: the backup is the same as the source (every file read and compared)")
    elif result.get("counts"):
        kinds = (("differ", "differs"), ("missing", "missing at the backup"), ("extra", "extra at the backup"))
        for kind, said in kinds:
            names = result.get(kind) or []
            for shown in names[:SHOWN_NAMES]:
                echo(f"{said}: {render.safe(shown)}")
            more = result["counts"][kind] - min(len(names), SHOWN_NAMES)
            if more > 0:
                echo(f"{said}: ... and {more} more (bkm verify {name} --json, or bkm logs {name})")
    if not result.get("ok"):
        error = (job.get("last_run") or {}).get("error") or result.get("error") or "unknown error"
        sys.stderr.write(f"bkm: error: job {name}: {render.safe(error)}\n")
        if result.get("counts"):
            sys.stderr.write(
                "hint: the next backup copies what is missing; a file that differs with the same size and time"
                " is copied again only once its copy is removed from the backup (then: bkm job start"
                f" {name} --wait)\n"
            )
        sys.exit(errors.FAILED)
