"""rclone: argv, the --use-json-log stats parser, exit codes.

Facts this relies on (shared/reference/rsync-rclone.md): with --use-json-log every log line on
stderr is one JSON object and stats records carry a "stats" object; --check-first makes
totalBytes exact before transfers start; an up-to-date run reports totalBytes 0; rclone
retries the whole copy 3 times unless told --retries 1.

And, from the captures in tests/data: an error that ends rclone before it copies anything (an
unknown remote, a refused connection) is printed as plain text, not JSON: "2026/11/29 06:02:16
Failed to create file system for "nosuch:bucket": didn't find section in config file"; without
a configuration file every run logs the NOTICE "Config file ... not found - using defaults"
(level "warning" in JSON). A file that was being sent when rclone stopped is sent again from its
first byte by the next run, so totalBytes of a resumed run counts it whole again.
"""

from __future__ import annotations

import dataclasses
import json
import re

from bkmd.engines import Outcome, Sample

# totalBytes counts only what this run has to send.
TOTAL_COVERS_TREE = False
ERROR_CHARS = 300  # an error line is cut to this length

# Which error line names the cause, best first: an error logged as it happened (with the object
# it concerns); then the plain-text line rclone prints as it gives up ("Failed to create file
# system for ...", "Fatal error: ...", "Failed to copy: ..."); then the summaries that repeat
# an earlier error ("Attempt 1/1 failed with 1 errors and: ...", the stats' lastError).
LOGGED, FATAL, SUMMARY = range(3)
PLAIN = re.compile(
    r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? )?"  # the time stamp of a text log line
    r"(?:(?P<level>ERROR|CRITICAL|NOTICE|INFO|DEBUG)\s*: )?(?P<msg>.*)$"
)
FATAL_TEXT = re.compile(r"^(Failed to |Fatal error: |Error: )")
SUMMARIES = re.compile(
    r"(^|: )(Attempt \d+/\d+ failed with |Fatal error received - not attempting retries|Cancelling sync due to fatal)"
)

MEANINGS = {
    1: "syntax or usage error, or an unclassified error",
    2: "error not otherwise categorised",
    3: "directory not found",
    4: "file not found",
    5: "temporary error (retryable)",
    6: "less serious error (not retried)",
    7: "fatal error",
    8: "transfer limit (--max-transfer) reached",
    9: "operation successful, but no files transferred",
}


def argv(
    job,
    settings,
    resume: bool = False,
    sources: list[str] | None = None,
    dest: str | None = None,
    delete: bool = False,
    link_dest: str | None = None,
    filters: bool = True,
    includes: list[str] | None = None,
    keeper: bool = False,
) -> list[str]:
    """The run's argv: the job's own copy, a mirror (``delete``: `rclone sync`), or a restore
    (the backup as the one source, ``includes`` the paths asked for, ``filters`` off)."""
    source = (sources or [job.source])[0]
    dest = dest or job.dest
    interval = settings["progress_interval"]
    args = [
        settings["rclone_path"],
        "sync" if delete else "copy",
        "--use-json-log",
        f"--stats={interval:g}s",
        "--stats-log-level=NOTICE",
        "--retries=1",  # bkm decides about retrying, not rclone behind its back
        "--check-first",  # the total is known before the first byte moves
    ]
    if job.bwlimit:
        args.append(f"--bwlimit={job.bwlimit}")  # a bare number is KiB/s
    if filters:
        args += [f"--exclude={pattern}" for pattern in job.excludes]
    for path in includes or []:
        args += [f"--include=/{_escaped(path)}", f"--include=/{_escaped(path)}/**"]
    args += list(settings["rclone_args"]) + list(job.tool_args)  # this job's own last: they can override
    return args + ["--", source, dest]


def can_keep_partial(job, settings, dest: str | None = None) -> bool:
    """rclone keeps no unfinished file to build on (it sends it again whole): nothing to keep."""
    return False


def keep_partial(written: list[str], dest: str, source: str, late=None) -> list[str]:
    return []


