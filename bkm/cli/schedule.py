"""bkm schedule ...: the jobs bkmd runs on its own, and pausing their schedules."""

from __future__ import annotations

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo, json_option, print_json
from bkm.errors import BkmError


@click.group()
def schedule() -> None:
    """List scheduled jobs; pause and resume their schedules.

    A job gets a schedule with `bkm job create/edit --schedule SPEC`. A paused schedule starts
    no runs (a person can still start the job); `--for` ends the pause by itself.
    """


@schedule.command("list")
@json_option()
@click.pass_obj
def list_(obj, as_json) -> None:
    """Scheduled jobs, next due first: schedule, next run (local time and UTC), last outcome."""
    with obj.client() as client:
        jobs = client.call("schedule.list")
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        echo("no scheduled jobs; give a job a schedule with:")
        echo("  bkm job edit JOB --schedule '30 2 * * *'")
        return
    from bkm import render
    from bkm.cli.job import next_cell

    rows = [
        (
            render.cut(render.safe(j["name"]), 24),
            render.safe(j["schedule"]),
            next_cell(j),
            render.local_time(j.get("next_run_at")) if j.get("schedule_paused_until") != "forever" else "-",
            j.get("next_run_at") or "-",
            _last(j),
        )
        for j in jobs
    ]
    echo(render.table(("NAME", "SCHEDULE", "NEXT", "LOCAL TIME", "UTC", "LAST OUTCOME"), rows))


def _last(job: dict) -> str:
    run = job.get("last_run") or {}
    if job["status"] in ("running", "queued"):
        return job["status"]
    if not run:
        return "never ran"
    trigger = run.get("trigger")
    by = f" ({trigger})" if trigger and trigger != "manual" else ""
    return f"{run.get('outcome') or 'ended'}{by}"


def _targets(job_ref: str | None, all_jobs: bool) -> dict:
    if bool(job_ref) == all_jobs:
        raise BkmError("give one JOB or --all", errors.USAGE, "see: bkm schedule --help")
    return {"all": True} if all_jobs else {"job": job_ref}


@schedule.command("pause")
@click.argument("job_ref", metavar="JOB", required=False, shell_complete=job_names)
@click.option("--all", "all_jobs", is_flag=True, help="Every scheduled job.")
@click.option("--for", "duration", metavar="DURATION", help="End the pause by itself after this long (2h, 3d).")
@json_option()
@click.pass_obj
def pause(obj, job_ref, all_jobs, duration, as_json) -> None:
    """Start no scheduled runs of JOB (or of every job, --all) until resumed.

    A run in progress goes on; `bkm job pause` stops it.
    """
    with obj.client() as client:
        paused = client.call("schedule.pause", **_targets(job_ref, all_jobs), duration=duration)
    if as_json:
        print_json(paused)
        return
    from bkm import render

    if not paused:
        echo("no scheduled jobs")
    for j in paused:
        until = j["schedule_paused_until"]
        when = "until resumed" if until == "forever" else f"until {render.local_time(until)} ({until})"
        echo(f"schedule of job {render.safe(j['name'])} paused {when}")


@schedule.command("resume")
@click.argument("job_ref", metavar="JOB", required=False, shell_complete=job_names)
@click.option("--all", "all_jobs", is_flag=True, help="Every scheduled job.")
@json_option()
@click.pass_obj
def resume(obj, job_ref, all_jobs, as_json) -> None:
    """Run JOB (or every job, --all) on its schedule again; missed runs are not made up."""
    targets = _targets(job_ref, all_jobs)
    with obj.client() as client:
        paused = None if as_json else {j["id"] for j in client.call("schedule.list") if j["schedule_paused_until"]}
        resumed = client.call("schedule.resume", **targets)
    if as_json:
        print_json(resumed)
        return
    from bkm import render

    if not resumed:
        echo("no scheduled jobs")
    for j in resumed:
        next_run = j.get("next_run_at")
        what = "resumed" if j["id"] in paused else "was not paused"
        echo(f"schedule of job {render.safe(j['name'])} {what}; next run {render.local_time(next_run)} ({next_run})")
