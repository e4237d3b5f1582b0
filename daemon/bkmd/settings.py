"""The daemon's live settings: defaults plus what settings.yaml sets, changed without restart.

A change made to settings.yaml by hand is never overwritten silently: ``bkm settings set``
first reloads a file that changed on disk, and refuses when it no longer parses; SIGHUP and
``bkm settings reload`` read it on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bkm import settings as schema
from bkmd import store
from bkmd.change import Change
from bkmd.errors import Unavailable, ValidationFailed

log = logging.getLogger("bkmd.settings")


class Settings:
    def __init__(self, path: str, loaded: store.SettingsFile | dict[str, Any]) -> None:
        self.path = path
        if isinstance(loaded, dict):
            loaded = store.SettingsFile(loaded, {}, store.settings_stamp(path))
        self.overrides = dict(loaded.values)
        self.unknown = dict(loaded.unknown)
        self.stamp = loaded.stamp
        self.on_change: list[Callable[[], None]] = []  # told once a change is saved or reloaded
        for warning in loaded.warnings:
            log.warning("%s: %s", path, warning)

    def __getitem__(self, key: str) -> Any:
        return self.overrides.get(key, schema.DEFAULTS[key])

    def all(self) -> dict[str, Any]:
        return {key: self[key] for key in schema.SETTINGS}

    def reload(self) -> dict:
        """Read settings.yaml again; raises store.StoreError (keeping what is in use) when it
        does not parse. Says which keys changed and what was warned about."""
        loaded = store.read_settings(self.path)
        before = self.all()
        self.overrides, self.unknown, self.stamp = dict(loaded.values), dict(loaded.unknown), loaded.stamp
        changed = [key for key, value in self.all().items() if before[key] != value]
        for warning in loaded.warnings:
            log.warning("%s: %s", self.path, warning)
        for callback in self.on_change:
            callback()
        return {"changed": changed, "warnings": loaded.warnings}

    def _changing(self, change: Change) -> None:
        if store.settings_stamp(self.path) != self.stamp:
            # Changed by hand since bkmd read it: take that in first, never write over it.
            try:
                found = self.reload()
            except store.StoreError as e:
                raise Unavailable(
                    f"{e}: settings.yaml was changed by hand and does not parse; nothing was changed."
                    " Fix the file, then run: bkm settings reload",
                    {"settings": self.path},
                ) from None
            log.info(
                "settings.yaml was changed by hand: reloaded it first (%s)", ", ".join(found["changed"]) or "no change"
            )
        before = (dict(self.overrides), dict(self.unknown))

        def undo() -> None:
            self.overrides, self.unknown = dict(before[0]), dict(before[1])

        change.settings_changed = True
        change.on_undo(undo)
        for callback in self.on_change:
            change.after_save(callback)

    def set(self, key: Any, value: Any, change: Change) -> Any:
        try:
            parsed = schema.parse(key, value)
        except schema.UnknownSetting:
            raise ValidationFailed({"key": schema.unknown_message(key)}) from None
        except ValueError as e:
            raise ValidationFailed({key: str(e)}) from None
        self._changing(change)
        if parsed == schema.DEFAULTS[key]:
            self.overrides.pop(key, None)
        else:
            self.overrides[key] = parsed
        return parsed

    def reset(self, key: Any, change: Change) -> list[str]:
        if key is not None and (not isinstance(key, str) or key not in schema.SETTINGS):
            raise ValidationFailed({"key": schema.unknown_message(key)})
        keys = list(schema.SETTINGS) if key is None else [key]
        self._changing(change)
        for k in keys:
            self.overrides.pop(k, None)
        return keys

    def save(self) -> None:
        self.stamp = store.save_settings(self.path, self.overrides, self.unknown)
