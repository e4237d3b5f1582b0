"""bkm logs: the last lines of a job's log or of all of them merged, search, export, follow."""

from __future__ import annotations

import re
import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo
from bkm.errors import BkmError

PAGE = 2000  # lines asked for at a time while searching back for matches


@click.command()
@click.argument("job_ref", metavar="[JOB]", required=False, shell_complete=job_names)
@click.option(
    "-n",
    "--lines",
    "count",
    default=500,
    show_default=True,
    metavar="LINES",
    type=click.IntRange(1, 100_000),
    help="How many lines to show.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as bkmd writes them, until Ctrl-C.")
@click.option(
    "--grep",
    "pattern",
    metavar="PATTERN",
    help="Only lines matching this regular expression (case-insensitive); matches highlighted.",
)
@click.option(
    "--export",
    "export_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the selected lines to FILE as plain text instead of printing them.",
)
@click.pass_obj
def logs(obj, job_ref, count, follow, pattern, export_path) -> None:
    """Show the last lines of JOB's log, or of all jobs' logs merged in time order.

    Merged lines are tagged with their job's name. Nothing a tool printed reaches the terminal
    raw: control characters and escape sequences are shown as visible escapes.
    """
    from bkm import render

    matcher = None
    if pattern is not None:
        try:
            matcher = re.compile(pattern, re.IGNORECASE)
        except re.error as e:
            raise BkmError(
                f"--grep: not a valid regular expression: {e}",
                errors.USAGE,
                "quote it for the shell, and escape special characters with \\",
            ) from None
    colour = render.colours_wanted(sys.stdout) and export_path is None
    with obj.client() as client:
        if follow:
            # Follow first, then read: nothing written in between is lost (repeats are skipped).
            client.call("logs.follow", job=job_ref)
        selected = _last_lines(client, job_ref, count, matcher)
        merged = job_ref is None
        if export_path is not None:
            _export(export_path, selected, merged)
            if not follow:
                return
        else:
            for entry in selected:
                echo(_format(entry, merged, matcher, colour))
            if not selected:
                # Said on stderr: a script reading the log gets no line that is not one.
                what = "no line matches" if matcher else "nothing logged yet"
                whose = f"job {render.safe(job_ref)}" if job_ref else "any job"
                sys.stderr.write(f"bkm: note: {what} for {whose}" + ("; following" if follow else "") + "\n")
        if follow:
            recent = {(e["job_id"], e["line"]) for e in selected}
            while True:
                message = client.next_notification()
                entry = message.get("params") or {}
                if message.get("method") != "log_line" or (entry.get("job_id"), entry.get("line")) in recent:
                    continue
                if matcher is None or matcher.search(entry["line"]):
                    echo(_format(entry, merged, matcher, colour))
                    sys.stdout.flush()


def _last_lines(client, job_ref, count: int, matcher) -> list[dict]:
    """The newest ``count`` lines (that match), paging back through the log as needed. The
    search runs here, not in bkmd: a pathological pattern costs only this process."""
    found: list[dict] = []
    cursor = None
    while len(found) < count:
        page = client.call("logs.read", job=job_ref, lines=PAGE if matcher else count, before=cursor)
        lines = page["lines"]
        if matcher is not None:
            lines = [e for e in lines if matcher.search(e["line"])]
        found = lines[-(count - len(found)) :] + found if lines else found
        cursor = page["before"]
        if cursor is None:
            break
    return found[-count:]


def _format(entry: dict, merged: bool, matcher, colour: bool) -> str:
    from bkm import render

    text = render.safe(entry["line"])
    if matcher is not None and colour:
        text = matcher.sub(lambda m: render.paint(m.group(0), "1;31", True) if m.group(0) else "", text)
    if merged:
        return f"[{render.safe(entry.get('name') or entry['job_id'][:8])}] {text}"
    return text


def _export(path: str, entries: list[dict], merged: bool) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(_format(entry, merged, None, False) + "\n")
    except OSError as e:
        raise BkmError(f"cannot write {path}: {e.strerror}", errors.FAILED) from None
    sys.stderr.write(f"exported {len(entries)} line{'s' if len(entries) != 1 else ''} to {path}\n")
