"""Rules the client states once: --json, the exit code for a run's end, doctor's machine checks,
and a lean start-up."""

import importlib
import inspect
import json
import os
import subprocess
import sys

import click
import pytest

from bkm import checks, errors, model
from bkm.cli import COMMANDS
from bkm.paths import resolve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def all_commands():
    for name, (module, attribute, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                yield f"{name} {sub_name}", sub
        else:
            yield name, command


def test_every_json_option_is_the_same_flag():
    with_json = {}
    for name, command in all_commands():
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                assert param.name == "as_json" and param.is_flag and param.help, name
                with_json[name] = param
    for name in ("job create", "job list", "job show", "job start", "status", "recover", "doctor", "watch"):
        assert name in with_json, name


def test_the_json_option_is_written_only_in_output():
    for folder, _, files in os.walk(os.path.join(ROOT, "bkm", "cli")):
        for file in files:
            if file.endswith(".py") and file != "output.py":
                with open(os.path.join(folder, file)) as f:
                    assert '"--json"' not in f.read(), file


@pytest.mark.parametrize(
    "statuses, code",
    [
        (["completed"], errors.OK),
        (["failed"], errors.FAILED),
        (["paused"], errors.CONFLICT),
        (["interrupted"], errors.CONFLICT),
        (["pending"], errors.OK),
        (["completed", "paused"], errors.CONFLICT),
        (["paused", "failed", "completed"], errors.FAILED),
        ([], errors.OK),
    ],
)
def test_exit_code_for_where_runs_ended(statuses, code):
    assert errors.exit_for(statuses) == code
    assert errors.exit_for(iter(statuses)) == code


def test_exit_table_names_real_statuses():
    assert set(errors.EXIT_FOR_STATUS) <= set(model.STATUSES)


def test_machine_checks_are_doctors_six(tmp_path):
    paths = resolve(home=str(tmp_path))
    results = checks.machine_checks(paths, sys.executable, "/nonexistent/rclone")
    assert [r["check"] for r in results] == ["rsync", "rclone", "store", "logs", "settings", "disk"]
    assert results[1]["status"] == checks.FAIL and "/nonexistent/rclone" in results[1]["detail"]
    assert all(set(r) == {"check", "status", "detail"} for r in results)


def test_cli_modules_import_nothing_heavy():
    modules = [module for module, _, _ in COMMANDS.values()] + ["bkm.cli.run", "bkm.cli.output"]
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in ('tabulate', 'yaml', 'bkm.client', 'bkm.settings', 'dataclasses', 'socket')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_inspect_is_loaded_only_when_click_uses_it():
    # bkm.cli defers the inspect module click imports (with ast, dis, tokenize) to its first use.
    code = (
        "import sys\n"
        "import bkm.cli, click.core\n"
        "print(sorted(m for m in ('ast', 'dis', 'tokenize', 'ctypes', 'subprocess') if m in sys.modules))\n"
        "print(click.core.inspect.cleandoc('  one\\n      two'))\n"
        "import inspect\n"
        "print(inspect is sys.modules['inspect'], hasattr(inspect, 'signature'), 'ast' in sys.modules)\n"
        "print(click.core.inspect.isfunction(print), click.core.inspect.signature is inspect.signature)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "one", "two", "True True True", "False True"]


def test_help_renders_with_inspect_deferred():
    code = "import sys, bkm.cli; sys.exit(bkm.cli.main(['job', 'create', '--help']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: ") and "--source" in out.stdout


def test_deferred_cleandoc_is_inspects_own():
    # What click gets for each option's help: plain one-line texts are answered without loading
    # inspect, anything else by inspect itself.
    code = (
        "import sys, json, bkm.cli\n"
        "plain, other = json.loads(sys.stdin.read())\n"
        "answers = [sys.modules['inspect'].cleandoc(t) for t in plain]\n"
        "print(json.dumps(answers))\n"
        "print(sorted(m for m in ('ast', 'dis', 'tokenize') if m in sys.modules))\n"
        "print(json.dumps([sys.modules['inspect'].cleandoc(t) for t in other]))\n"
    )
    plain = ["", "help", "trail  ", "a\rb", "ünï  cödé", "Wait before the first retry (90s, 5m, 1h)."]
    other = [" ", "  lead", "\ttab\tin", " \t mixed \t", "\fform", "\xa0nbsp", "two\n  lines", "x\ty"]
    given = json.dumps([plain, other])
    out = subprocess.run([sys.executable, "-c", code], input=given, capture_output=True, text=True, check=True)
    answered, loaded, delegated = out.stdout.splitlines()
    assert json.loads(answered) == [inspect.cleandoc(t) for t in plain]
    assert loaded == "[]"
    assert json.loads(delegated) == [inspect.cleandoc(t) for t in other]


def test_deferred_modules_load_once_from_many_threads():
    code = (
        "import sys, threading, bkm.cli, platform\n"
        "sys.setswitchinterval(1e-6)\n"
        "seen, errors = [], []\n"
        "def ask():\n"
        "    try: seen.append(platform.machine())\n"
        "    except Exception as e: errors.append(repr(e))\n"
        "threads = [threading.Thread(target=ask) for _ in range(16)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(len(set(seen)), len(seen), errors)\n"
    )
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.split(None, 2) == ["1", "16", "[]\n"]


def test_deferred_platform_system_is_platforms_own():
    code = "import sys, bkm.cli, uuid\nprint(sys.modules['platform'].system(), 'platform' in sys.modules)"
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    alone = "import platform; print(platform.system())"
    real = subprocess.run([sys.executable, "-c", alone], capture_output=True, text=True)
    assert ours == [real.stdout.strip(), "True"]
    # Loaded on the first other name, and then the module's own in every reference to it.
    code = (
        "import bkm.cli, uuid, platform\n"
        "print(uuid.platform.machine() == platform.machine(), type(platform).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "_Deferred"]


def test_every_option_help_is_one_line():
    # bkm's options take the deferred plain path; a help text of several lines would load inspect.
    helps = []
    for module, attribute, _ in COMMANDS.values():
        command = getattr(importlib.import_module(module), attribute)
        stack = [command]
        while stack:
            current = stack.pop()
            helps += [p.help for p in current.params if getattr(p, "help", None)]
            stack += list(getattr(current, "commands", {}).values())
    assert len(helps) > 50
    assert [h for h in helps if "\n" in h or "\t" in h or h[:1].isspace()] == []
