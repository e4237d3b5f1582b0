"""bkm daemon status|start|restart|stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from bkm.cli.output import echo, json_option, print_json
from bkm.errors import FAILED, UNREACHABLE, BkmError

STOP_DEADLINE = 30.0


@click.group()
def daemon() -> None:
    """Control the bkmd daemon."""


@daemon.command("status")
@json_option()
@click.pass_obj
def status(obj, as_json) -> None:
    """Whether bkmd runs: its pid, version, uptime and socket; exit 3 when it does not."""
    from bkm import render

    with obj.client() as client:
        info = client.call("daemon.status")
    if as_json:
        print_json({k: info[k] for k in ("pid", "version", "started_at", "uptime_seconds", "socket", "system")})
        return
    up = render.human_duration(info["uptime_seconds"])
    echo(f"bkmd {info['version']} runs: pid {info['pid']}, up {up}, socket {render.safe(info['socket'])}")


def _bkmd() -> str:
    """The bkmd installed beside this bkm (the same environment), else the one on PATH."""
    beside = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "bkmd")
    return beside if os.access(beside, os.X_OK) else "bkmd"


def _start(obj) -> None:
    argv = [_bkmd()] + (["--system"] if obj.paths.system else [])
    argv += (["--home", obj.paths.home] if obj.paths.home else []) + ["--detach"]
    deadline = time.monotonic() + 10
    while True:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        except OSError as e:
            raise BkmError(f"cannot run {argv[0]}: {e.strerror or e}", FAILED) from None
        except subprocess.TimeoutExpired:
            raise BkmError("bkmd did not get ready within 60 s", FAILED) from None
        # Just after a stop, the old bkmd may still be letting go of its pid file and lock.
        if done.returncode == 0 or "held" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise BkmError(f"bkmd did not start: {said.removeprefix('bkmd: error: ')}", FAILED)


@daemon.command("start")
@click.pass_obj
def start(obj) -> None:
    """Start bkmd in the background (bkmd --detach, with the same --home and --system); returns
    once it answers. Nothing to do when it runs already."""
    from bkm.client import Client

    obj.local_only("bkm daemon start")
    try:
        with Client(obj.paths, timeout=5) as client:
            info = client.call("daemon.status")
        echo(f"bkmd runs already: pid {info['pid']}")
        return
    except BkmError as e:
        if e.exit_code != UNREACHABLE:
            raise
    _start(obj)
    with obj.client() as client:
        info = client.call("daemon.status")
    echo(f"bkmd {info['version']} started: pid {info['pid']}")


@daemon.command("restart")
@click.pass_obj
def restart(obj) -> None:
    """Stop bkmd (running jobs are paused, their partial data kept) and start it again; the
    jobs it paused are resumed."""
    obj.local_only("bkm daemon restart")
    with obj.client() as client:
        active = [j["id"] for j in client.call("job.list", status=["running"])]
    _stop(obj)
    _start(obj)
    with obj.client() as client:
        info = client.call("daemon.status")
        for job_id in active:  # resume_after_stop may be off: these were running, so they go on
            try:
                if client.call("job.get", job=job_id)["status"] == "paused":
                    client.call("job.start", job=job_id)
            except BkmError as e:
                sys.stderr.write(f"bkm: warning: job {job_id} not resumed: {e.message}\n")
    echo(f"bkmd {info['version']} restarted: pid {info['pid']}" + (f", {len(active)} job(s) resumed" if active else ""))


@daemon.command("stop")
@click.pass_obj
def stop(obj) -> None:
    """Stop bkmd gracefully (running jobs are paused, their partial data kept) and wait until it is gone."""
    _stop(obj, say=True)


def _stop(obj, say: bool = False) -> None:
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
    if say:
        echo(f"bkmd (pid {answer['pid']}) stopped")
