"""The man pages are lint-clean and document every command and option bkm has."""

import os
import shutil
import subprocess

import click
import pytest

from bkm.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BKM_1 = os.path.join(ROOT, "man", "bkm.1")
BKMD_8 = os.path.join(ROOT, "man", "bkmd.8")


def walk(command: click.Command, ctx: click.Context, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            yield from walk(command.get_command(ctx, name), ctx, path + (name,))


def man_text(path: str) -> str:
    with open(path) as f:
        # roff writes '-' as '\-'; compare with plain text.
        return f.read().replace("\\-", "-")


def test_every_command_and_option_is_in_bkm_1():
    text = man_text(BKM_1)
    ctx = click.Context(cli)
    missing = []
    for path, command in walk(cli, ctx):
        if path and f"bkm {' '.join(path)}" not in text:
            missing.append("bkm " + " ".join(path))
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts + param.secondary_opts:
                    if opt not in text:
                        missing.append(f"{' '.join(('bkm',) + path)} {opt}")
    assert missing == []


def test_every_bkmd_option_is_in_bkmd_8():
    from bkmd.main import build_parser

    text = man_text(BKMD_8)
    options = [opt for action in build_parser()._actions for opt in action.option_strings]
    assert "--home" in options
    assert [opt for opt in options if opt not in text] == []


@pytest.mark.parametrize("page", [BKM_1, BKMD_8])
def test_man_page_is_lint_clean(page):
    if not shutil.which("mandoc"):
        pytest.skip("mandoc is not installed (scripts/setup installs it)")
    out = subprocess.run(["mandoc", "-Tlint", "-Wwarning", page], capture_output=True, text=True)
    assert out.returncode < 2, out.stdout + out.stderr
