"""bkm daemon stop."""

from __future__ import annotations

import time

import click

from bkm.cli.output import echo
from bkm.errors import FAILED, BkmError

STOP_DEADLINE = 30.0


@click.group()
def daemon() -> None:
    """Control the bkmd daemon."""


@daemon.command("stop")
@click.pass_obj
def stop(obj) -> None:
    """Stop bkmd gracefully and wait until it is gone."""
    with obj.client() as client:
        answer = client.call("daemon.shutdown")
        # bkmd hangs up on every client as it exits: wait for that, with a deadline.
        deadline = time.monotonic() + STOP_DEADLINE
        try:
            while time.monotonic() < deadline:
                client.receive(timeout=max(deadline - time.monotonic(), 0.01))
        except BkmError:
            pass  # the connection closed: bkmd is gone
        else:
            raise BkmError(f"bkmd (pid {answer['pid']}) did not stop within {STOP_DEADLINE:.0f} s", FAILED)
    echo(f"bkmd (pid {answer['pid']}) stopped")
