"""bkm notify test: send a test message to every notification URL that applies."""

from __future__ import annotations

import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo, json_option, print_json


@click.group()
def notify() -> None:
    """Notifications (Apprise URLs of jobs and of the setting notify_urls)."""


@notify.command("test")
@click.argument("job_ref", metavar="JOB", required=False, shell_complete=job_names)
@json_option()
@click.pass_obj
def test(obj, job_ref, as_json) -> None:
    """Send a test message to every URL that applies: JOB's --notify URLs and notify_urls
    (without JOB: notify_urls). One line per URL (masked); exit 1 if any failed."""
    from bkm import render

    # Each URL may take its service's time to answer: no answer time to bound here.
    with obj.client(timeout=None) as client:
        results = client.call("notify.test", job=job_ref)
    if as_json:
        print_json(results)
    else:
        for result in results:
            said = "sent" if result["ok"] else f"FAILED: {render.safe(result['error'] or 'not delivered')}"
            echo(f"{render.safe(result['url'])}: {said}")
    if not all(result["ok"] for result in results):
        sys.exit(errors.FAILED)
