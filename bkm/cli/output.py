"""Printing results: JSON for scripts, or the human form; and the `--json` option that chooses."""

from __future__ import annotations

import json
import sys

import click

JSON_HELP = "Print JSON instead of text."


def json_option(help: str = JSON_HELP):
    """The `--json` flag every command that prints data takes (as the parameter ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")
