"""bkm settings ...: show, get, set and reset bkmd's settings (applied without a restart)."""

from __future__ import annotations

import json

import click

from bkm.cli.completion import setting_keys
from bkm.cli.output import echo, json_option, print_json


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)


@click.group()
def settings() -> None:
    """Show and change bkmd's settings (applied without a restart)."""


@settings.command("show")
@json_option()
@click.pass_obj
def show(obj, as_json) -> None:
    """Show every setting and its value."""
    from bkm import render
    from bkm.settings import DEFAULTS, SETTINGS

    with obj.client() as client:
        values = client.call("settings.get")
    if as_json:
        print_json(values)
        return
    rows = []
    for key, value in values.items():
        shown = _human(key, value)
        if value != DEFAULTS.get(key):
            shown += f" (default {_human(key, DEFAULTS.get(key))})"
        meaning = SETTINGS[key].meaning if key in SETTINGS else ""
        rows.append((key, render.safe(shown), meaning))
    echo(render.table(("KEY", "VALUE", "MEANING"), rows, width=render.output_width(), shrink=(2,)))


def _human(key: str, value: object) -> str:
    """A value in its unit, for people: 10.0 MiB, 15m00s, unlimited."""
    from bkm import render
    from bkm.settings import SETTINGS

    unit = SETTINGS[key].unit if key in SETTINGS else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not unit:
        return _text(value) if value != "" else "-"
    if unit == "bytes":
        return render.human_bytes(value)
    if unit == "KiB/s":
        return f"{value} KiB/s" if value else "0 (unlimited)"
    if unit == "seconds":
        return f"{value:g}s" if value < 60 else render.human_duration(value) if value else "0 (off)"
    return _text(value)


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


# Nothing after KEY is read as an option: VALUE is taken verbatim, even "-e ssh" or "-h".
@settings.command("set", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@json_option()
@click.argument("key", shell_complete=setting_keys)
@click.argument("value", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def set_(obj, key, value, as_json) -> None:
    """Set KEY to VALUE; bkmd checks the value and says what it expects.

    VALUE is taken verbatim: nothing after KEY is read as an option, so
    `bkm settings set rsync_args '-e "ssh -p 2222"'` stores ["-e", "ssh -p 2222"]. Give --json
    before KEY.
    """
    if len(value) != 1:
        from bkm import errors
        from bkm.errors import BkmError

        raise BkmError(
            f"settings set takes one VALUE after {key} (got {len(value)})",
            errors.USAGE,
            f"quote it as one word: bkm settings set {key} '...'",
        )
    with obj.client() as client:
        answer = client.call("settings.set", key=key, value=value[0])
    if as_json:
        print_json(answer)
    else:
        human = _human(answer["key"], answer["value"])
        shown = _text(answer["value"])
        echo(f"{answer['key']} = {shown}" + (f" ({human})" if human not in (shown, "-") else ""))


@settings.command("reset")
@click.argument("key", required=False, shell_complete=setting_keys)
@click.option("--yes", "-y", is_flag=True, help="Do not ask (resetting every setting asks first on a terminal).")
@json_option()
@click.pass_obj
def reset(obj, key, yes, as_json) -> None:
    """Put KEY (or, without KEY, every setting) back to its default."""
    import sys

    from bkm.render import is_terminal

    asks = key is None and not yes and is_terminal(sys.stdin) and is_terminal(sys.stderr)
    if asks and not click.confirm("Reset every setting to its default?", default=False, prompt_suffix=" ", err=True):
        echo("nothing was reset")
        return
    with obj.client() as client:
        answer = client.call("settings.reset", key=key)
    if as_json:
        print_json(answer)
    elif key:
        echo(f"{key} = {_text(answer['settings'][key])} (default)")
    else:
        echo("every setting is back to its default")


@settings.command("reload")
@json_option()
@click.pass_obj
def reload(obj, as_json) -> None:
    """Read settings.yaml again after editing it by hand (as SIGHUP to bkmd does).

    A file that does not parse is reported, with every problem in it, and the settings in use
    are kept; keys this bkm does not know are warned about and kept in the file.
    """
    import sys

    with obj.client() as client:
        answer = client.call("settings.reload")
    if as_json:
        print_json(answer)
        return
    for warning in answer["warnings"]:
        sys.stderr.write(f"bkm: warning: {warning}\n")
    changed = answer["changed"]
    echo(
        "reloaded settings"
        + (
            ": " + ", ".join(f"{k} = {_text(answer['settings'][k])}" for k in changed)
            if changed
            else ": nothing changed"
        )
    )
