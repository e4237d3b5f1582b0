"""rsync: argv, the --info=progress2 parser, exit codes.

Facts this relies on (shared/reference/rsync-rclone.md): progress records start with \r and
go to stdout through a pipe (never a pty); --no-inc-recursive gives the total up front;
the percent counts transferred bytes over the size of all files; numbers follow the locale
unless LC_ALL=C; --partial-dir keeps interrupted files and --no-W lets a local rerun reuse them.
"""

from __future__ import annotations

import re

from bkm.model import is_remote
from bkmd.engines import Outcome, Sample

PARTIAL_DIR = ".rsync-partial"
# progress2 counts against the size of every file, not just what this run sends.
TOTAL_COVERS_TREE = True

PROGRESS = re.compile(
    r"""^\s*
    (?P<bytes>\d[\d.,]*[KMGTP]?)\s+
    (?P<pct>\d{1,3})%\s+
    (?P<rate>-?[\d.,]+|\?+)(?P<rate_unit>[kMGT]B/s)\s+
    (?P<time>\d+:\d{2}:\d{2}|\?\?:\?\?:\?\?)
    (?:\s+\(xfe?r\#(?P<xfr>\d+),\s+(?P<chk_kind>ir|to)-ch(?:ec)?k=(?P<chk_left>\d+)/(?P<chk_total>\d+)\))?
    \s*$""",
    re.X,
)
TOTAL_SIZE = re.compile(r"^Total file size: (?P<n>[\d.,]+) bytes")
_SUFFIX = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5}

MEANINGS = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or folders",
    4: "requested action not supported",
    5: "error starting client-server protocol",
    6: "daemon unable to append to log file",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    15: "sibling process crashed",
    16: "sibling process terminated abnormally",
    19: "received SIGUSR1",
    20: "stopped by a signal (SIGINT, SIGTERM or SIGHUP)",
    21: "some error returned by waitpid()",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
}


def argv(job, settings) -> list[str]:
    both_local = not is_remote(job.source) and not is_remote(job.dest)
    args = [
        settings["rsync_path"],
        "-a",
        "--info=progress2",
        "--no-inc-recursive",
        "--stats",
        "--no-h",
        "--outbuf=L",
        "-s",  # protect args: names never reach a remote shell's command line
        f"--partial-dir={PARTIAL_DIR}",
    ]
    if both_local:
        # Local copies imply --whole-file, which throws partial data away: resume needs --no-W.
        args.append("--no-W")
    if job.bwlimit:
        args.append(f"--bwlimit={job.bwlimit}")
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rsync_args"])
    # "--" ends options: no path can be read as one.
    return args + ["--", job.source, job.dest]


def environment(base: dict) -> dict:
    env = {k: v for k, v in base.items() if k not in ("RSYNC_PROTECT_ARGS", "RSYNC_OLD_ARGS")}
    env["LC_ALL"] = "C.UTF-8"  # bare digits, a dot for decimals
    return env


def _integer(text: str) -> int:
    if text[-1] in _SUFFIX:
        return int(float(text[:-1].replace(",", ".")) * _SUFFIX[text[-1]])
    return int(text.replace(",", "").replace(".", ""))


class Parser:
    """Splits rsync's output into progress samples and message lines; keeps partial records.

    A progress record begins with \r and is only known to be complete when the next one
    begins, a second later. A trailing record that already parses is used at once (and
    not again when the next \r confirms it), so progress is never a second behind.
    """

    def __init__(self) -> None:
        self._pending = {"out": "", "err": ""}
        self._used_early = {"out": "", "err": ""}
        self.total_exact: int | None = None
        self._best_total: tuple[int, int] | None = None  # (pct, estimate) at the highest pct

    def feed(self, stream: str, data: bytes) -> tuple[list[Sample], list[str]]:
        text = self._pending[stream] + data.decode("utf-8", "replace")
        records = re.split(r"[\r\n]", text)
        tail = records.pop()
        self._pending[stream] = tail
        samples, lines = self._records(stream, records)
        match = PROGRESS.match(tail)
        if match and tail != self._used_early[stream]:
            samples.append(self._sample(match))
            self._used_early[stream] = tail
        return samples, lines

    def finish(self) -> tuple[list[Sample], list[str]]:
        samples, lines = [], []
        for stream in ("out", "err"):
            more, text = self._records(stream, [self._pending[stream]])
            samples += more
            lines += text
        self._pending = {"out": "", "err": ""}
        return samples, lines

    def _records(self, stream: str, records: list[str]) -> tuple[list[Sample], list[str]]:
        samples: list[Sample] = []
        lines: list[str] = []
        for record in records:
            if record == self._used_early[stream]:
                self._used_early[stream] = ""
                continue
            if not record.strip():
                continue
            match = PROGRESS.match(record)
            if match:
                samples.append(self._sample(match))
                continue
            total = TOTAL_SIZE.match(record)
            if total:
                self.total_exact = _integer(total["n"])
            lines.append(record.rstrip())
        return samples, lines

    def _sample(self, match: re.Match) -> Sample:
        done = _integer(match["bytes"])
        pct = int(match["pct"])
        if pct >= 1 and (self._best_total is None or pct >= self._best_total[0]):
            # rsync truncates the percent: the total lies between done*100/(pct+1) and done*100/pct.
            self._best_total = (pct, int(done * 100 / (pct + 0.5)) if pct < 100 else done)
        checked = None
        if match["chk_total"] and match["chk_kind"] == "to":
            total_files = int(match["chk_total"])
            checked = (total_files - int(match["chk_left"])) / total_files if total_files else 1.0
        total = self.total_exact or (self._best_total[1] if self._best_total else None)
        return Sample(bytes=done, total=total, percent=float(pct), checked=checked)


def outcome(code: int, lines: list[str], parser: Parser, job) -> Outcome:
    """What an exit code means for the run; ``lines`` are the messages rsync printed."""
    source = job.source
    errors = [line for line in lines if line.startswith(("rsync:", "rsync error:")) or "failed:" in line]
    detail = next((line for line in errors if not line.startswith("rsync error:")), errors[-1] if errors else None)
    if code == 0:
        return Outcome("completed")
    if code == 24:
        # A missing source root also exits 24 when a file vanished too: that is a failure.
        if any("link_stat" in line and source.rstrip("/") in line for line in lines):
            return Outcome("failed", _error(code, detail))
        return Outcome("completed", warnings=[f"rsync exit 24: {MEANINGS[24]}" + (f" ({detail})" if detail else "")])
    return Outcome("failed", _error(code, detail))


def _error(code: int, detail: str | None) -> str:
    if code < 0:
        message = f"rsync was killed by signal {-code}"
    else:
        message = f"rsync exit {code}: {MEANINGS.get(code, 'unknown error')}"
    return f"{message}: {detail}" if detail else message
