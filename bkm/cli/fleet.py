"""bkm fleet status|list: every host of the hosts file, asked at once.

Each host gets its own thread and its own connection (one ssh each), so a fleet answers in
about the time of its slowest host, and a host that does not answer within --timeout is a row
saying so, never a wait for the others.
"""

from __future__ import annotations

import os
import sys

import click

from bkm import errors
from bkm.cli.output import echo, json_option, print_json
from bkm.errors import BkmError

DEFAULT_TIMEOUT = 10.0
FORM = "hosts: {nas: 'ssh://backup@nas.local', web1: 'ssh://root@web1.example.org:2222'}"


def default_hosts_file() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "bkm", "hosts.yaml")


def read_hosts(path: str) -> dict:
    """NAME -> Target, in the file's order; every problem of the file is a usage error."""
    import yaml

    from bkm.transport import parse

    hint = f"a hosts file is YAML like: {FORM}"
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise BkmError(f"no hosts file at {path}", errors.USAGE, hint + "; or give --hosts FILE") from None
    except OSError as e:
        raise BkmError(f"cannot read {path}: {e.strerror}", errors.USAGE) from None
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise BkmError(f"{path} is not a YAML text file (UTF-8)", errors.USAGE, hint) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise BkmError(f"{path} is not valid YAML{where}", errors.USAGE, hint) from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise BkmError(f"{path} has no hosts: it needs a mapping 'hosts' of NAME: URL", errors.USAGE, hint)
    targets = {}
    for name, url in hosts.items():
        if not isinstance(url, str):
            raise BkmError(f"{path}: host {name}: the URL must be a string", errors.USAGE, hint)
        try:
            targets[str(name)] = parse(url)
        except BkmError as e:
            raise BkmError(f"{path}: host {name}: {e.message}", errors.USAGE, e.hint) from None
    return targets


