"""Errors a method raises on purpose; the dispatcher turns each into its JSON-RPC code."""

from __future__ import annotations

from bkm import protocol


class MethodError(Exception):
    code = protocol.INTERNAL_ERROR

    def __init__(self, message: str, data: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class InvalidParams(MethodError):
    """The request is malformed: a parameter of the wrong shape (JSON-RPC -32602)."""

    code = protocol.INVALID_PARAMS


class JobNotFound(MethodError):
    code = protocol.NO_SUCH_JOB

    def __init__(self, job: object) -> None:
        super().__init__(f"no such job: {job}", {"job": job})


class Conflict(MethodError):
    code = protocol.CONFLICT


class ValidationFailed(MethodError):
    """Well-formed values that break a rule; ``fields`` maps each offending field to what is
    wrong with it (-32003, exit 2)."""

    code = protocol.VALIDATION

    def __init__(self, fields: dict[str, str]) -> None:
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        super().__init__(f"invalid: {summary}", fields)
        self.fields = fields


class Unavailable(MethodError):
    """bkmd cannot do it now (the change could not be saved, too busy)."""

    code = protocol.UNAVAILABLE
