"""Fan-out of notifications (job_update, log_line) to the connections that subscribed."""

from __future__ import annotations

import logging
from typing import Any

from bkm import protocol

log = logging.getLogger("bkmd.events")
# A subscriber that lets this much pile up unread is dropped rather than slowing anyone down.
MAX_BACKLOG = 4 * 1024 * 1024


class Subscriber:
    def __init__(self, connection: Any, method: str, keys: set[str] | None, allows=None) -> None:
        self.connection = connection
        self.method = method
        self.keys = keys  # job ids, or None for every job
        self.allows = allows  # None, or whether the subscriber may see a job (by id)

    def wants(self, method: str, key: str) -> bool:
        if method != self.method or (self.keys is not None and key not in self.keys):
            return False
        return self.allows is None or self.allows(key)


class Events:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def subscribe(self, connection: Any, method: str, keys: set[str] | None, allows=None) -> None:
        self.subscribers.append(Subscriber(connection, method, keys, allows))
        connection.on_close(lambda: self.unsubscribe(connection))

    def unsubscribe(self, connection: Any) -> None:
        self.subscribers = [s for s in self.subscribers if s.connection is not connection]

    def publish(self, method: str, key: str, params: dict) -> None:
        data = None
        for subscriber in list(self.subscribers):
            if not subscriber.wants(method, key):
                continue
            if data is None:
                data = protocol.encode({"jsonrpc": "2.0", "method": method, "params": params})
            if not subscriber.connection.notify(data, MAX_BACKLOG):
                log.warning("dropped a subscriber that stopped reading")
                self.unsubscribe(subscriber.connection)
