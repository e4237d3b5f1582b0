"""bkm apply and bkm export: jobs as code. bkmd decides (apply.plan, apply.commit, apply.export);
this reads the file, says where in it each problem is, and prints the plan."""

from __future__ import annotations

import re
import sys

import click

from bkm import errors
from bkm.cli.completion import job_names
from bkm.cli.output import echo, json_option, print_json
from bkm.errors import BkmError

STDIN = "-"
# How bkmd names a problem's place: jobs[INDEX] or jobs[INDEX].FIELD.
PROBLEM_KEY = re.compile(r"^jobs\[(\d+)\](?:\.(.+))?$", re.S)
FORM_HINT = "the file holds 'jobs:' and a list of jobs ('- name: ...'); bkm export prints one"


class JobsFile:
    """A jobs file read and parsed, with the line of each entry and of each entry's fields."""

    def __init__(self, where: str, entries: list, lines: list[tuple[int, dict[str, int]]]) -> None:
        self.where, self.entries, self.lines = where, entries, lines

    def line(self, index: int, field: str | None) -> tuple[int, int]:
        """(entry, line) of a field (or of the entry when it has no such field), to sort by."""
        line, fields = self.lines[index] if index < len(self.lines) else (0, {})
        return index, fields.get(field, line) if field else line

    def place(self, index: int, field: str | None) -> str:
        """FILE:LINE: entry N (NAME) for a problem's message."""
        _, line = self.line(index, field)
        entry = self.entries[index] if index < len(self.entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        named = f" ({name})" if isinstance(name, str) and name else ""
        return f"{self.where}{f':{line}' if line else ''}: entry {index + 1}{named}"


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _plain(value: object) -> object:
    """What YAML gave, as JSON can carry it: bkmd judges the values (a date or a number where a
    text was meant is named as a problem there, with its entry and field)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return value
    return str(value)


def read_text(path: str) -> tuple[str, str]:
    """(where, text) of FILE, or of standard input for '-'."""
    if path == STDIN:
        where, raw = "<stdin>", sys.stdin.buffer.read()
    else:
        where = path
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise BkmError(f"cannot read {path}: {e.strerror or e}", errors.USAGE) from None
    try:
        return where, raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BkmError(f"{where}:{line}: not valid UTF-8", errors.USAGE) from None


def parse(where: str, text: str) -> JobsFile:
    """The file's entries with their lines; every problem of the file's shape (not of its
    jobs: bkmd's) is a BkmError naming the file and line."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        # Lines first: constructing merges '<<' keys into the nodes themselves.
        keys = _keys(node)
        lines = [_lines(where, i, item) for i, item in enumerate(_items(keys.get("jobs")))]
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise BkmError(f"{where}{at}: not valid YAML: {e.problem or e.context}", errors.USAGE) from None
    except (yaml.YAMLError, RecursionError) as e:
        raise BkmError(f"{where}: not valid YAML: {e}", errors.USAGE) from None
    finally:
        loader.dispose()
    if data is None:
        raise BkmError(f"{where} is empty: no jobs in it", errors.USAGE, FORM_HINT)
    if not isinstance(data, dict):
        problem = f"expected a mapping with 'jobs' at the top, not {_kind(data)}"
        raise BkmError(f"{where}: {problem}", errors.USAGE, FORM_HINT)
    for key in data:
        if key != "jobs":
            line = keys[str(key)][0].start_mark.line + 1 if str(key) in keys else 1
            raise BkmError(f"{where}:{line}: unknown key {key!r}: only 'jobs' is read", errors.USAGE, FORM_HINT)
    if "jobs" not in data:
        raise BkmError(f"{where}: no 'jobs' in it", errors.USAGE, FORM_HINT)
    entries = data["jobs"]
    line = keys["jobs"][1].start_mark.line + 1 if "jobs" in keys else 1  # not there: it came by a merge key
    if entries is None:
        raise BkmError(f"{where}:{line}: 'jobs' is empty; write 'jobs: []' to mean no jobs", errors.USAGE)
    if not isinstance(entries, list):
        raise BkmError(f"{where}:{line}: 'jobs' must be a list, not {_kind(entries)}", errors.USAGE, FORM_HINT)
    try:
        entries = _plain(entries)
    except RecursionError:
        raise BkmError(f"{where}: nested too deeply", errors.USAGE) from None
    return JobsFile(where, entries, lines)


def _pairs(node) -> list:
    """A mapping node's (key node, value node) pairs; none for any other node."""
    from yaml.nodes import MappingNode

    return node.value if isinstance(node, MappingNode) else []


def _keys(node) -> dict:
    """A mapping node's (key node, value node) by key text."""
    return {key.value: (key, value) for key, value in _pairs(node) if isinstance(key.value, str)}


def _items(pair) -> list:
    """The entry nodes of the jobs list (none when it is not a list)."""
    from yaml.nodes import SequenceNode

    return pair[1].value if pair and isinstance(pair[1], SequenceNode) else []


def _lines(where: str, index: int, node) -> tuple[int, dict[str, int]]:
    """An entry's line, and the line of each of its fields; a field given twice is refused
    (YAML would keep the last one without a word)."""
    fields: dict[str, int] = {}
    for key, _ in _pairs(node):
        if not isinstance(key.value, str) or key.value == "<<":
            continue
        line = key.start_mark.line + 1
        if key.value in fields:
            raise BkmError(
                f"{where}:{line}: entry {index + 1}: {key.value}: given twice (also on line {fields[key.value]})",
                errors.USAGE,
            )
        fields[key.value] = line
    return node.start_mark.line + 1, fields


def _fits(file: JobsFile) -> None:
    """One request carries the whole file (bkmd applies it whole or not at all), and bkmd reads
    a request of at most protocol.MAX_LINE_BYTES."""
    import json

    from bkm import protocol

    size = len(json.dumps(file.entries, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace"))
    if size > protocol.MAX_LINE_BYTES - 4096:
        raise BkmError(
            f"{file.where}: too large to apply at once ({size} bytes as JSON; bkmd reads at most"
            f" {protocol.MAX_LINE_BYTES // 1024} KiB in one request)",
            errors.USAGE,
            "split the jobs over several files and apply each (--prune deletes what its own file does not name)",
        )


def _say(message: str) -> None:
    from bkm import render

    sys.stderr.write(f"bkm: error: {render.safe(message)}\n")


def _problems(file: JobsFile, problems: dict) -> BkmError:
    """Every problem bkmd found, a line each, in the file's order: FILE:LINE: entry N (NAME):
    FIELD: what is wrong. All but the last are written here; the last is the error raised."""
    found = []
    for key, problem in problems.items():
        match = PROBLEM_KEY.match(str(key))
        if match is None:
            found.append(((len(file.entries), 0), f"{file.where}: {key}: {problem}"))
            continue
        index, field = int(match.group(1)), match.group(2)
        place = file.place(index, field)
        found.append((file.line(index, field), f"{place}: {field}: {problem}" if field else f"{place}: {problem}"))
    found.sort(key=lambda item: item[0])  # in the file's order; stable: a field's own in bkmd's
    for _, message in found[:-1]:
        _say(message)
    count = f"these {len(found)} problems" if len(found) > 1 else "this problem"
    return BkmError(found[-1][1], errors.USAGE, f"nothing was changed: fix {count} and apply the file again")


def _line(step: dict, dry_run: bool) -> str:
    from bkm import render

    text = f"{step['action']:<11}{render.safe(step['name'])}"
    if step["fields"]:
        text += f" ({', '.join(step['fields'])})"
    if step["skipped"]:
        text += f"  {'would be skipped' if dry_run else 'skipped'}: {step['status']}"
    return text


def _summary(counts: dict, dry_run: bool) -> str:
    if not (counts["create"] or counts["update"] or counts["delete"] or counts["skipped"]):
        return f"nothing to do: {counts['unchanged']} unchanged" if counts["unchanged"] else "nothing to do: no jobs"
    done = ("to create", "to update", "to delete") if dry_run else ("created", "updated", "deleted")
    parts = [f"{counts[action]} {word}" for action, word in zip(("create", "update", "delete"), done, strict=True)]
    parts.append(f"{counts['unchanged']} unchanged")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} {'would be skipped' if dry_run else 'skipped'}")
    return ", ".join(parts) + ("; nothing was changed (dry run)" if dry_run else "")


@click.command("apply")
@click.argument("path", metavar="FILE")
@click.option("--prune", is_flag=True, help="Also delete your jobs that FILE does not name.")
@click.option("--dry-run", is_flag=True, help="Only print the plan; change nothing.")
@json_option("Print the plan as JSON: each job's action, changed fields and why it was skipped.")
@click.pass_obj
def apply(obj, path, prune, dry_run, as_json) -> None:
    """Make the jobs match FILE, a YAML file of jobs ('-': standard input).

    \b
      jobs:
        - name: photos
          type: rsync
          source: /home/ann/Photos/
          dest: /mnt/backup/photos
          schedule: 30 2 * * *

    An entry takes every field of bkm job create by its JSON name (bwlimit, excludes,
    schedule, retries, retry_wait_seconds, max_age_seconds, hooks, healthcheck, notify,
    tool_args); a field left out has its default (for bwlimit, retries and retry_wait_seconds
    the setting's value), so the file is the whole truth about each job it names. Jobs are
    found by name: a new name is created, a job that differs is updated (fields listed), with
    --prune a job the file does not name is deleted.

    The whole file is checked first, as job create checks; if any entry is bad, every
    problem is reported (exit 2) and nothing changes. A job that is running or queued is
    not changed: it is reported as skipped, the rest is applied, and the exit code is 5.
    Applying the same file again changes nothing.
    """
    file = parse(*read_text(path))
    _fits(file)
    method = "apply.plan" if dry_run else "apply.commit"
    with obj.client() as client:
        try:
            result = client.call(method, jobs=file.entries, prune=prune)
        except BkmError as e:
            data = getattr(e, "data", None)
            if e.exit_code == errors.USAGE and isinstance(data, dict) and any(PROBLEM_KEY.match(k) for k in data):
                raise _problems(file, data) from None
            raise
    if as_json:
        print_json(result)
    else:
        for step in result["plan"]:
            echo(_line(step, dry_run))
        echo(_summary(result["counts"], dry_run))
    skipped = [step for step in result["plan"] if step["skipped"]]
    if skipped and not dry_run:
        for step in skipped[:-1]:
            _say(step["skipped"])
        raise BkmError(
            skipped[-1]["skipped"],
            errors.CONFLICT,
            "the rest was applied; apply the file again once the run has ended (or after bkm job pause)",
        )


def dump(entries: list[dict]) -> str:
    """A jobs file: block style, lists indented under their key, long texts on one line."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False):
            return super().increase_indent(flow, False)

    head = "# bkm jobs (bkm export); make the jobs match this file with: bkm apply FILE\n"
    if any(entry.get("healthcheck") or entry.get("notify") for entry in entries):
        head += "# It holds notification and healthcheck URLs whole, passwords and tokens too: keep it private.\n"
    body = yaml.dump(
        {"jobs": entries}, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 16
    )
    return head + body


@click.command("export")
@click.argument("job_refs", metavar="[JOB]...", nargs=-1, shell_complete=job_names)
@json_option('Print the file\'s content as JSON ({"jobs": [...]}), which bkm apply reads too.')
@click.pass_obj
def export(obj, job_refs, as_json) -> None:
    """Print jobs (every one you can see, or the JOBs named) as a file for bkm apply.

    Sorted by name. Name, type, source, dest, bwlimit, retries and retry_wait_seconds are
    always written (the last three default to settings, which may differ where the file is
    applied); other fields only when they are not their default. Notification and
    healthcheck URLs are written whole, with their passwords and tokens: bkm export is the
    one command that shows them. Only your own jobs: the file carries no owner, and whoever
    applies it owns what it creates and runs its hooks (on a system bkmd, root exports root's
    jobs; members export theirs). `bkm export > jobs.yaml` then `bkm apply jobs.yaml` changes
    nothing.
    """
    with obj.client() as client:
        result = client.call("apply.export", jobs=list(dict.fromkeys(job_refs)) or None)
    if result.get("others"):
        sys.stderr.write(f"bkm: note: {result['others']} job(s) of other users left out: each user exports their own\n")
    if as_json:
        print_json({"jobs": result["jobs"]})
    else:
        sys.stdout.write(dump(result["jobs"]))
