"""rclone: argv, the --use-json-log stats parser, exit codes.

Facts this relies on (shared/reference/rsync-rclone.md): with --use-json-log every log line on
stderr is one JSON object and stats records carry a "stats" object; --check-first makes
totalBytes exact before transfers start; an up-to-date run reports totalBytes 0; rclone
retries the whole copy 3 times unless told --retries 1.
"""

from __future__ import annotations

import json

from bkmd.engines import Outcome, Sample

# totalBytes counts only what this run has to send.
TOTAL_COVERS_TREE = False

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


def argv(job, settings) -> list[str]:
    interval = settings["progress_interval"]
    args = [
        settings["rclone_path"],
        "copy",
        "--use-json-log",
        f"--stats={interval:g}s",
        "--stats-log-level=NOTICE",
        "--retries=1",  # bkm decides about retrying, not rclone behind its back
        "--check-first",  # the total is known before the first byte moves
    ]
    if job.bwlimit:
        args.append(f"--bwlimit={job.bwlimit}")  # a bare number is KiB/s
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rclone_args"])
    return args + ["--", job.source, job.dest]


def environment(base: dict) -> dict:
    return dict(base)


class Parser:
    def __init__(self) -> None:
        self._pending = {"out": "", "err": ""}
        self.last_error: str | None = None
        self.total_exact: int | None = None  # rclone never states the size of the whole tree

    def feed(self, stream: str, data: bytes) -> tuple[list[Sample], list[str]]:
        text = self._pending[stream] + data.decode("utf-8", "replace")
        records = text.split("\n")
        self._pending[stream] = records.pop()
        return self._records(records)

    def finish(self) -> tuple[list[Sample], list[str]]:
        records = [self._pending["out"], self._pending["err"]]
        self._pending = {"out": "", "err": ""}
        return self._records(records)

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
            if level == "error":
                self.last_error = message
            lines.append(f"{level}: {message}")
        return samples, lines

    def _sample(self, stats: dict) -> Sample:
        done = int(stats.get("bytes") or 0)
        total = int(stats.get("totalBytes") or 0)
        if stats.get("lastError"):
            self.last_error = str(stats["lastError"])
        return Sample(
            bytes=done,
            total=total,
            # An up-to-date run reports 0 of 0: nothing to do, not a division by zero.
            percent=(100.0 * done / total) if total else None,
            # Not "checked": with --check-first every check happens before the first byte moves.
        )


def outcome(code: int, lines: list[str], parser: Parser, job) -> Outcome:
    """What an exit code means for the run; ``lines`` are the messages rclone printed."""
    last_error = parser.last_error
    if code == 0:
        return Outcome("completed")
    if code < 0:
        message = f"rclone was killed by signal {-code}"
    else:
        message = f"rclone exit {code}: {MEANINGS.get(code, 'unknown error')}"
    detail = last_error or next((line for line in reversed(lines) if line.startswith(("error:", "critical:"))), None)
    return Outcome("failed", f"{message}: {detail}" if detail else message)
