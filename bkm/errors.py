"""The one user-facing error of the client and the contract's exit codes."""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
NO_SUCH_JOB = 4
CONFLICT = 5
INTERRUPTED = 130


class BkmError(Exception):
    """Printed once by ``main`` as ``bkm: error: MESSAGE`` (plus a hint line) and exited with."""

    def __init__(self, message: str, exit_code: int = FAILED, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