class Answer:
    """What one host said, or why it said nothing."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self.status: dict | None = None
        self.jobs: list[dict] = []
        self.error: str | None = None


def _ask(obj, name: str, target, timeout: float, want_jobs: bool) -> Answer:
    from bkm.client import Client
    from bkm.paths import PathError, resolve

    answer = Answer(name, target.url)
    try:
        if target.remote:
            client = Client(None, timeout, target=target, system=obj.system)
        else:
            client = Client(resolve(socket=target.path), timeout)
        with client:
            answer.status = client.call("daemon.status")
            answer.jobs = client.call("job.list") if want_jobs else []
    except BkmError as e:
        answer.error = e.message
    except PathError as e:
        answer.error = str(e)
    except Exception as e:  # noqa: BLE001 - one host's surprise must not cost the others' rows
        answer.error = f"{type(e).__name__}: {e}"
    if answer.error is not None:  # half an answer (the status, not the jobs) is no answer
        answer.status, answer.jobs = None, []
    return answer


def ask_all(obj, hosts_file: str | None, timeout: float, want_jobs: bool) -> list[Answer]:
    import threading
    import time

    targets = read_hosts(hosts_file or default_hosts_file())
    answers: dict[str, Answer] = {}

    def work(name, target) -> None:
        answers[name] = _ask(obj, name, target, timeout, want_jobs)

    threads = [threading.Thread(target=work, args=item, daemon=True) for item in targets.items()]
    for thread in threads:
        thread.start()
    # Two calls share one connection, each within the timeout; a margin for ssh to end.
    deadline = time.monotonic() + 2 * timeout + 5
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    results = []
    for name, target in targets.items():
        found = answers.get(name)
        if found is None:
            found = Answer(name, target.url)
            found.error = f"no answer within {timeout:g} s"
        results.append(found)
    return results


def _healthy(answer: Answer) -> bool:
    return answer.status is not None and not answer.status["counts"].get("failed") and not answer.status["stale"]


def _newest_success(jobs: list[dict]) -> str | None:
    stamps = [j["last_success_at"] for j in jobs if j.get("last_success_at")]
    return max(stamps) if stamps else None


hosts_option = click.option(
    "--hosts",
    "hosts_file",
    metavar="FILE",
    help="The hosts file (default: ${XDG_CONFIG_HOME:-~/.config}/bkm/hosts.yaml): hosts: {NAME: URL, ...}.",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.5, 600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds each host may take to answer; a slower one is shown as unreachable.",
)


@click.group()
def fleet() -> None:
    """Every host of the hosts file at once: their bkmds' status, or all their jobs.

    Hosts are reached as --host reaches one (ssh:// through OpenSSH, unix:// a socket here),
    all at the same time. Exit 0 when every host answered and no job is failed or stale, else 1.
    """


@fleet.command("status")
@hosts_option
@timeout_option
@json_option("One object per host, in an array.")
@click.pass_obj
def status(obj, hosts_file, timeout, as_json) -> None:
    """One row per host: reachable, jobs by status, failed, stale, last success."""
    answers = ask_all(obj, hosts_file, timeout, want_jobs=True)
    if as_json:
        print_json([_status_json(a) for a in answers])
    else:
        from bkm import render

        rows = []
        for a in answers:
            if a.status is None:
                rows.append((render.safe(a.name), "no", "", "", "", "", "", render.safe(a.error or "")))
                continue
            counts = a.status["counts"]
            rows.append(
                (
                    render.safe(a.name),
                    "yes",
                    a.status["jobs"],
                    counts.get("running", 0) + counts.get("queued", 0),
                    counts.get("failed", 0),
                    len(a.status["stale"]),
                    render.ago(_newest_success(a.jobs)) if _newest_success(a.jobs) else "never",
                    ("stale: " + ", ".join(render.safe(n) for n in a.status["stale"])) if a.status["stale"] else "",
                )
            )
        headers = ("HOST", "REACHABLE", "JOBS", "ACTIVE", "FAILED", "STALE", "LAST SUCCESS", "NOTE")
        echo(render.table(headers, rows, width=render.output_width(), shrink=(1, 7)))
    sys.exit(errors.OK if all(_healthy(a) for a in answers) else errors.FAILED)


def _status_json(a: Answer) -> dict:
    if a.status is None:
        return {"host": a.name, "url": a.url, "reachable": False, "error": a.error}
    return {
        "host": a.name,
        "url": a.url,
        "reachable": True,
        "error": None,
        "version": a.status["version"],
        "jobs": a.status["jobs"],
        "counts": a.status["counts"],
        "failed": a.status["counts"].get("failed", 0),
        "stale": a.status["stale"],
        "last_success_at": _newest_success(a.jobs),
    }


@fleet.command("list")
@hosts_option
@timeout_option
@json_option('One array of the jobs of every host, each with a "host" key.')
@click.pass_obj
def list_(obj, hosts_file, timeout, as_json) -> None:
    """Every job of every host, with a HOST column; an unreachable host is a row saying why."""
    from bkm.cli.job import progress_cell, status_cell

    answers = ask_all(obj, hosts_file, timeout, want_jobs=True)
    for a in answers:
        if a.status is None:
            sys.stderr.write(f"bkm: warning: host {a.name} did not answer: {a.error}\n")
    if as_json:
        print_json([{"host": a.name, **job} for a in answers for job in a.jobs])
    else:
        from bkm import render

        rows = []
        for a in answers:
            if a.status is None:
                rows.append((render.safe(a.name), "-", "", "unreachable (below)", "", ""))
            for j in a.jobs:
                stale = " (stale)" if j.get("stale") else ""
                rows.append(
                    (
                        render.safe(a.name),
                        render.cut(render.safe(j["name"]), 24),
                        render.safe(j["type"]),
                        render.safe(status_cell(j)) + stale,
                        progress_cell(j),
                        render.ago(j["last_success_at"]) if j.get("last_success_at") else "never",
                    )
                )
        headers = ("HOST", "NAME", "TYPE", "STATUS", "PROGRESS", "LAST SUCCESS")
        echo(render.table(headers, rows, width=render.output_width(), shrink=(1,)))
    healthy = all(a.status is not None for a in answers) and not any(
        j["status"] == "failed" or j.get("stale") for a in answers for j in a.jobs
    )
    sys.exit(errors.OK if healthy else errors.FAILED)
