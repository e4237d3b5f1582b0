"""JSON-RPC 2.0 dispatch, exactly as the specification says (batches, notifications, codes).

Hand-written because the maintained libraries get the batch rules wrong. Methods come from an
explicit registry, never from an attribute looked up by a name off the wire; params are bound
by signature, so a wrong shape is -32602 before any method code runs.

Each request (each member of a batch) that changes state is its own ``Change``: committed, or
undone alone, before the next member runs.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bkm import protocol
from bkmd.change import Change, Later
from bkmd.errors import MethodError

log = logging.getLogger("bkmd.rpc")


# What the dispatcher passes to a method, by parameter name; never bindable from the wire.
INJECTED = ("connection", "caller", "change")


@dataclass
class Method:
    fn: Callable
    signature: inspect.Signature  # the parameters a request may give
    injected: tuple[str, ...]  # of INJECTED, those fn takes

    @property
    def mutates(self) -> bool:
        return "change" in self.injected


class Registry:
    def __init__(self) -> None:
        self.methods: dict[str, Method] = {}

    def add(self, name: str, fn: Callable) -> None:
        """fn's leading parameters named in INJECTED are passed by the dispatcher: ``change``
        (the request's Change: fn changes state, and must not await, so that a change has no
        gap another request could fall into; it returns a Later to wait after the commit),
        ``caller`` (who asks) and ``connection``."""
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        count = next((i for i, p in enumerate(params) if p.name not in INJECTED), len(params))
        injected = tuple(p.name for p in params[:count])
        if any(p.name in INJECTED for p in params[count:]):
            raise TypeError(f"{name}: {', '.join(INJECTED)} must come first")
        if "change" in injected and inspect.iscoroutinefunction(fn):
            raise TypeError(f"{name}: a method that changes state must not be async; return a Later")
        signature = signature.replace(parameters=params[count:])
        self.methods[name] = Method(fn, signature, injected)


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


class _Unsaved:
    """A request whose change is made but not yet saved: its answer waits for the commit."""

    def __init__(self, id: Any, notification: bool, change: Change, result: Any) -> None:
        self.id, self.notification, self.change, self.result = id, notification, change, result


class Dispatcher:
    """Turns one received line into the bytes to send back (None: send nothing).

    Every member of a batch that changes state has its own Change. Consecutive ones share one
    write of the store (group commit: 1,500 creates in one batch would otherwise take 1,500
    writes of a growing file); if that write fails, each of those changes is undone and each
    answers "could not save". Nothing else runs between them, nothing that was not saved
    is answered as done, and a member that must wait (a pause) or only reads sees the
    earlier ones saved first.
    """

    def __init__(
        self, registry: Registry, commit: Callable[[list[Change]], None], caller_of: Callable[[Any], Any]
    ) -> None:
        self.registry = registry
        # Saves changes, or undoes all of them and raises MethodError.
        self.commit = commit
        # Who is on a connection (bkmd.access.Caller).
        self.caller_of = caller_of

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
        answers: list[dict | _Unsaved | None] = []
        for member in members:
            answer = await self._call(member, connection, answers)
            answers.append(answer)
        self._commit(answers)
        responses = [r for r in answers if r is not None]
        if not responses:
            return None
        return protocol.encode(responses if isinstance(message, list) else responses[0])

    def _commit(self, answers: list) -> None:
        """Save the changes of the answers still unsaved and replace each with its response."""
        waiting = [(i, a) for i, a in enumerate(answers) if isinstance(a, _Unsaved)]
        if not waiting:
            return
        try:
            self.commit([a.change for _, a in waiting])
        except MethodError as e:
            for i, a in waiting:
                answers[i] = None if a.notification else protocol.error(a.id, e.code, e.message, e.data)
            return
        for i, a in waiting:
            answers[i] = None if a.notification else {"jsonrpc": "2.0", "result": a.result, "id": a.id}

    async def _call(self, request: Any, connection: Any, earlier: list) -> dict | _Unsaved | None:
        """The response to one request (None for a notification), or its unsaved change."""
        if not isinstance(request, dict):
            return protocol.error(None, protocol.INVALID_REQUEST, "Invalid Request: not an object")
        id = request.get("id")
        if not _valid_id(id):
            return protocol.error(None, protocol.INVALID_REQUEST, "Invalid Request: bad id")
        method_name = request.get("method")
        params = request.get("params", {})
        if request.get("jsonrpc") != "2.0" or not isinstance(method_name, str) or not isinstance(params, (dict, list)):
            return protocol.error(id, protocol.INVALID_REQUEST, "Invalid Request")
        notification = "id" not in request

        def reply(response: dict) -> dict | None:
            return None if notification else response

        method = self.registry.methods.get(method_name)
        if method is None:
            return reply(protocol.error(id, protocol.METHOD_NOT_FOUND, f"Method not found: {method_name}"))
        try:
            bind = method.signature.bind
            bound = bind(**params) if isinstance(params, dict) else bind(*params)
        except TypeError as e:
            return reply(protocol.error(id, protocol.INVALID_PARAMS, f"Invalid params: {e}"))
        if not method.mutates:
            self._commit(earlier)  # a reader sees only what is saved
        change = Change() if method.mutates else None
        given = {"connection": connection, "caller": self.caller_of(connection), "change": change}
        injected = [given[name] for name in method.injected]
        try:
            try:
                result = method.fn(*injected, *bound.args, **bound.kwargs)
            except BaseException:
                if change is not None:
                    change.undo()  # a request that fails changes nothing
                raise
            if isinstance(result, Later):
                # Its signal is sent: save it (after the members before it), then wait.
                self._commit(earlier)
                self.commit([change] if change is not None else [])
                result = await result.answer()
            elif change is not None:
                return _Unsaved(id, notification, change, result)
            elif inspect.isawaitable(result):
                result = await result
        except MethodError as e:
            return reply(protocol.error(id, e.code, e.message, e.data))
        except Exception:
            log.exception("internal error in %s", method_name)
            return reply(protocol.error(id, protocol.INTERNAL_ERROR, "Internal error (see the bkmd log)"))
        return reply({"jsonrpc": "2.0", "result": result, "id": id})
