"""Printing results: JSON for scripts, or the human form."""

from __future__ import annotations

import json
import sys


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
