"""JSON-RPC 2.0 dispatch, exactly as the specification says (batches, notifications, codes).

Hand-written because the maintained libraries get the batch rules wrong. Methods come from an
explicit registry, never from an attribute looked up by a name off the wire; params are bound
by signature, so a wrong shape is -32602 before any method code runs.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bkm import protocol
from bkmd.errors import MethodError

log = logging.getLogger("bkmd.rpc")


@dataclass
class Method:
    fn: Callable
    signature: inspect.Signature
    mutates: bool
    wants_connection: bool


class Registry:
    def __init__(self) -> None:
        self.methods: dict[str, Method] = {}

    def add(self, name: str, fn: Callable, *, mutates: bool = False, wants_connection: bool = False) -> None:
        signature = inspect.signature(fn)
        if wants_connection:
            # The connection is passed by the dispatcher, never bindable from the wire.
            params = list(signature.parameters.values())[1:]
            signature = signature.replace(parameters=params)
        self.methods[name] = Method(fn, signature, mutates, wants_connection)


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


class Dispatcher:
    """Turns one received line into the bytes to send back (None: send nothing)."""

    def __init__(self, registry: Registry, commit: Callable[[], None]) -> None:
        self.registry = registry
        # Called once per line after mutating calls; raises MethodError when nothing was saved.
        self.commit = commit

    async def handle(self, line: bytes, connection: Any = None) -> bytes | None:
        try:
            message = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            return protocol.encode(protocol.error(None, protocol.PARSE_ERROR, "Parse error: not valid UTF-8"))
        except RecursionError:
            return protocol.encode(protocol.error(None, protocol.PARSE_ERROR, "Parse error: nested too deeply"))
        except ValueError as e:
            return protocol.encode(protocol.error(None, protocol.PARSE_ERROR, f"Parse error: {e}"))
        if isinstance(message, list):
            if not message:
                return protocol.encode(protocol.error(None, protocol.INVALID_REQUEST, "Invalid Request: empty batch"))
            members = message
        else:
            members = [message]
        outcomes = [await self._call(member, connection) for member in members]
        responses = self._commit(outcomes)
        if not responses:
            return None
        return protocol.encode(responses if isinstance(message, list) else responses[0])

    def _commit(self, outcomes: list[tuple[dict | None, bool]]) -> list[dict]:
        """Save once for the whole line; if saving fails, no mutating call reports success."""
        responses = [response for response, _ in outcomes]
        if any(mutated for _, mutated in outcomes):
            try:
                self.commit()
            except MethodError as e:
                for i, (response, mutated) in enumerate(outcomes):
                    if mutated and response is not None:
                        responses[i] = protocol.error(response["id"], e.code, e.message, e.data)
        return [r for r in responses if r is not None]

    async def _call(self, request: Any, connection: Any) -> tuple[dict | None, bool]:
        """(response or None for a notification, whether it changed state)."""
        if not isinstance(request, dict):
            return protocol.error(None, protocol.INVALID_REQUEST, "Invalid Request: not an object"), False
        id = request.get("id")
        if not _valid_id(id):
            return protocol.error(None, protocol.INVALID_REQUEST, "Invalid Request: bad id"), False
        method_name = request.get("method")
        params = request.get("params", {})
        if request.get("jsonrpc") != "2.0" or not isinstance(method_name, str) or not isinstance(params, (dict, list)):
            return protocol.error(id, protocol.INVALID_REQUEST, "Invalid Request"), False
        notification = "id" not in request

        def reply(response: dict) -> dict | None:
            return None if notification else response

        method = self.registry.methods.get(method_name)
        if method is None:
            return reply(protocol.error(id, protocol.METHOD_NOT_FOUND, f"Method not found: {method_name}")), False
        try:
            args = [connection] if method.wants_connection else []
            bind = method.signature.bind
            bound = bind(**params) if isinstance(params, dict) else bind(*params)
        except TypeError as e:
            return reply(protocol.error(id, protocol.INVALID_PARAMS, f"Invalid params: {e}")), False
        try:
            result = method.fn(*args, *bound.args, **bound.kwargs)
            if inspect.isawaitable(result):
                result = await result
        except MethodError as e:
            return reply(protocol.error(id, e.code, e.message, e.data)), False
        except Exception:
            log.exception("internal error in %s", method_name)
            return reply(protocol.error(id, protocol.INTERNAL_ERROR, "Internal error (see the bkmd log)")), False
        return reply({"jsonrpc": "2.0", "result": result, "id": id}), method.mutates
