"""bkm settings ...: show, get, set and reset bkmd's settings (applied without a restart)."""

from __future__ import annotations

import json

import click

from bkm.cli.completion import setting_keys
from bkm.cli.output import echo, json_option, print_json


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


@click.group()
def settings() -> None:
    """Show and change bkmd's settings (applied without a restart)."""


@settings.command("show")
@json_option()
@click.pass_obj
def show(obj, as_json) -> None:
    """Show every setting and its value."""
    from bkm import render
    from bkm.settings import DEFAULTS

    with obj.client() as client:
        values = client.call("settings.get")
    if as_json:
        print_json(values)
        return
    rows = [
        (key, render.safe(_text(value)), "" if value == DEFAULTS.get(key) else f"(default {_text(DEFAULTS.get(key))})")
        for key, value in values.items()
    ]
    echo(render.table(("KEY", "VALUE", ""), rows))


@settings.command("get")
@click.argument("key", shell_complete=setting_keys)
@json_option()
@click.pass_obj
def get(obj, key, as_json) -> None:
    """Print the value of KEY alone."""
    with obj.client() as client:
        answer = client.call("settings.get", key=key)
    if as_json:
        print_json(answer["value"])
    else:
        echo(_text(answer["value"]))


@settings.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key", shell_complete=setting_keys)
@click.argument("value")
@json_option()
@click.pass_obj
def set_(obj, key, value, as_json) -> None:
    """Set KEY to VALUE; bkmd checks the value and says what it expects."""
    with obj.client() as client:
        answer = client.call("settings.set", key=key, value=value)
    if as_json:
        print_json(answer)
    else:
        echo(f"{answer['key']} = {_text(answer['value'])}")


@settings.command("reset")
@click.argument("key", required=False, shell_complete=setting_keys)
@json_option()
@click.pass_obj
def reset(obj, key, as_json) -> None:
    """Put KEY (or, without KEY, every setting) back to its default."""
    with obj.client() as client:
        answer = client.call("settings.reset", key=key)
    if as_json:
        print_json(answer)
    elif key:
        echo(f"{key} = {_text(answer['settings'][key])} (default)")
    else:
        echo("every setting is back to its default")
