"""bkm watch: a live view of running, queued and paused jobs, redrawn as bkmd pushes events."""

from __future__ import annotations

import json
import signal
import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import json_option
from bkm.model import ACTIVE, SHOWN
from bkm.render import is_terminal

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


@click.command()
@click.argument("job_refs", metavar="[JOB]...", nargs=-1, shell_complete=job_names)
@json_option("Print the events as JSON, one per line.")
@click.pass_obj
def watch(obj, job_refs, as_json) -> None:
    """Watch jobs live: every running, queued or paused job, or the JOBs named.

    With JOB names it ends once none of them is running or queued, with the exit codes of
    `bkm job start --wait` (0 completed, 1 failed, 5 paused); without, at Ctrl-C.
    """
    from bkm import render

    terminal = is_terminal(sys.stdout) and not as_json
    with obj.client() as client:
        answer = client.call("events.subscribe", jobs=list(job_refs) if job_refs else None)
        jobs = {e["job_id"]: e for e in answer["jobs"]}
        named = set(jobs) if job_refs else None
        view = Screen(render.colours_wanted(sys.stdout)) if terminal else None
        try:
            for event in answer["jobs"]:
                _emit(event, as_json, view)
            if view:
                view.draw(jobs, named)
            while not (named is not None and _all_done(jobs, named)):
                message = client.next_notification(timeout=0.5 if view else None)
                if message is None:  # nothing new: only a resized terminal to redraw for
                    if view and view.resized:
                        view.draw(jobs, named)
                    continue
                if message.get("method") != "job_update":
                    continue
                event = message["params"]
                jobs[event["job_id"]] = event
                if view:
                    view.draw(jobs, named)
                else:
                    _emit(event, as_json, None)
        finally:
            if view:
                view.close()
    if named is not None:
        sys.exit(errors.exit_for(jobs[j]["status"] for j in named))


def _all_done(jobs: dict, named: set) -> bool:
    return all(jobs[j]["status"] not in ACTIVE for j in named)


def _emit(event: dict, as_json: bool, view) -> None:
    if view is not None:
        return
    if as_json:
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    else:
        from bkm import render

        sys.stdout.write(f"{event['time']} {render.progress_line(event)}\n")
    sys.stdout.flush()


def placed(shown: list[dict], places: dict[str, int]) -> list[dict]:
    """The rows in a steady order: a job keeps its row while it is shown (a status change does
    not move it, which reads as another job's line at a glance); new ones come in below, in the
    order of the view (running, queued, paused, then by name). ``places`` is kept between calls."""
    ids = {e["job_id"] for e in shown}
    for job_id in [j for j in places if j not in ids]:
        del places[job_id]
    ordered = sorted(shown, key=lambda e: (SHOWN.index(e["status"]) if e["status"] in SHOWN else len(SHOWN), e["name"]))
    below = max(places.values(), default=-1) + 1
    for event in ordered:
        if event["job_id"] not in places:
            places[event["job_id"]], below = below, below + 1
    return sorted(shown, key=lambda e: places[e["job_id"]])


class Screen:
    """The block of rows at the bottom of the terminal, redrawn in place."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.places: dict[str, int] = {}  # job id: its row, kept while it is shown
        self.rows = 0
        self.resized = False
        self._previous = signal.signal(signal.SIGWINCH, self._on_resize)
        sys.stdout.write(HIDE_CURSOR)

    def _on_resize(self, signum, frame) -> None:
        self.resized = True

    def draw(self, jobs: dict, named: set | None) -> None:
        from bkm import render

        self.resized = False
        width = render.terminal_width(sys.stdout)
        shown = placed(
            [e for e in jobs.values() if (named is not None and e["job_id"] in named) or e["status"] in SHOWN],
            self.places,
        )
        lines = [render.row(e, width, self.colour) for e in shown] or ["no running, queued or paused jobs"]
        out = []
        if self.rows:
            out.append(f"\x1b[{self.rows}F")  # back to the first row of the last drawing
        out.append("\x1b[J")  # clear from there down
        out.append("\n".join(lines) + "\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()
        self.rows = len(lines)

    def close(self) -> None:
        signal.signal(signal.SIGWINCH, self._previous)
        sys.stdout.write(SHOW_CURSOR)
        sys.stdout.flush()