def _escaped(path: str) -> str:
    """A literal path in rclone's filter syntax: its glob characters escaped."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", path.strip("/"))


# rclone's own verdict on an error: exit 5 is "temporary (retryable)".
TRANSIENT = frozenset({5})


def dry_run_argv(job, settings) -> list[str]:
    """rclone's own dry run with the job's filters and arguments: what a run would send."""
    args = [settings["rclone_path"], "copy", "--dry-run", "--use-json-log", "--stats=1h"]
    args += ["--stats-log-level=NOTICE", "--retries=1", "--check-first"]
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rclone_args"]) + list(job.tool_args)  # this job's own last: they can override
    return args + ["--", job.source, job.dest]


DRY_RUN_OK = frozenset({0})
# rclone check: 0 the same, 1 differences found; both are answers.
GUARD_OK = frozenset({0, 1})
DIFFERENCES = re.compile(r"\b\d+ differences? found\b")


def verify_complete(code: int | None, lines: list[str]) -> bool:
    """Whether rclone check compared everything: exit 0, or exit 1 whose last error is the
    differences it found (exit 1 is also a bad flag, a missing remote, a refused token)."""
    if code == 0:
        return True
    errors = [line for line in lines if "Failed to check" in line or line.startswith("error:")]
    return code == 1 and bool(errors) and bool(DIFFERENCES.search(errors[-1]))


def guard_argv(job, settings) -> list[str]:
    """Both sides listed and compared by size only (quick): what a mirror would delete."""
    args = [settings["rclone_path"], "check", "--size-only", "--combined=-", "--retries=1"]
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rclone_args"]) + list(job.tool_args)
    return args + ["--", job.source, job.dest]


def _combined(stdout: str) -> dict[str, list[str]]:
    """rclone check --combined: "= path" the same, "* path" differs, "+ path" only at the
    source (missing at the destination), "- path" only at the destination, "! path" an error."""
    found: dict[str, list[str]] = {mark: [] for mark in "=*+-!"}
    for line in stdout.splitlines():
        if len(line) > 2 and line[0] in found and line[1] == " ":
            found[line[0]].append(line[2:])
    return found


def guard_counts(stdout: str, stderr: str) -> tuple[int, int, int] | None:
    """(files at the source, files at the destination, files a mirror would delete)."""
    found = _combined(stdout)
    source = len(found["="]) + len(found["*"]) + len(found["+"])
    dest = len(found["="]) + len(found["*"]) + len(found["-"])
    if found["!"] or (not source and not dest and "0 differences found" not in stderr):
        return None
    return source, dest, len(found["-"])


def verify_argv(job, settings, dest: str, extra: bool) -> list[str]:
    """Compare by content: --download reads every file on both sides (a hash is not enough
    where the two sides have none in common)."""
    interval = settings["progress_interval"]
    args = [settings["rclone_path"], "check", "--download", "--combined=-", "--retries=1", "--use-json-log"]
    args += [f"--stats={interval:g}s", "--stats-log-level=NOTICE"]
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rclone_args"]) + list(job.tool_args)
    return args + ["--", job.source, dest]


def verify_items(lines: list[str]) -> dict[str, list[str]]:
    found = _combined("\n".join(lines))
    return {"differ": found["*"] + found["!"], "missing": found["+"], "extra": found["-"]}


def dry_run_counts(stdout: str, stderr: str) -> tuple[int, int] | None:
    """(files, bytes) a run would send: a dry run counts the copies it skips as transfers in
    its closing stats record."""
    found = None
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if isinstance(stats, dict) and isinstance(stats.get("transfers"), int) and isinstance(stats.get("bytes"), int):
            found = (stats["transfers"], stats["bytes"])
    return found


CONFIG_MISSING = re.compile(r'Config file ".*" not found - using defaults')


def expected(line: str, stopped: bool) -> str | None:
    """Why a line the tool printed is expected noise, not a problem (the job log says so)."""
    if CONFIG_MISSING.search(line):
        return "no rclone.conf: fine for local paths and :backend: remotes"
    return None


def environment(base: dict) -> dict:
    return dict(base)


class Parser:
    def __init__(self) -> None:
        self._pending = {"out": "", "err": ""}
        self.last_error: str | None = None  # the stats' lastError, or the last error logged
        self.total_exact: int | None = None  # rclone never states the size of the whole tree
        self.sent_exact: int | None = None  # its stats' bytes are exact already
        self.files_exact: int | None = None  # rclone states no count of the files in scope
        self.cause: tuple[int, str] | None = None  # (rank, message): the most specific error
        self.files_seen = 0  # files the run copied or found already there (its stats' transfers + checks)
        self._last: Sample | None = None

    def feed(self, stream: str, data: bytes) -> tuple[list[Sample], list[str]]:
        text = self._pending[stream] + data.decode("utf-8", "replace")
        records = text.split("\n")
        self._pending[stream] = records.pop()
        return self._records(records)

    def finish(self) -> tuple[list[Sample], list[str]]:
        """What is left, and the last reading again, marked ``ended``: only finished files
        carry over to a resumed run (see Sample.settled)."""
        records = [self._pending["out"], self._pending["err"]]
        self._pending = {"out": "", "err": ""}
        samples, lines = self._records(records)
        if self._last is not None:
            samples.append(dataclasses.replace(self._last, ended=True))
            self._last = None
        return samples, lines

    def _records(self, records: list[str]) -> tuple[list[Sample], list[str]]:
        samples: list[Sample] = []
        lines: list[str] = []
        for record in records:
            record = record.strip()
            if not record:
                continue
            try:
                entry = json.loads(record)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                self._consider(_plain_rank(record), PLAIN.match(record)["msg"])
                lines.append(record)
                continue
            stats = entry.get("stats")
            if isinstance(stats, dict):
                samples.append(self._sample(stats))
                continue
            message = str(entry.get("msg", "")).strip()
            if entry.get("object"):
                message = f"{entry['object']}: {message}"
            level = str(entry.get("level", "info"))
            if level in ("error", "critical", "fatal"):
                self.last_error = message
                self._consider(SUMMARY if SUMMARIES.search(message) else LOGGED, message)
            lines.append(f"{level}: {message}")
        return samples, lines

    def _consider(self, rank: int | None, message: str) -> None:
        if rank is not None and (self.cause is None or rank < self.cause[0]):
            self.cause = (rank, message)

    def _sample(self, stats: dict) -> Sample:
        seen = int(stats.get("transfers") or 0) + int(stats.get("checks") or 0)
        self.files_seen = max(self.files_seen, seen)
        done = int(stats.get("bytes") or 0)
        total = int(stats.get("totalBytes") or 0)
        if stats.get("lastError"):
            self.last_error = str(stats["lastError"])
            self._consider(SUMMARY, self.last_error)
        transferring = [t for t in stats.get("transferring") or [] if isinstance(t, dict)]
        in_flight = sum(int(t.get("bytes") or 0) for t in transferring)
        # With --check-first the files to send are queued while the checks run, and totalBytes
        # grows with the queue: it is the run's total once the first transfer has begun.
        begun = done > 0 or bool(transferring) or int(stats.get("transfers") or 0) > 0
        self._last = Sample(
            bytes=done,
            total=total if begun or total == 0 else None,
            # An up-to-date run reports 0 of 0: nothing to do, not a division by zero.
            percent=(100.0 * done / total) if total else None,
            # Not "checked": with --check-first every check happens before the first byte moves.
            settled=max(done - in_flight, 0),
        )
        return self._last


def _plain_rank(line: str) -> int | None:
    """A line rclone printed as plain text (it gives up before, or outside, the JSON log)."""
    match = PLAIN.match(line)
    level, message = match["level"], match["msg"]
    if level in ("ERROR", "CRITICAL"):
        return SUMMARY if SUMMARIES.search(message) else LOGGED
    if level is None and FATAL_TEXT.match(message):
        return FATAL
    return None


def _cut(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def most_specific(lines: list[str], parser) -> str | None:
    """The error that best names the cause: what the parser saw over the whole run, or else
    the best of ``lines`` (as the parser turned them into text)."""
    best = getattr(parser, "cause", None)
    for line in lines:
        if line.startswith(("error: ", "critical: ", "fatal: ")):
            message = line.split(": ", 1)[1]
            level = SUMMARY if SUMMARIES.search(message) else LOGGED
        else:
            level, message = _plain_rank(line), PLAIN.match(line)["msg"]
        if level is not None and (best is None or level < best[0]):
            best = (level, message)
    return _cut(best[1]) if best else None


def outcome(code: int, lines: list[str], parser: Parser, job) -> Outcome:
    """What an exit code means for the run; ``lines`` are the messages rclone printed."""
    if code == 0:
        return Outcome("completed")
    if code < 0:
        message = f"rclone was killed by signal {-code}"
    else:
        message = f"rclone exit {code}: {MEANINGS.get(code, 'unknown error')}"
    detail = most_specific(lines, parser)
    return Outcome("failed", f"{message}: {detail}" if detail else message)
