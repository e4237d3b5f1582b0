"""The one user-facing error of the client and the contract's exit codes."""

from __future__ import annotations

from collections.abc import Iterable

from bkm import model

OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
NO_SUCH_JOB = 4
CONFLICT = 5
INTERRUPTED = 130

# What a run's end means for `bkm job start --wait` and `bkm watch JOB...`: the statuses a run
# ends in, and interrupted (its bkmd stopped under it), which like paused can be resumed.
EXIT_FOR_STATUS = {
    model.COMPLETED: OK,
    model.FAILED: FAILED,
    model.PAUSED: CONFLICT,
    model.INTERRUPTED: CONFLICT,
}


def exit_for(statuses: Iterable[str]) -> int:
    """One exit code for where one or more jobs' runs ended: 1 when any failed, else 5 when any
    was paused or interrupted, else 0 (a status that ends no run, e.g. pending, counts as 0)."""
    codes = {EXIT_FOR_STATUS.get(status, OK) for status in statuses}
    return FAILED if FAILED in codes else CONFLICT if CONFLICT in codes else OK


class BkmError(Exception):
    """Printed once by ``main`` as ``bkm: error: MESSAGE`` (plus a hint line) and exited with."""

    def __init__(self, message: str, exit_code: int = FAILED, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
