"""The wire vocabulary both programs share: error codes, limits, method names, framing."""

from __future__ import annotations

import json

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1024 * 1024

# JSON-RPC 2.0 specification codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Application codes (the contract).
NO_SUCH_JOB = -32001
CONFLICT = -32002
VALIDATION = -32003
UNAVAILABLE = -32004

METHODS = (
    "daemon.status",
    "daemon.shutdown",
    "job.create",
    "job.list",
    "job.get",
    "job.update",
    "job.start",
    "job.pause",
    "job.delete",
    "job.dry_run",
    "job.restore",
    "job.restore_dry_run",
    "job.verify",
    "job.snapshots",
    "apply.plan",
    "apply.commit",
    "apply.export",
    "notify.test",
    "metrics.read",
    "schedule.list",
    "schedule.pause",
    "schedule.resume",
    "logs.read",
    "logs.follow",
    "events.subscribe",
    "recovery.list",
    "recovery.recover",
    "recovery.dismiss",
    "settings.get",
    "settings.set",
    "settings.reset",
    "settings.reload",
    "system.check",
)


def encode(message: object) -> bytes:
    """One frame: compact JSON (which never contains a raw newline) plus ``\\n``."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; \u escapes keep the frame valid.
        data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")
    return data + b"\n"


def error(id: int | str | None, code: int, message: str, data: object = None) -> dict:
    """A JSON-RPC error response."""
    body: dict = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "error": body, "id": id}


def request(method: str, params: dict | None = None, id: int | str | None = 1) -> dict:
    message: dict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message
