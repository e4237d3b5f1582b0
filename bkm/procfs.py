"""Reading /proc/PID/stat (Linux), for the client and bkmd alike."""

from __future__ import annotations


def stat_fields(pid: int | str) -> list[bytes] | None:
    """/proc/PID/stat's fields from the third (state) on, or None if there is no such process:
    the command name (field 2) may contain spaces and parentheses, so they are split after the
    last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    end = data.rfind(b")")
    return None if end < 0 else data[end + 2 :].split()
