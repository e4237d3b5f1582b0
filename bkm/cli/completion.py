"""bkm completion SHELL, and what completes JOB and KEY arguments (asked of the running bkmd)."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash: eval "$(bkm completion bash)"        (in ~/.bashrc)
    zsh:  eval "$(bkm completion zsh)"         (in ~/.zshrc)
    fish: bkm completion fish > ~/.config/fish/completions/bkm.fish
    """
    from click.shell_completion import get_completion_class

    from bkm.cli import cli

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "bkm", "_BKM_COMPLETE").source())


def _ask(ctx: click.Context, method: str, **params):
    """One quick call to bkmd for completion; nothing (quietly) when it cannot be reached."""
    from bkm.client import Client
    from bkm.errors import BkmError
    from bkm.paths import PathError, resolve

    root = ctx.find_root().params
    try:
        host = root.get("host")  # --host or BKM_HOST: the names are the far bkmd's
        if host:
            from bkm.transport import parse

            target = parse(host)
            if target.remote:  # an ssh handshake takes a moment; a TAB may wait that long
                with Client(None, timeout=3.0, target=target, system=bool(root.get("system"))) as client:
                    return client.call(method, **params)
            paths = resolve(socket=target.path)
        else:
            paths = resolve(home=root.get("home"), socket=root.get("socket"), system=bool(root.get("system")))
        with Client(paths, timeout=1.0) as client:
            return client.call(method, **params)
    except (BkmError, PathError, OSError, ValueError):
        return None


def job_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    jobs = _ask(ctx, "job.list") or []
    return [CompletionItem(_quoted(j["name"]), help=j["status"]) for j in jobs if j["name"].startswith(incomplete)]


def _quoted(name: str) -> str:
    """A name as bash must insert it: click's bash script puts completions on the command line
    as they are, so "my photos" would become two words (tested in real bash). zsh and fish
    quote by themselves."""
    import os

    if not os.environ.get("_BKM_COMPLETE", "").startswith("bash"):
        return name
    import re

    # Escaped for the command line, then once more for the script's `read` (without -r),
    # which takes one level of backslashes away.
    return re.sub(r"([^\w@%+=:,./-])", r"\\\1", name).replace("\\", "\\\\")


def setting_keys(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    values = _ask(ctx, "settings.get") or {}
    return [CompletionItem(key) for key in values if key.startswith(incomplete)]
