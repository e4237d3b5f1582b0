"""The daemon's live settings: defaults plus what settings.yaml sets, changed without restart."""

from __future__ import annotations

from typing import Any

from bkm import settings as schema
from bkmd import store
from bkmd.errors import Invalid


class Settings:
    def __init__(self, path: str, overrides: dict[str, Any]) -> None:
        self.path = path
        self.overrides = dict(overrides)
        self._saved: dict[str, Any] | None = None  # the overrides as last saved, while dirty

    def __getitem__(self, key: str) -> Any:
        return self.overrides.get(key, schema.DEFAULTS[key])

    def all(self) -> dict[str, Any]:
        return {key: self[key] for key in schema.SETTINGS}

    def _change(self) -> None:
        if self._saved is None:
            self._saved = dict(self.overrides)

    def set(self, key: Any, value: Any) -> Any:
        try:
            parsed = schema.parse(key, value)
        except schema.UnknownSetting:
            raise Invalid({"key": schema.unknown_message(key)}) from None
        except ValueError as e:
            raise Invalid({key: str(e)}) from None
        self._change()
        if parsed == schema.DEFAULTS[key]:
            self.overrides.pop(key, None)
        else:
            self.overrides[key] = parsed
        return parsed

    def reset(self, key: Any = None) -> list[str]:
        if key is not None and (not isinstance(key, str) or key not in schema.SETTINGS):
            raise Invalid({"key": schema.unknown_message(key)})
        keys = list(schema.SETTINGS) if key is None else [key]
        self._change()
        for k in keys:
            self.overrides.pop(k, None)
        return keys

    @property
    def dirty(self) -> bool:
        return self._saved is not None

    def save(self) -> None:
        store.save_settings(self.path, self.overrides)
        self._saved = None

    def rollback(self) -> None:
        if self._saved is not None:
            self.overrides = self._saved
            self._saved = None
