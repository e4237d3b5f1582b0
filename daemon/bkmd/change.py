"""Where a change begins and ends: one request (one member of a batch) is one change.

A request's methods change memory and record here how to undo each step, and what may
happen only once the change is on disk (spawning a transfer, telling subscribers, starting
queued jobs). ``Daemon.commit`` saves the change; if the disk refuses, it undoes this change
and nothing else. Changes a run makes (its end, progress) are not requests: they are
decided facts, saved in the background and never undone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("bkmd.change")


class Change:
    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._after_save: list[Callable[[], None]] = []
        self.jobs_changed = False
        self.settings_changed = False

    def on_undo(self, step: Callable[[], None]) -> None:
        self._undo.append(step)

    def after_save(self, action: Callable[[], None]) -> None:
        self._after_save.append(action)

    def undo(self) -> None:
        """Undo every step, newest first; nothing recorded to happen after the save happens."""
        self._after_save.clear()
        while self._undo:
            self._undo.pop()()

    def saved(self) -> None:
        self._undo.clear()
        actions, self._after_save = self._after_save, []
        for action in actions:
            action()


class Later:
    """A request's answer that must wait until its change is saved (a pause waits for the
    transfer to stop, after the signal was sent inside the change)."""

    def __init__(self, answer: Callable[[], Awaitable[Any]]) -> None:
        self.answer = answer
