"""bkm job ...: create, list, show, edit, delete."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo, json_option, print_json
from bkm.errors import BkmError
from bkm.model import is_remote
from bkm.render import is_terminal


def local_path(path: str | None, obj=None, field: str = "") -> str | None:
    """Make a local path absolute against the caller's folder: bkmd runs elsewhere.

    A trailing slash is kept (for rsync it means "the folder's contents"); remotes and
    anything starting with '-' go to bkmd untouched, to be judged there. For a bkmd on
    another machine (--host ssh://) this folder means nothing: a relative path is refused.
    """
    if not path or path.startswith("-") or is_remote(path) or os.path.isabs(path):
        return path
    if obj is not None and obj.remote:
        host = obj.target.host
        raise BkmError(
            f"--{field} {path} is a relative path: on {host} it would not name the folder it names here",
            errors.USAGE,
            f"give the absolute path of the folder on {host}",
        )
    absolute = os.path.abspath(path)
    if path.endswith("/") and absolute != "/":
        absolute += "/"
    return absolute


@contextlib.contextmanager
def _tilde_hint(*paths: str | None):
    """A path given as '~/src/' (quoted, so the shell did not expand it) names a folder "~" in
    the current one, which rarely exists: say so when bkmd refuses it."""
    try:
        yield
    except BkmError as e:
        quoted = [p for p in paths if p and (p == "~" or p.startswith("~/"))]
        if quoted and e.exit_code == errors.USAGE and "does not exist" in e.message:
            e.hint = f"~ was not expanded (it was quoted): write $HOME{quoted[0][1:]} or leave ~ unquoted"
        raise


@click.group()
def job() -> None:
    """Create, list, show, edit, start, pause and delete backup jobs."""


SCHEDULE_HELP = (
    "Run on a schedule: 5-field cron ('30 2 * * *'), @hourly, @daily, @weekly, @monthly,"
    " or '@every DURATION' (e.g. '@every 6h')."
)
RETRIES_HELP = "Extra attempts after a transient failure (network, timeout, stall); default: the setting retries."
RETRY_WAIT_HELP = (
    "Wait before the first retry (90s, 5m, 1h), doubled each attempt, at most 1h; default: the setting retry_wait."
)


TOOL_ARG_HELP = (
    "An extra argument for this job's rsync or rclone (repeatable), e.g. --tool-arg=--rsh='ssh -p 2222';"
    " after the settings' rsync_args/rclone_args."
)
MAX_AGE_HELP = "The job is stale when its last success is older than this (26h, 7d); 0: never."
HOOK_HELP = "A /bin/sh command run as the job's owner {when} (repeatable)."


def hook_options(command):
    """--before/--after/--on-success/--on-failure, on create and edit."""
    for name, when in reversed(
        (
            ("before", "before each run; if it fails, the run fails and no transfer starts"),
            ("after", "after each run, whatever its outcome"),
            ("on-success", "after a run that completed"),
            ("on-failure", "after a run that failed (after the last retry; also for a run found interrupted)"),
        )
    ):
        command = click.option(
            f"--{name}",
            f"hook_{name.replace('-', '_')}",
            metavar="CMD",
            multiple=True,
            help=HOOK_HELP.format(when=when),
        )(command)
    return command


MODE_HELP = (
    "copy (default): new and changed files, nothing deleted; mirror: the destination becomes exactly the source"
    " (with a guard against an empty source); snapshot (rsync): a dated folder per run, unchanged files hard-linked."
)
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly")


def version_options(command):
    """--mode and the snapshot retention rules --keep-*, on create and edit."""
    for rule in reversed(KEEP_RULES):
        what = {
            "last": "the N newest snapshots",
            "hourly": "the newest snapshot of each of the last N hours that have one",
            "daily": "the newest snapshot of each of the last N days that have one",
            "weekly": "the newest snapshot of each of the last N weeks that have one",
            "monthly": "the newest snapshot of each of the last N months that have one",
        }[rule]
        command = click.option(
            f"--keep-{rule}", f"keep_{rule}", metavar="N", help=f"Snapshot retention: keep {what} (0: no such rule)."
        )(command)
    return click.option("--mode", type=click.Choice(["copy", "mirror", "snapshot"]), help=MODE_HELP)(command)


def version_fields(options: dict) -> dict:
    """The mode and keep fields of a create or edit, taken out of ``options``."""
    keep = {rule: options.pop(f"keep_{rule}") for rule in KEEP_RULES}
    return {"mode": options.pop("mode"), "keep": {k: v for k, v in keep.items() if v is not None} or None}


def given_hooks(options: dict) -> dict:
    return {
        kind: list(options[f"hook_{kind}"])
        for kind in ("before", "after", "on_success", "on_failure")
        if options[f"hook_{kind}"]
    }


@job.command("create")
@click.argument("name", required=False)
@click.option("--type", "job_type", metavar="rsync|rclone", help="The transfer tool.")
@click.option("--source", metavar="SRC", help="What to back up: a local path or a remote (host:path).")
@click.option("--dest", metavar="DEST", help="Where to: a local path or a remote (host:path, remote:path).")
@click.option(
    "--bwlimit", metavar="KIB", help="Bandwidth limit in KiB/s; 0 is unlimited (default: the setting default_bwlimit)."
)
@click.option(
    "--exclude", "excludes", metavar="PATTERN", multiple=True, help="Leave out files matching PATTERN (repeatable)."
)
@click.option("--schedule", metavar="SPEC", help=SCHEDULE_HELP)
@click.option("--retries", metavar="N", help=RETRIES_HELP)
@click.option("--retry-wait", metavar="DURATION", help=RETRY_WAIT_HELP)
@click.option("--max-age", metavar="DURATION", help=MAX_AGE_HELP)
@hook_options
@version_options
@click.option("--healthcheck", metavar="URL", help="A healthchecks.io-style ping URL: start, success and fail pings.")
@click.option("--notify", "notify", metavar="URL", multiple=True, help="An Apprise URL told of failures (repeatable).")
@click.option("--tool-arg", "tool_args", metavar="ARG", multiple=True, help=TOOL_ARG_HELP)
@json_option()
@click.pass_obj
def create(
    obj, name, job_type, source, dest, bwlimit, excludes, schedule, retries, retry_wait, max_age, healthcheck, notify,
    tool_args, as_json, **hooks,
) -> None:  # fmt: skip
    """Create a job named NAME (status pending).

    Every problem with the given values is reported at once, each naming its field. With
    --schedule, bkmd runs it on its own; cron times are in the setting timezone.
    """
    with obj.client() as client, _tilde_hint(source, dest):
        created = client.call(
            "job.create",
            name=name,
            type=job_type,
            source=local_path(source, obj, "source"),
            dest=local_path(dest, obj, "dest"),
            bwlimit=bwlimit,
            excludes=list(excludes),
            schedule=schedule,
            retries=retries,
            retry_wait_seconds=retry_wait,
            max_age_seconds=max_age,
            **version_fields(hooks),
            hooks=given_hooks(hooks),
            healthcheck=healthcheck,
            notify=list(notify),
            tool_args=list(tool_args),
        )
    if as_json:
        print_json(created)
    else:
        echo(f"created job {created['name']} ({created['id']})")
        echo(describe(created))


@job.command("list")
@click.option(
    "--status",
    "statuses",
    metavar="STATUS",
    multiple=True,
    help="Only jobs with this status (repeatable): pending, queued, running, paused, completed, failed, interrupted.",
)
@json_option()
@click.pass_obj
def list_(obj, statuses, as_json) -> None:
    """List jobs, most recently updated first (queued jobs in the order they will start)."""
    with obj.client() as client:
        jobs = client.call("job.list", status=list(statuses) or None)
    if as_json:
        print_json(jobs)
        return
    interrupted = []
    if is_terminal():
        if statuses:
            with obj.client() as client:
                interrupted = [j["name"] for j in client.call("recovery.list")]
        else:
            interrupted = [j["name"] for j in jobs if j["status"] == "interrupted"]
    if interrupted:
        from bkm import render

        names = ", ".join(render.safe(n) for n in interrupted)
        sys.stderr.write(f"bkm: notice: interrupted when bkmd stopped: {names}; resume with: bkm recover\n")
    if not jobs:
        if statuses:
            echo(f"no jobs with status {', '.join(statuses)}")
        else:
            echo("no jobs yet; create one with:")
            echo("  bkm job create NAME --type rsync --source SRC --dest DEST")
        return
    from bkm import render

    jobs = queue_order(jobs)
    rows = [
        (
            render.cut(render.safe(j["name"]), 24),
            j["type"],
            status_cell(j),
            progress_cell(j),
            next_cell(j),
            render.cut(render.safe(j["source"]), 32),
            render.cut(render.safe(j["dest"]), 32),
            render.ago(j["updated_at"]),
        )
        for j in jobs
    ]
    headers = ("NAME", "TYPE", "STATUS", "PROGRESS", "NEXT RUN", "SOURCE", "DEST", "UPDATED")
    echo(render.table(headers, rows, width=render.output_width(), shrink=(0, 5, 6)))


@job.command("show")
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@json_option()
@click.pass_obj
def show(obj, job_ref, as_json) -> None:
    """Show one job: its settings, status, progress and last run."""
    with obj.client() as client:
        found = client.call("job.get", job=job_ref)
    if as_json:
        print_json(found)
    else:
        echo(describe(found))


@job.command("history")
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@click.option("-n", "count", type=click.IntRange(1), default=20, show_default=True, help="How many runs, newest first.")
@json_option()
@click.pass_obj
def history(obj, job_ref, count, as_json) -> None:
    """A job's runs, newest first: start (local time), duration, outcome, bytes, trigger, error.

    bkmd keeps the last keep_runs runs of each job (a setting).
    """
    from bkm import render

    with obj.client() as client:
        found = client.call("job.get", job=job_ref)
    runs = list(reversed(found.get("runs") or []))[:count]
    if as_json:
        print_json(runs)
        return
    if not runs:
        name = render.safe(found["name"])
        echo(f"job {name} has not run yet; start it with: bkm job start {name}")
        return
    rows = []
    for run in runs:
        outcome = run.get("outcome") or "running"
        if outcome == "skipped" and (run.get("count") or 1) > 1:
            outcome = f"skipped x{run['count']}"
        elif run.get("warnings"):
            outcome += f" ({len(run['warnings'])} warning{'s' if len(run['warnings']) > 1 else ''})"
        trigger = run.get("trigger") or "manual"
        if (run.get("attempt") or 1) > 1:
            trigger += f" #{run['attempt']}"
        rows.append(
            (
                render.local_stamp(run.get("started_at")),
                render.human_duration(run.get("duration_seconds")),
                outcome,
                "-" if outcome.startswith("skipped") else render.human_bytes(run.get("bytes") or 0),
                trigger,
                render.cut(render.safe(run.get("error") or ""), 60),
            )
        )
    echo(render.table(("STARTED", "TOOK", "OUTCOME", "SENT", "TRIGGER", "ERROR"), rows))


@job.command("edit")
@click.argument("job_ref", metavar="JOB", shell_complete=job_names)
@click.option("--name", help="Rename the job.")
@click.option("--source", metavar="SRC", help="New source.")
@click.option("--dest", metavar="DEST", help="New destination.")
@click.option("--bwlimit", metavar="KIB", help="New bandwidth limit in KiB/s; 0 is unlimited.")
@click.option(
    "--exclude", "excludes", metavar="PATTERN", multiple=True, help="Replace the excludes with these (repeatable)."
)
@click.option("--clear-excludes", is_flag=True, help="Remove all excludes.")
@click.option("--schedule", metavar="SPEC", help=SCHEDULE_HELP)
@click.option("--no-schedule", is_flag=True, help="Remove the schedule: run only when started.")
@click.option("--retries", metavar="N", help=RETRIES_HELP.replace("; default: the setting retries", ""))
@click.option("--retry-wait", metavar="DURATION", help=RETRY_WAIT_HELP.split("; default")[0] + ".")
@click.option("--max-age", metavar="DURATION", help=MAX_AGE_HELP)
@hook_options
@version_options
@click.option("--clear-hooks", is_flag=True, help="Remove every hook (then add those given).")
@click.option("--healthcheck", metavar="URL", help="A healthchecks.io-style ping URL.")
@click.option("--no-healthcheck", is_flag=True, help="No more pings.")
@click.option(
    "--notify", "notify", metavar="URL", multiple=True, help="Replace the Apprise URLs with these (repeatable)."
)
@click.option("--clear-notify", is_flag=True, help="Remove the job's Apprise URLs.")
@click.option("--tool-arg", "tool_args", metavar="ARG", multiple=True, help="Replace the job's extra tool arguments.")
@click.option("--clear-tool-args", is_flag=True, help="Remove the job's extra tool arguments.")
@json_option()
@click.pass_obj
def edit(
    obj, job_ref, name, source, dest, bwlimit, excludes, clear_excludes, schedule, no_schedule, retries, retry_wait,
    max_age, clear_hooks, healthcheck, no_healthcheck, notify, clear_notify, tool_args, clear_tool_args, as_json,
    **hooks,
) -> None:  # fmt: skip
    """Change a job that is not running or queued."""
    if excludes and clear_excludes:
        raise BkmError(
            "--exclude and --clear-excludes cannot be used together",
            errors.USAGE,
            "--exclude alone already replaces the excludes",
        )
    if schedule and no_schedule:
        raise BkmError("--schedule and --no-schedule cannot be used together", errors.USAGE)
    changes = {
        "name": name,
        "source": local_path(source, obj, "source"),
        "dest": local_path(dest, obj, "dest"),
        "bwlimit": bwlimit,
        "excludes": [] if clear_excludes else (list(excludes) or None),
        "schedule": schedule,
        "retries": retries,
        "retry_wait_seconds": retry_wait,
    }
    for flag, value, clear in (("--healthcheck", healthcheck, no_healthcheck), ("--notify", notify, clear_notify)):
        if value and clear:
            raise BkmError(f"{flag} and its clearing option cannot be used together", errors.USAGE)
    changes["max_age_seconds"] = max_age
    changes["healthcheck"] = healthcheck
    changes["notify"] = [] if clear_notify else (list(notify) or None)
    if tool_args and clear_tool_args:
        raise BkmError("--tool-arg and --clear-tool-args cannot be used together", errors.USAGE)
    changes["tool_args"] = [] if clear_tool_args else (list(tool_args) or None)
    changes.update(version_fields(hooks))
    kinds = given_hooks(hooks)
    changes["hooks"] = (
        ({"before": [], "after": [], "on_success": [], "on_failure": []} | kinds) if clear_hooks else (kinds or None)
    )
    changes = {k: v for k, v in changes.items() if v is not None}
    if no_schedule:
        changes["schedule"] = None  # null: no schedule
    if no_healthcheck:
        changes["healthcheck"] = None
    if not changes:
        raise BkmError(
            "nothing to change",
            errors.USAGE,
            "give at least one of --name, --source, --dest, --bwlimit, --exclude, --clear-excludes,"
            " --schedule, --no-schedule, --retries, --retry-wait, --max-age, a hook, --healthcheck, --notify,"
            " --tool-arg",
        )
    with obj.client() as client, _tilde_hint(source, dest):
        updated = client.call("job.update", job=job_ref, **changes)
    if as_json:
        print_json(updated)
    else:
        echo(f"updated job {updated['name']}")
        echo(describe(updated))


def _refs(job_refs: tuple[str, ...], all_jobs: bool, command: str) -> list[str]:
    if job_refs and all_jobs:
        raise BkmError("give JOBs or --all, not both", errors.USAGE, f"see: bkm job {command} --help")
    if not job_refs and not all_jobs:
        raise BkmError("no job given", errors.USAGE, f"give one or more JOBs, or --all: bkm job {command} JOB...")
    return list(dict.fromkeys(job_refs))


def worst(codes) -> int:
    """One exit code for several jobs' results: a failure first, then a missing job, then a
    conflict (running, paused), else 0."""
    for code in (errors.FAILED, errors.UNREACHABLE, errors.USAGE, errors.NO_SUCH_JOB, errors.CONFLICT):
        if code in codes:
            return code
    return errors.OK


def _say_error(ref: str, error: BkmError) -> None:
    from bkm import render

    message = error.message if ref in error.message else f"job {ref}: {error.message}"
    sys.stderr.write(f"bkm: error: {render.safe(message)}\n")
    if error.hint:
        sys.stderr.write(f"hint: {render.safe(error.hint)}\n")


@job.command("start")
@click.argument("job_refs", metavar="JOB...", nargs=-1, shell_complete=job_names)
@click.option("--all", "all_jobs", is_flag=True, help="Every job that is not running or queued.")
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the runs to end (a run already in progress too), with a progress line on a terminal;"
    " exit 0 completed, 1 failed, 5 paused.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only count what a run would send now (the tool's own dry run); changes no status or history.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Mirror mode: run even if the mirror guard would refuse (an empty source, or more than half of the"
    " destination's files deleted), this once.",
)
@json_option()
@click.pass_obj
def start(obj, job_refs, all_jobs, wait, dry_run, force, as_json) -> None:
    """Start (or resume) jobs' backups; a job waits in the queue when max_concurrent_jobs are running.

    From paused or interrupted it continues: what was transferred is not sent again. With
    --wait, a job already running or queued (a cron run meeting a manual one) is waited for
    instead of started again, and a run that fails for a transient reason and is retried is
    waited for to the end. Each job's result is one line; the exit code is the worst one.
    """
    refs = _refs(job_refs, all_jobs, "start")
    if dry_run:
        if wait:
            raise BkmError("--dry-run and --wait cannot be used together", errors.USAGE, "a dry run always waits")
        if len(refs) != 1:
            raise BkmError("--dry-run takes one JOB", errors.USAGE)
        _dry_run(obj, refs[0], as_json)
        return
    from bkm import model, render

    codes: list[int] = []
    chosen: dict[str, dict] = {}  # job id: the job as started or found running
    with obj.client() as client:
        if all_jobs:
            refs = [j["id"] for j in client.call("job.list") if j["status"] not in model.ACTIVE]
        for ref in refs:
            try:
                if wait:
                    # Subscribed first, so that not even a very short run can end unseen.
                    (now,) = client.call("events.subscribe", jobs=[ref])["jobs"]
                    if now["status"] in model.ACTIVE:
                        doing = (client.call("job.get", job=now["job_id"]).get("last_run") or {}).get("trigger")
                        if doing in (model.RESTORE, model.VERIFY):  # not a backup: cron must not read 0
                            raise BkmError(
                                f"job {now['name']!r} is {now['status']} for a {doing}: no backup can start"
                                " until it ends",
                                errors.CONFLICT,
                            )
                        chosen[now["job_id"]] = {"id": now["job_id"], "name": now["name"], "status": now["status"]}
                        if not as_json:
                            note = f"job {render.safe(now['name'])} is {now['status']}: waiting for that run"
                            sys.stderr.write(f"bkm: note: {note}\n")
                        continue
                started = client.call("job.start", job=ref, **({"force": True} if force else {}))
            except BkmError as e:
                _say_error(ref, e)
                codes.append(e.exit_code)
                continue
            chosen[started["id"]] = started
            if not wait and not as_json:
                echo(f"job {render.safe(started['name'])} {'queued' if started['status'] == 'queued' else 'started'}")
        if not wait:
            if as_json:
                results = list(chosen.values())
                print_json(results[0] if len(job_refs) == 1 and results else results)
            if codes:
                sys.exit(worst(codes))
            return
        from bkm.cli.run import follow

        try:
            finals = follow(client, list(chosen), show_progress=not as_json)
        except KeyboardInterrupt:
            names = ", ".join(render.safe(j["name"]) for j in chosen.values())
            sys.stderr.write(f"\nbkm: note: stopped waiting; {names} go on\n")
            listed = " ".join(render.safe(j["name"]) for j in chosen.values())
            sys.stderr.write(f"hint: pause them with: bkm job pause {listed}\n")
            sys.exit(errors.INTERRUPTED)
        finished = []
        for job_id, final in finals.items():
            try:
                job = client.call("job.get", job=job_id)
            except BkmError as e:
                if e.exit_code != errors.UNREACHABLE:
                    raise
                # bkmd paused the run because it is stopping, and is gone now: the run's end is
                # known from its last event, and that is what --wait reports (exit 5, not 3).
                job = dict(chosen[job_id], status=final["status"], last_run=None)
            finished.append((job, final["status"]))
    if as_json:
        jobs = [job for job, _ in finished]
        print_json(jobs[0] if len(job_refs) == 1 and jobs else jobs)
    for job, status in finished:
        _report_run(job, status, False, quiet=as_json)
    code = worst(codes + [errors.exit_for([status]) for _, status in finished])
    if code:
        sys.exit(code)


def _dry_run(obj, job_ref: str, as_json: bool) -> None:
    # A dry run reads the whole tree (and, for a remote, asks it): no answer time to bound.
    with obj.client(timeout=None) as client:
        counted = client.call("job.dry_run", job=job_ref)
    say_counted(counted, as_json, "a run now would send", "; nothing was changed")


def say_counted(counted: dict, as_json: bool, would: str, after: str) -> None:
    """A dry run's count: {"files", "bytes"} as JSON, or one sentence ("a run now would send ...")."""
    from bkm import render

    if as_json:
        print_json({"files": counted["files"], "bytes": counted["bytes"]})
        return
    files = counted["files"]
    echo(
        f"job {render.safe(counted['job'])}: {would} {files} file{'s' if files != 1 else ''},"
        f" {render.human_bytes(counted['bytes'])} ({counted['bytes']} bytes){after}"
    )


def _report_run(job: dict, status: str, as_json: bool, quiet: bool = False) -> None:
    from bkm import render

    run = job.get("last_run") or {}
    name = render.safe(job["name"])
    if as_json:
        print_json(job)
    elif status == "completed" and is_terminal() and not quiet:
        moved = render.human_bytes(run.get("bytes") or 0)
        echo(f"job {name} completed: {moved} in {render.human_duration(run.get('duration_seconds'))}")
    for warning in run.get("warnings") or []:
        sys.stderr.write(f"bkm: warning: {render.safe(warning)}\n")
    if status == "failed":
        sys.stderr.write(f"bkm: error: job {name} failed: {render.safe(run.get('error') or 'unknown error')}\n")
        sys.stderr.write(f"hint: see its log: bkm logs {name}\n")
    elif status == "paused":
        sys.stderr.write(f"bkm: error: job {name} was paused before it finished\n")


@job.command("pause")
@click.argument("job_refs", metavar="JOB...", nargs=-1, shell_complete=job_names)
@click.option("--all", "all_jobs", is_flag=True, help="Every running or queued job.")
@json_option()
@click.pass_obj
def pause(obj, job_refs, all_jobs, as_json) -> None:
    """Pause running or queued jobs: the transfer stops, partial data is kept.

    Several jobs are paused at once (each pause waits for its transfer to stop); each job's
    result is one line, and the exit code is the worst one.
    """
    from bkm import model, render

    refs = _refs(job_refs, all_jobs, "pause")
    if all_jobs:
        with obj.client() as client:
            refs = [j["id"] for j in client.call("job.list", status=sorted(model.ACTIVE))]
        if not refs:
            echo("no job is running or queued")
            return

    def one(ref: str) -> dict | BkmError:
        try:
            with obj.client() as client:  # a connection each: bkmd answers one connection in order
                return client.call("job.pause", job=ref)
        except BkmError as e:
            return e

    if len(refs) == 1:
        results = [one(refs[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(refs), 16)) as pool:
            results = list(pool.map(one, refs))
    paused = [r for r in results if not isinstance(r, BkmError)]
    for ref, result in zip(refs, results, strict=True):
        if isinstance(result, BkmError):
            _say_error(ref, result)
        elif not as_json:
            echo(f"job {render.safe(result['name'])} paused at {result['progress']['percent']:.1f}%")
    if as_json:
        print_json(paused[0] if len(job_refs) == 1 and paused else paused)
    code = worst([r.exit_code for r in results if isinstance(r, BkmError)])
    if code:
        sys.exit(code)


@job.command("delete")
@click.argument("job_refs", metavar="JOB...", nargs=-1, required=True, shell_complete=job_names)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(obj, job_refs, yes) -> None:
    """Delete jobs and their logs (never one that is running or queued); asks first on a terminal."""
    from bkm import model, render

    codes = []
    with obj.client() as client:
        found = []
        for ref in dict.fromkeys(job_refs):
            try:
                job = client.call("job.get", job=ref)
            except BkmError as e:
                _say_error(ref, e)
                codes.append(e.exit_code)
                continue
            if job["status"] in model.ACTIVE:
                # The daemon's own words for a refused edit, so every command says it one way.
                message = f"job {job['name']!r} is {job['status']}: cannot delete it; pause it first"
                _say_error(ref, BkmError(message, errors.CONFLICT))
                codes.append(errors.CONFLICT)
                continue
            found.append(job)
        names = ", ".join(render.safe(job["name"]) for job in found)
        if found and not yes:
            if not is_terminal(sys.stdin):
                raise BkmError(
                    f"refusing to delete {'job' if len(found) == 1 else 'jobs'} {names} without confirmation",
                    errors.USAGE,
                    "pass --yes to delete without asking",
                )
            if not click.confirm(
                f"Delete {'job' if len(found) == 1 else 'jobs'} {names}?", default=False, prompt_suffix=" ", err=True
            ):
                echo("not deleted")
                return
        for job in found:
            try:
                client.call("job.delete", job=job["id"])
            except BkmError as e:
                _say_error(job["name"], e)
                codes.append(e.exit_code)
                continue
            echo(f"deleted job {render.safe(job['name'])}")
    code = worst(codes)
    if code:
        sys.exit(code)


def progress_cell(job: dict) -> str:
    from bkm import render

    progress = job.get("progress") or {}
    if job["status"] == "completed":
        return "100%"
    if job["status"] == "pending" or not progress.get("total_bytes") and not progress.get("percent"):
        return "-"
    return render.percent_text(progress.get("percent"))


def run_summary(run: dict | None) -> str:
    """One line for a run record: outcome, when, how long, how much, why; never "None"."""
    from bkm import render

    if not run:
        return "never"
    if run.get("finished_at") is None:
        return f"running since {render.local_stamp(run.get('started_at'))}"
    parts = [run.get("outcome") or "ended", f"started {render.local_stamp(run.get('started_at'))}"]
    if run.get("trigger") and run["trigger"] != "manual":
        attempt = f", attempt {run['attempt']}" if (run.get("attempt") or 1) > 1 else ""
        parts.append(f"by {run['trigger']}{attempt}")
    if run.get("duration_seconds") is not None:
        parts.append(f"took {render.human_duration(run['duration_seconds'])}")
    parts.append(f"sent {render.human_bytes(run.get('bytes') or 0)}")
    if run.get("exit_code") is not None:
        parts.append(f"exit code {run['exit_code']}")
    if run.get("error"):
        parts.append(f"error: {run['error']}")
    return ", ".join(parts)


def queue_order(jobs: list[dict]) -> list[dict]:
    """The queued jobs swap places among their own rows so that they read in the order they will
    start (#1 above #2); every other row keeps its place, most recently updated first."""
    slots = [i for i, j in enumerate(jobs) if j["status"] == "queued"]
    waiting = sorted((jobs[i] for i in slots), key=lambda j: j.get("queue_position") or 1 << 30)
    placed = list(jobs)
    for i, job in zip(slots, waiting, strict=True):
        placed[i] = job
    return placed


def status_cell(job: dict) -> str:
    """The status, and what a person must not miss about it (warnings, a retry it waits for)."""
    from bkm import render

    warnings = len((job.get("last_run") or {}).get("warnings") or [])
    if job.get("stale"):
        return f"{job['status']} (stale)"
    if job["status"] == "completed" and warnings:
        return f"completed ({warnings} warning{'s' if warnings > 1 else ''})"
    if job["status"] == "queued" and job.get("retry_at") and render.until(job["retry_at"]) != "due now":
        return f"queued (retry {render.until(job['retry_at'])})"
    if job["status"] == "queued" and job.get("queue_position"):
        return f"queued #{job['queue_position']}"
    return job["status"]


def next_cell(job: dict) -> str:
    """When the schedule runs the job next: "in 3h12m", "paused", or "-" without a schedule."""
    from bkm import render

    if not job.get("schedule"):
        return "-"
    paused = job.get("schedule_paused_until")
    if paused == "forever":
        return "paused"
    text = render.until(job.get("next_run_at"))
    return f"{text} (paused until {render.local_time(paused)})" if paused else text


def schedule_lines(job: dict) -> list[tuple[str, str]]:
    """job show's lines on the schedule and retries."""
    from bkm import render

    pairs = []
    if job.get("schedule"):
        pairs.append(("schedule", job["schedule"]))
        paused = job.get("schedule_paused_until")
        if paused == "forever":
            pairs.append(("next run", "none: the schedule is paused (bkm schedule resume)"))
        elif job.get("next_run_at"):
            when = f"{render.local_time(job['next_run_at'])} ({job['next_run_at']}, {render.until(job['next_run_at'])})"
            pairs.append(
                ("next run", when + (f"; schedule paused until {render.local_time(paused)}" if paused else ""))
            )
    else:
        pairs.append(("schedule", "none (runs when started)"))
    retries = job.get("retries") or 0
    wait = job.get("retry_wait_seconds")
    pairs.append(
        (
            "retries",
            f"{retries} after a transient failure, first after {render.human_duration(wait)}" if retries else "none",
        )
    )
    if job.get("retry_at"):
        pairs.append(("retrying", f"{job.get('waiting') or 'retry'} ({render.until(job['retry_at'])})"))
    return pairs


def telling_lines(job: dict) -> list[tuple[str, str]]:
    """job show's lines on hooks, pings, notifications and staleness (URLs come masked)."""
    from bkm import render

    pairs = []
    for kind, commands in (job.get("hooks") or {}).items():
        pairs += [(f"{kind.replace('_', '-')} hook", command) for command in commands]
    if job.get("healthcheck"):
        pairs.append(("healthcheck", job["healthcheck"]))
    pairs += [("notify", url) for url in job.get("notify") or []]
    if job.get("tool_args"):
        import shlex

        pairs.append(("tool args", shlex.join(job["tool_args"])))
    if job.get("max_age_seconds"):
        since = job.get("last_success_at")
        last = f"last success {render.ago(since)}" if since else "no success yet"
        state = "STALE" if job.get("stale") else "fresh"
        pairs.append(("max age", f"{render.human_duration(job['max_age_seconds'])}: {state}, {last}"))
    return pairs


def version_lines(job: dict) -> list[tuple[str, str]]:
    """The mode, a snapshot job's retention, and the last verify."""
    from bkm import render

    mode = job.get("mode") or "copy"
    meaning = {
        "copy": "new and changed files; nothing deleted at the destination",
        "mirror": "the destination is made exactly the source (guarded)",
        "snapshot": "a dated folder per run, unchanged files hard-linked; DEST/latest is the newest",
    }[mode]
    pairs = [("mode", f"{mode}: {meaning}")]
    if mode == "snapshot":
        keep = job.get("keep") or {}
        rules = ", ".join(f"{rule} {n}" for rule, n in keep.items())
        pairs.append(("keep", rules or "every snapshot (no --keep-* rule)"))
    verify = job.get("last_verify")
    if verify:
        when = f"{render.local_stamp(verify['at'])} ({render.ago(verify['at'])})"
        if verify.get("ok"):
            text = f"the same as the source, {when}"
        elif verify.get("counts"):
            c = verify["counts"]
            extra = f", {c['extra']} extra" if c.get("extra") else ""
            text = f"DIFFERENT, {when}: {c['differ']} differ, {c['missing']} missing{extra} (bkm verify {job['name']})"
        else:
            text = f"could not compare, {when}: {verify.get('error') or 'unknown error'}"
        pairs.append(("last verify", render.safe(text)))
    return pairs


def describe(job: dict) -> str:
    from bkm import render

    progress = job.get("progress") or {}
    run = job.get("last_run")
    speed = progress.get("speed_bytes") or 0
    total = progress.get("total_bytes") or 0
    moved = render.human_bytes(progress.get("bytes_transferred"))
    done = render.up_to_date({**progress, "status": job["status"]})
    progress_text = (
        f"{render.percent_text(progress.get('percent'))}  "
        + (done or (f"{moved} of {render.human_bytes(total)}" if total else f"{moved} done, total not known yet"))
        + (
            f"  {render.human_bytes(speed)}/s  ETA {render.human_duration(progress.get('eta_seconds'))}"
            if speed and job["status"] == "running"
            else ""
        )
    )
    pairs = [
        ("name", job["name"]),
        ("id", job["id"]),
        ("type", job["type"]),
        ("status", job["status"] + (f" ({job['waiting']})" if job.get("waiting") else "")),
        ("source", job["source"]),
        ("dest", job["dest"]),
        ("bwlimit", f"{job['bwlimit']} KiB/s" if job["bwlimit"] else "unlimited"),
        ("excludes", ", ".join(job["excludes"]) if job["excludes"] else "none"),
        *version_lines(job),
        ("progress", progress_text),
        ("created", render.local_stamp(job["created_at"])),
        ("updated", f"{render.local_stamp(job['updated_at'])} ({render.ago(job['updated_at'])})"),
        ("last run", run_summary(run)),
        *schedule_lines(job),
        *telling_lines(job),
    ]
    pairs += [("warning", warning) for warning in (run or {}).get("warnings") or []]
    if job.get("owner"):
        pairs.append(("owner", f"{job['owner']['user']} (uid {job['owner']['uid']})"))
    return render.fields(pairs)
