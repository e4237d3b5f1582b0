"""Following a run until it ends (bkm job start --wait): events pushed by bkmd, no polling."""

from __future__ import annotations

import sys

from bkm.errors import EXIT_FOR_STATUS
from bkm.render import is_terminal


def follow(client, job_ids: list[str], show_progress: bool) -> dict[str, dict]:
    """Read job_update events until the run of each of ``job_ids`` has ended; the last event
    of each. One job's progress is a live line on a terminal; several jobs' ends are a line each."""
    live = show_progress and is_terminal(sys.stderr) and len(job_ids) == 1
    waiting = set(job_ids)
    finals: dict[str, dict] = {}
    try:
        while waiting:
            message = client.next_notification()
            params = message.get("params") or {}
            if message.get("method") != "job_update" or params.get("job_id") not in waiting:
                continue
            if live:
                from bkm.render import cut, progress_line, terminal_width

                width = terminal_width(sys.stderr)
                sys.stderr.write("\r\x1b[K" + cut(progress_line(params), width - 1))
                sys.stderr.flush()
            if params.get("status") in EXIT_FOR_STATUS:  # the run ended
                finals[params["job_id"]] = params
                waiting.discard(params["job_id"])
    finally:
        if live:
            sys.stderr.write("\n")
            sys.stderr.flush()
    return {job_id: finals[job_id] for job_id in job_ids}
