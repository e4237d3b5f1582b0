"""bkm doctor: is everything bkm needs in place? Works with bkmd down."""

from __future__ import annotations

import sys

import click

from bkm import errors
from bkm.cli.output import echo, json_option, print_json


@click.command()
@json_option()
@click.pass_obj
def doctor(obj, as_json) -> None:
    """Check rsync and rclone (with versions), bkmd (reachable, its version), the folders,
    the socket's permissions, free disk at the store and, where systemd runs, the units.

    Exit 1 when any check fails.
    """
    from bkm import __version__, checks, protocol
    from bkm.client import Client

    obj.local_only("bkm doctor")
    paths = obj.paths
    results = []
    try:
        with Client(paths, timeout=10) as client:
            info = client.call("daemon.status")
            same = info.get("protocol") == protocol.PROTOCOL_VERSION
            results.append(
                checks.check(
                    "bkmd",
                    checks.OK if same else checks.FAIL,
                    f"pid {info['pid']}, version {info['version']}, protocol {info.get('protocol')}"
                    + ("" if same else f" (this bkm {__version__} speaks protocol {protocol.PROTOCOL_VERSION})"),
                )
            )
            results += client.call("system.check")
    except errors.BkmError as e:
        results.append(checks.check("bkmd", checks.FAIL, f"{e.message}; {e.hint or ''}".rstrip("; ")))
        # The daemon's view is not to be had: check from here, with the default settings.
        from bkm.settings import DEFAULTS

        results += checks.machine_checks(paths, DEFAULTS["rsync_path"], DEFAULTS["rclone_path"])
    results.append(checks.socket_permissions(paths.socket, paths.system))
    units = checks.systemd_units(paths.system)
    if units is not None:
        results.append(units)
    if as_json:
        print_json(results)
    else:
        from bkm import render

        colour = render.colours_wanted(sys.stdout)
        paint = {checks.OK: "32", checks.WARN: "33", checks.FAIL: "31;1"}
        for result in results:
            label = render.paint(f"{result['status']:<4}", paint[result["status"]], colour)
            echo(f"{label}  {result['check']:<9} {render.safe(result['detail'])}")
    if any(r["status"] == checks.FAIL for r in results):
        sys.exit(errors.FAILED)
