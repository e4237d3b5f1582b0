"""Following a run until it ends (bkm job start --wait): events pushed by bkmd, no polling."""

from __future__ import annotations

import sys

from bkm.errors import EXIT_FOR_STATUS
from bkm.render import is_terminal


def follow(client, job_id: str, show_progress: bool) -> dict:
    """Read job_update events for ``job_id`` until its run ends; return the last one."""
    live = show_progress and is_terminal(sys.stderr)
    try:
        while True:
            message = client.next_notification()
            params = message.get("params") or {}
            if message.get("method") != "job_update" or params.get("job_id") != job_id:
                continue
            if live:
                from bkm.render import cut, progress_line, terminal_width

                width = terminal_width(sys.stderr)
                sys.stderr.write("\r\x1b[K" + cut(progress_line(params), width - 1))
                sys.stderr.flush()
            if params.get("status") in EXIT_FOR_STATUS:  # the run ended
                return params
    finally:
        if live:
            sys.stderr.write("\n")
            sys.stderr.flush()
