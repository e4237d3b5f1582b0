"""The daemon's live settings: defaults plus what settings.yaml sets, changed without restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bkm import settings as schema
from bkmd import store
from bkmd.change import Change
from bkmd.errors import ValidationFailed


class Settings:
    def __init__(self, path: str, overrides: dict[str, Any]) -> None:
        self.path = path
        self.overrides = dict(overrides)
        self.on_change: list[Callable[[], None]] = []  # told once a change is saved

    def __getitem__(self, key: str) -> Any:
        return self.overrides.get(key, schema.DEFAULTS[key])

    def all(self) -> dict[str, Any]:
        return {key: self[key] for key in schema.SETTINGS}

    def _changing(self, change: Change) -> None:
        before = dict(self.overrides)

        def undo() -> None:
            self.overrides = before

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
        store.save_settings(self.path, self.overrides)
