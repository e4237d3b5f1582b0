"""jobs.yaml and settings.yaml: loading with exact error positions, atomic writes.

jobs.yaml is YAML that bkmd writes one job per line, each job a JSON-style flow mapping
(JSON is valid YAML). Any YAML tool reads it and a person can edit it, while bkmd loads and
writes 10,000 jobs in milliseconds instead of the seconds a full YAML emitter and parser
take. Anything not in that shape (a file edited by hand into block style, say) is read by
the YAML parser, so the file stays plain YAML.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable
from typing import Any

from bkm import model
from bkm import settings as settings_schema

STORE_VERSION = 1
SETTINGS_VERSION = 1
# What every stored job must have, and of which type: its id, the fields a person sets
# (bkm.model.JOB_FIELDS) and its state.
JOB_FIELDS = {
    "id": str,
    **{field.name: field.kind for field in model.JOB_FIELDS},
    "status": str,
    "created_at": str,
    "updated_at": str,
}
HEADER = "# bkm job store, written by bkmd: stop bkmd before editing this file.\n"
# Each version's migration to the next: {1: migrate_1_to_2, ...}.
MIGRATIONS: dict[int, Any] = {}


class StoreError(Exception):
    """A store file bkmd refuses to use; it names the file and, where known, line and column."""

    def __init__(self, path: str, problem: str, line: int | None = None, column: int | None = None):
        where = path if line is None else f"{path}:{line}:{column}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.column = path, line, column


def atomic_write(path: str, data: bytes, mode: int = 0o600, backup: str | None = None) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file whole.

    With ``backup``, the file being replaced stays there as the last good generation: it is
    hard-linked first, so at no moment is there no store at ``path``.
    """
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if backup is not None and os.path.exists(path):
            linked = temp + ".bak"
            os.link(path, linked)
            os.replace(linked, backup)
        os.replace(temp, path)
    except BaseException:
        for leftover in (temp, temp + ".bak"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise
    # The new file is in place now; flushing the folder only makes the rename durable. Its
    # failure must not be reported as a failed write: the caller would undo in memory what
    # is already on disk.
    _flush_folder(path)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(path, f"cannot read: {e.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise StoreError(path, "not valid UTF-8", line, column) from None


def _yaml_load(text: str, path: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "does not parse"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise StoreError(path, f"YAML error: {problem}", line, column) from None
    except yaml.YAMLError as e:
        raise StoreError(path, f"YAML error: {e}") from None


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _fast_jobs(text: str) -> tuple[int, list[tuple[int, dict]]] | None:
    """Read the shape bkmd writes; None for anything else, which then goes to the YAML parser."""
    version = None
    jobs: list[tuple[int, dict]] = []
    state = "head"
    for number, line in enumerate(text.split("\n"), 1):
        if state == "head":
            if not line or line.startswith("#"):
                continue
            if line.startswith("version: ") and line[9:].isdigit() and version is None:
                version = int(line[9:])
            elif line == "jobs: []" and version is not None:
                state = "end"
            elif line == "jobs:" and version is not None:
                state = "jobs"
            else:
                return None
        elif state == "jobs" and line.startswith("- {") and line.endswith("}"):
            try:
                job = json.loads(line[2:], parse_constant=_reject_constant)
            except ValueError:
                return None
            jobs.append((number, job))
        elif line:
            return None
    if state == "head" or (state == "jobs" and not jobs):
        return None
    return version, jobs


def _stamp(value: Any) -> Any:
    """A time as bkm writes it; YAML timestamps (unquoted 2026-11-29 02:30:00) become one."""
    import datetime

    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%dT00:00:00Z")
    return value


def _complete(job: dict) -> None:
    """What a hand-written entry may leave out (it needs only name, type, source and dest),
    filled in; written back with bkmd's first save."""
    import time
    import uuid

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    job.setdefault("id", uuid.uuid4().hex)
    job.setdefault("status", model.PENDING)
    for field in model.JOB_FIELDS:
        if field.name not in job and not field.required:
            # A field added after the entry was written takes its built-in default.
            job[field.name] = field.default_value(settings_schema.DEFAULTS)
    for key in ("created_at", "updated_at"):
        job[key] = _stamp(job.get(key, job.get("created_at", now)))
    for key in ("next_run_at", "retry_at", "schedule_paused_until"):  # a YAML timestamp by hand
        if job.get(key) is not None:
            job[key] = _stamp(job[key])


def _check_job(path: str, index: int, line: int | None, job: Any) -> dict:
    where = f"job #{index}" + (f" (line {line})" if line else "")
    at = (line, 1 if line else None)
    if not isinstance(job, dict):
        raise StoreError(path, f"{where} is not a mapping", *at)
    _complete(job)
    for field, kind in JOB_FIELDS.items():
        value = job.get(field)
        if value is None and field in model.NULLABLE:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            problem = "missing" if field not in job else f"not a {kind.__name__}"
            raise StoreError(path, f"{where}: field {field!r} is {problem}", *at)
    if job["status"] not in model.STATUSES:
        raise StoreError(path, f"{where}: unknown status {job['status']!r}", *at)
    if job["mode"] not in model.MODES:
        raise StoreError(path, f"{where}: unknown mode {job['mode']!r}", *at)
    return job


def load_jobs(path: str) -> list[dict]:
    """Every job record in the store; a missing or empty file is an empty store."""
    text = _read(path)
    if text is None:
        return []
    fast = _fast_jobs(text)
    if fast is not None:
        version, numbered = fast
    else:
        data = _yaml_load(text, path)
        if data is None:
            return []
        if not isinstance(data, dict) or "jobs" not in data:
            raise StoreError(path, "expected a mapping with 'version' and 'jobs'")
        version = data.get("version", STORE_VERSION)
        jobs = data["jobs"] or []
        if not isinstance(jobs, list):
            raise StoreError(path, "'jobs' must be a list")
        numbered = [(None, job) for job in jobs]
    if not isinstance(version, int) or version < 1:
        raise StoreError(path, f"unknown store version {version!r}")
    if version > STORE_VERSION:
        raise StoreError(path, f"store version {version} was written by a newer bkm (this one reads {STORE_VERSION})")
    records = [_check_job(path, i, line, job) for i, (line, job) in enumerate(numbered, 1)]
    while version < STORE_VERSION:
        records = MIGRATIONS[version](records)
        version += 1
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    for i, job in enumerate(records, 1):
        if job["id"] in seen_ids or job["name"] in seen_names:
            raise StoreError(path, f"job #{i}: duplicate id or name {job['name']!r}")
        seen_ids.add(job["id"])
        seen_names.add(job["name"])
    return records


# Characters a YAML reader refuses raw, or folds (NEL, LS and PS are line breaks to YAML),
# but json leaves raw: they are escaped (\uXXXX means the same in both). Non-BMP characters
# stay raw: as escapes they would become surrogate pairs, which YAML does not join.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _escape_unsafe(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def job_line(record: dict) -> str:
    """One job as the store writes it: a JSON flow mapping on one line of YAML."""
    line = "- " + json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(", ", ": ")) + "\n"
    return _YAML_UNSAFE.sub(_escape_unsafe, line)


def dump_lines(lines: list[str], generation: str | None = None) -> bytes:
    head = [HEADER]
    if generation is not None:
        head.append(f"{GENERATION}{generation}\n")
    head += [f"version: {STORE_VERSION}\n", "jobs:\n" if lines else "jobs: []\n"]
    return "".join(head + lines).encode("utf-8", "surrogatepass")


def dump_jobs(records: Iterable[dict]) -> bytes:
    return dump_lines([job_line(record) for record in records])


def save_job_lines(path: str, lines: list[str], generation: str | None = None) -> None:
    """Write the store from jobs already turned into lines (bkmd keeps each job's line until
    the job changes: a 10,000-job store is then written without serialising 10,000 jobs).
    ``generation``: this whole write's id, which a journal continuing it names (see below)."""
    atomic_write(path, dump_lines(lines, generation), backup=path + ".bak")


def save_jobs(path: str, records: Iterable[dict]) -> None:
    save_job_lines(path, [job_line(record) for record in records])


class SettingsFile:
    """What settings.yaml says: the values bkm knows (validated), keys it does not know (kept
    and written back, so a downgrade never loses a newer bkm's settings), and the file's
    identity when read, to notice a change made by hand."""

    def __init__(self, values: dict[str, Any], unknown: dict[str, Any], stamp: tuple | None) -> None:
        self.values, self.unknown, self.stamp = values, unknown, stamp

    @property
    def warnings(self) -> list[str]:
        return [f"unknown setting {key!r} ignored (kept in the file)" for key in self.unknown]


def settings_stamp(path: str) -> tuple | None:
    """The file's identity now (inode, size, mtime); None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_settings(path: str) -> SettingsFile:
    """settings.yaml, every value validated; StoreError lists every problem at once."""
    stamp = settings_stamp(path)
    text = _read(path)
    data = _yaml_load(text, path) if text is not None else None
    if data is None:
        return SettingsFile({}, {}, stamp)
    if not isinstance(data, dict):
        raise StoreError(path, "expected a mapping of setting: value")
    version = data.pop("version", SETTINGS_VERSION)
    if version != SETTINGS_VERSION:
        raise StoreError(path, f"unknown settings version {version!r}")
    values: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    problems = []
    for key, value in data.items():
        try:
            values[key] = settings_schema.parse(key, value)
        except settings_schema.UnknownSetting:
            unknown[str(key)] = value
        except ValueError as e:
            problems.append(f"{key}: {e}")
    if problems:
        raise StoreError(path, "; ".join(problems))
    return SettingsFile(values, unknown, stamp)


def load_settings(path: str) -> dict[str, Any]:
    """The settings the file sets (defaults are not filled in here); each one validated."""
    return read_settings(path).values


def save_settings(path: str, values: dict[str, Any], unknown: dict[str, Any] | None = None) -> tuple | None:
    """Write the settings (and keys this bkm does not know, as they were); the new file's stamp."""
    import yaml

    header = "# bkm settings, written by bkmd (`bkm settings set`); unset keys take their defaults.\n"
    body = yaml.safe_dump(
        {"version": SETTINGS_VERSION, **values, **(unknown or {})}, sort_keys=False, allow_unicode=True
    )
    atomic_write(path, (header + body).encode("utf-8"))
    return settings_stamp(path)


# -- the journal ------------------------------------------------------------------------------
#
# Rewriting the whole store for every change costs a create 35 ms at 10,000 jobs (5 MB, an
# fsync). Between whole writes, a save appends just the jobs that changed to
# jobs.yaml.journal (one write, one fsync), and loading applies it. A journal continues one
# whole write of the store: each whole write gets a random generation id (a comment line in
# jobs.yaml, which copies, restores and hand edits keep), and the journal's first line names
# it. A journal that names another generation is never applied over the store, nor written
# over: it is moved aside, with a warning. Each save's entries end with a commit line; a save
# torn by a crash or a full disk (no commit line, or bytes that do not decode) is not applied,
# nor anything after it, and a failed append is cut off again.

GENERATION = "# generation: "
JOURNAL_MAX_BYTES = 1 << 20  # then the next save writes the store whole, and starts afresh
JOURNAL_MAX_ENTRIES = 200  # a save changing more jobs writes the store whole


def journal_path(store_path: str) -> str:
    return store_path + ".journal"


def store_generation(path: str) -> str | None:
    """The generation id in the store's head, None without one (or without a store)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).split(b"\n")[:3]
    except OSError:
        return None
    for line in head:
        text = line.decode("ascii", "replace")
        if text.startswith(GENERATION) and len(text) > len(GENERATION):
            return text[len(GENERATION) :].strip()
    return None


def _parse_head(line: bytes) -> object:
    try:
        return json.loads(line.decode("utf-8") or "null")
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None


def _journal_head(path: str) -> object:
    try:
        with open(path, "rb") as f:
            return _parse_head(f.readline())
    except FileNotFoundError:
        return None


def _continues(head: object, store_path: str) -> bool:
    generation = store_generation(store_path)
    if generation is None or not isinstance(head, dict):
        return False
    return head.get("journal") == 1 and head.get("store") == generation


def journal_continues(store_path: str) -> bool:
    """Whether a journal continues the store as it is now (its changes were loaded with it)."""
    return _continues(_journal_head(journal_path(store_path)), store_path)


def read_journal(store_path: str) -> tuple[list[dict], list[str], str | None]:
    """(job records, ids deleted) of every committed save in the journal that continues the
    store as it is now, in order; and a warning when a journal was there but not used (it is
    moved aside then, so that nothing writes over it)."""
    path = journal_path(store_path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], [], None
    except OSError as e:
        raise StoreError(path, f"cannot read: {e.strerror or e}") from None
    lines = data.split(b"\n")
    if not _continues(_parse_head(lines[0]), store_path):
        aside = f"{path}.ignored-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        try:
            os.replace(path, aside)
        except OSError as e:
            raise StoreError(path, f"does not continue {store_path} and cannot be moved aside: {e.strerror}") from None
        return [], [], f"{path} does not continue {store_path} as it is now: not applied, moved to {aside}"
    records: dict[str, dict] = {}
    deleted: list[str] = []
    pending: list[dict] = []
    for line in lines[1:-1]:  # the last piece follows the last newline: empty, or cut short
        try:
            entry = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except ValueError:
            break  # a save cut short: neither it nor anything after it counts
        if not isinstance(entry, dict):
            break
        if "commit" in entry:
            for item in pending:
                if "job" in item:
                    records[item["job"]["id"]] = item["job"]
                    if item["job"]["id"] in deleted:
                        deleted.remove(item["job"]["id"])
                else:
                    records.pop(item["deleted"], None)
                    deleted.append(item["deleted"])
            pending = []
        elif _journal_entry(entry):
            pending.append(entry)
        else:
            break
    return list(records.values()), deleted, None


def _journal_entry(entry: dict) -> bool:
    job = entry.get("job")
    return (isinstance(job, dict) and isinstance(job.get("id"), str)) or isinstance(entry.get("deleted"), str)


def apply_journal(store_path: str, records: list[dict]) -> tuple[list[dict], bool, str | None]:
    """The store's records with its journal applied; whether there was anything to apply;
    a warning for a journal that was not used."""
    changed, deleted, warning = read_journal(store_path)
    if not changed and not deleted:
        return records, False, warning
    by_id = {record["id"]: record for record in records}
    for record in changed:
        by_id[record["id"]] = record
    for job_id in deleted:
        by_id.pop(job_id, None)
    path = journal_path(store_path)
    merged = [_check_job(path, i, None, job) for i, job in enumerate(by_id.values(), 1)]
    names = [job["name"] for job in merged]
    if len(set(names)) != len(names):
        raise StoreError(path, "applied to the store, it gives two jobs the same name")
    return merged, True, warning


class Journal:
    """Appends saves to the journal of the store generation ``generation`` (see above)."""

    def __init__(self, store_path: str) -> None:
        self.path = journal_path(store_path)
        self.store_path = store_path
        self.named = True  # whether the journal's name in the folder is flushed (as found: yes)
        self.generation: str | None = None  # the whole write it continues; None: write whole
        self.size = 0
        self.flushed = 0  # how much of it is known to be on the disk

    def started(self, generation: str) -> None:
        """The store was just written whole as ``generation``: a journal continues it now."""
        self.generation = generation
        self.size = 0
        self.flushed = 0
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:  # harmless: it names the previous generation, and will be set aside
            logging.getLogger("bkmd.store").warning("could not remove %s: %s", self.path, e.strerror or e)

    def takes(self, entries: int) -> bool:
        return self.generation is not None and 0 < entries <= JOURNAL_MAX_ENTRIES and self.size < JOURNAL_MAX_BYTES

    def append(self, records: list[dict], deleted: list[str], durable: bool = True) -> None:
        """One save: written and (``durable``) flushed, or (OSError) cut off again so that none
        of it counts. One not flushed that a crash of the machine tears counts for nothing, nor
        anything after it; the next flushed append makes it durable with itself."""
        body = [json.dumps({"job": record}, ensure_ascii=False, allow_nan=False) for record in records]
        body += [json.dumps({"deleted": job_id}) for job_id in deleted]
        body.append('{"commit": 1}')
        data = ("\n".join(body) + "\n").encode("utf-8", "surrogatepass")
        new = self.size == 0
        if new:
            data = (json.dumps({"journal": 1, "store": self.generation}) + "\n").encode() + data
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if new else 0), 0o600)
        try:
            try:
                view = memoryview(data)
                while view:  # a write cut short is tried again, to get the reason (ENOSPC, EFBIG)
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
            except OSError:
                if self.flushed < self.size:
                    # An earlier unflushed append may be what failed to reach the disk (its
                    # error is reported to this fsync): a torn one would hide every later
                    # save. The next save writes the store whole.
                    self.generation = None
                try:
                    os.ftruncate(fd, self.size)
                    os.fsync(fd)
                except OSError:
                    self.generation = None  # what is left may count: the next save writes the store whole
                raise
        finally:
            os.close(fd)
        if new:
            self.named = False  # its name in the folder is not yet flushed
        if durable and not self.named:
            self.named = _flush_folder(self.path)
        self.size += len(data)
        if durable:
            self.flushed = self.size


def _flush_folder(path: str) -> bool:
    """Make the creation or renaming of ``path`` durable; a failure is only logged (the file
    itself is written and flushed already)."""
    directory = os.path.dirname(path) or "."
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        logging.getLogger("bkmd.store").warning("could not flush the folder of %s: %s", path, e)
        return False
    return True
