"""bkm status: the dashboard."""

from __future__ import annotations

import shutil
import sys

import click

from bkm.cli.output import echo, json_option, print_json


@click.command()
@json_option()
@click.pass_obj
def status(obj, as_json) -> None:
    """The dashboard: bkmd's pid, version, uptime and socket; jobs by status; active jobs with
    their progress; recent activity; and a warning naming interrupted jobs."""
    from bkm import render

    with obj.client() as client:
        info = client.call("daemon.status")
    if as_json:
        print_json(info)
        return
    colour = render.colours_wanted(sys.stdout)
    width = shutil.get_terminal_size((100, 24)).columns
    counts = ", ".join(f"{n} {render.status_text(name, colour)}" for name, n in info["counts"].items() if n)
    echo(f"bkmd {info['version']}, pid {info['pid']}, up {render.human_duration(info['uptime_seconds'])}")
    echo(f"socket: {render.safe(info['socket'])}")
    echo(f"jobs:   {info['jobs']} ({counts or 'none yet'})")
    if info.get("stale"):
        names = ", ".join(render.safe(n) for n in info["stale"])
        echo(render.paint(f"stale (no success within their --max-age): {names}", "33;1", colour))
    if info.get("notifications_failed"):
        echo(f"notifications and pings not sent since bkmd started: {info['notifications_failed']} (see the job logs)")
    if info.get("interrupted"):
        names = ", ".join(render.safe(n) for n in info["interrupted"])
        echo("")
        echo(render.paint(f"warning: interrupted when bkmd stopped: {names}", "31;1", colour))
        echo("  resume them with: bkm recover && bkm job start NAME   (or give up: bkm recover --dismiss)")
    echo("")
    echo("active:")
    for event in info.get("active") or []:
        echo("  " + render.row(event, width - 2, colour))
    if not info.get("active"):
        echo("  nothing running, queued or paused")
    echo("")
    echo("next runs:")
    for planned in info.get("next_runs") or []:
        when = f"{render.local_time(planned['next_run_at'])} ({render.until(planned['next_run_at'])})"
        echo(render.cut(f"  {when}  {render.safe(planned['name'])}  {render.safe(planned['schedule'])}", width - 1))
    if not info.get("next_runs"):
        echo("  none planned (a schedule: bkm job edit JOB --schedule SPEC; paused ones: bkm schedule list)")
    echo("")
    echo("recent activity:")
    rows = []
    for entry in info.get("recent") or []:
        what = "started" if entry["status"] == "running" else entry["status"]
        detail = entry.get("detail") or ""
        if entry.get("bytes") is not None and entry["status"] == "completed":
            # The figures in human units; the warnings part of the detail as it was.
            took = render.human_duration(entry.get("duration_seconds"))
            warned = detail.split("; ", 1)[1:]
            sent = f"{render.human_bytes(entry['bytes'])} in {took}" if entry["bytes"] else f"up to date, in {took}"
            detail = "; ".join([sent, *warned])
        rows.append((render.local_stamp(entry["time"]), render.safe(entry["name"]), what, render.safe(detail)))
    if rows:
        table = render.table(("WHEN", "JOB", "WHAT", "DETAIL"), rows, width=max(width - 2, 40), shrink=(1, 3))
        for line, (_, _, what, _) in zip(table.splitlines()[1:], rows, strict=True):
            shown = render.paint(what, render.STATUS_COLOURS.get("running" if what == "started" else what), colour)
            echo("  " + line.replace(f"  {what}", f"  {shown}", 1))
    else:
        echo("  none yet")
