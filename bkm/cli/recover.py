"""bkm recover: jobs left interrupted by a bkmd that died become paused (or failed)."""

from __future__ import annotations

import click

from bkm.cli.output import echo, json_option, print_json


@click.command()
@click.option("--dismiss", is_flag=True, help="Mark them failed (error: interrupted) instead of paused.")
@json_option()
@click.pass_obj
def recover(obj, dismiss, as_json) -> None:
    """Make jobs interrupted by a bkmd crash paused, ready to resume with `bkm job start`.

    With --dismiss they become failed, with the error "interrupted".
    """
    from bkm import render

    with obj.client() as client:
        changed = client.call("recovery.dismiss" if dismiss else "recovery.recover")
    if as_json:
        print_json(changed)
        return
    if not changed:
        echo("no interrupted jobs")
        return
    verb = "dismissed (failed)" if dismiss else "recovered (paused)"
    for job in changed:
        echo(f"{verb}: {render.safe(job['name'])}")
    if not dismiss:
        echo("resume with: bkm job start NAME")
