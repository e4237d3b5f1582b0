"""bkm status: the daemon and the jobs at a glance."""

from __future__ import annotations

import click

from bkm.cli.output import echo, print_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def status(obj, as_json) -> None:
    """Show bkmd's pid, version and uptime, and how many jobs are in each status."""
    from bkm import render

    with obj.client() as client:
        info = client.call("daemon.status")
    if as_json:
        print_json(info)
        return
    counts = ", ".join(f"{n} {name}" for name, n in info["counts"].items() if n) or "none yet"
    echo(f"bkmd {info['version']}, pid {info['pid']}, up {render.human_duration(info['uptime_seconds'])}")
    echo(f"socket: {render.safe(info['socket'])}")
    echo(f"store:  {render.safe(info['store'])}")
    echo(f"jobs:   {info['jobs']} ({counts})")
