"""rsync: argv, the --info=progress2 parser, exit codes.

Facts this relies on (shared/reference/rsync-rclone.md): progress records start with \r and
go to stdout through a pipe (never a pty); the percent counts transferred bytes over the size of
all files; numbers follow the locale unless LC_ALL=C; --partial-dir keeps interrupted files and
--no-W lets a local rerun reuse them.

rsync runs with incremental recursion (its default): it starts copying while it still lists the
tree, which on many small files is more than twice as fast as --no-inc-recursive (issue 11). Its
total then grows as folders are listed: records say "ir-chk=N/M" while the list grows and
"to-chk=N/M" once it is complete (rsync prints "to" once it has seen the end of the file list);
until then, and before the first such record, neither its total nor its percent is the run's
(see Sample.listing). A small tree is listed whole before the first byte moves; a big one (the
sender keeps 1,000 to 10,000 files ahead) well into the run.

And, from the captures in tests/data: the percent is truncated, (int)(100.0 * done / total), and
100 only when done == total, so every record bounds the total; the byte counter counts a file
whole, including the "matched" part rsync reuses from the destination (the partial file of a
resumed run) without sending it; a record with "(xfr#N, ...)" is printed as each file finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat

from bkm.model import is_remote
from bkmd.engines import Outcome, Sample

log = logging.getLogger("bkmd.rsync")
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
# New data rsync sent (not "Total transferred file size", which counts a file that vanished
# before it was sent, nor matched data a resumed or unchanged file reused).
LITERAL_DATA = re.compile(r"^Literal data: (?P<n>[\d.,]+) bytes")
FILE_COUNT = re.compile(r"^Number of files: (?P<n>[\d.,]+)")
VANISHED = "file has vanished: "
_SUFFIX = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5}
# The total is shown once the records pin it down to this fraction of itself: whatever later
# records say, the value shown then moves by at most half of that.
TOTAL_SPREAD = 0.02
ERROR_CHARS = 300  # an error line is cut to this length

# Which error line names the cause, best first. What the remote shell says (ssh's own messages,
# or what the far side printed instead of starting rsync) is the cause when rsync only saw the
# connection close; rsync's "rsync: ..." lines name a file and an errno; "connection
# unexpectedly closed", a broken pipe and rsync's closing "rsync error: ... (code N) at
# main.c(...)" only say that something failed.
REMOTE, RSYNC, OTHER, GENERIC, SUMMARY = range(5)
REMOTE_SHELL = re.compile(
    r"^(ssh|ssh_exchange_identification|kex_exchange_identification|banner exchange):"
    r"|Could not resolve hostname|Host key verification failed|Permission denied \(|"
    r"Connection (refused|timed out|reset|closed)|No route to host|Network is unreachable|"
    r"Too many authentication failures|Received disconnect|IDENTIFICATION HAS CHANGED|"
    r"command not found|: not found$|not implemented$",
    re.I,
)
CONSEQUENCE = re.compile(
    r"^rsync: (\[\w+\] )?(connection unexpectedly closed|safe_write failed|write error: Broken pipe)"
)
NOT_AN_ERROR = re.compile(r"^(file has vanished: |rsync warning: |Warning: |@)", re.I)

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
    255: "unexplained error (the remote shell failed)",
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
    """The run's argv: the job's own (``sources``/``dest`` default to its source and dest), a
    mirror (``delete``), a snapshot (``dest`` the new snapshot's folder, ``link_dest`` the
    previous one, relative to it), or a restore (the backup as ``sources``, with -R and
    ``filters`` off: the job's excludes chose what was backed up, not what comes back).
    ``keeper``: bkmd keeps the file in flight itself if it stops the run (keep_partial)."""
    if includes:
        raise ValueError("rsync restores paths as sources (SRC/./PATH with -R), not as includes")
    sources = sources or [job.source]
    dest = dest or job.dest
    both_local = not any(map(is_remote, sources)) and not is_remote(dest)
    args = [
        settings["rsync_path"],
        "-a",
        "--info=progress2",
        "--stats",  # at the end, the exact total ("Total file size") and what was sent
        "--no-h",
        "--outbuf=L",
        "-s",  # protect args: names never reach a remote shell's command line
    ]
    if not keeper:
        # rsync keeps a stopped file's data in .rsync-partial beside it, for the next run, and
        # then looks there for every file in scope, on every run: 4 us a file (a no-op run of
        # 100,000 files: 0.95 s against 0.55 s). So where bkmd can keep that data itself at a
        # stop (can_keep_partial), the option is only given to the run that picks it up.
        args.append(f"--partial-dir={PARTIAL_DIR}")
    else:
        # The rule --partial-dir adds: such folders are neither sent nor deleted (perishable:
        # unless the folder holding one is). A folder-only rule costs nothing measurable.
        args.append(f"--filter=-p {PARTIAL_DIR}/")
    if both_local and resume:
        # Local copies imply --whole-file, which throws partial data away: a resumed run needs
        # --no-W to build on it. Only that run: elsewhere the delta algorithm only costs (it
        # reads the old copy too), and an interrupted --whole-file run keeps its partial data.
        args.append("--no-W")
    if job.bwlimit:
        args.append(f"--bwlimit={job.bwlimit}")
    if delete:
        args.append("--delete")  # rsync protects its relative --partial-dir from it
    if link_dest:
        # A snapshot's folder is made inside DEST, which the first run makes too (rsync >= 3.2.3).
        args += ["--mkpath", f"--link-dest={link_dest}"]
    if not filters:
        args.append("--relative")  # SRC/./PATH arrives as DIR/PATH
    else:
        args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rsync_args"]) + list(job.tool_args)  # this job's own last: they can override
    # "--" ends options: no path can be read as one.
    return args + ["--", *sources, dest]


# Options with which rsync keeps (or places) unfinished files its own way: bkmd leaves it to them.
OWN_PARTIAL_OPTIONS = ("--partial", "--inplace", "--append", "--temp-dir", "--delay-updates")
OWN_PARTIAL_SHORT = "PT"  # -P (--partial --progress), -T DIR (--temp-dir), alone or in -avP
# rsync writes a file as ".NAME.XXXXXX" beside it (mkstemp) and renames it when complete. It
# drops a leading dot of NAME first, and cuts a long NAME short: the source tells which it was.
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9]{6}$", re.DOTALL)


def can_keep_partial(job, settings, dest: str | None = None) -> bool:
    """Whether bkmd can keep a stopped run's file in flight itself: both ends on this machine
    (a pull's receiver is local, but a dropped connection ends it without bkmd, and rsync must
    keep its own), and unfinished files handled in rsync's usual way (no option of the user's)."""
    args = list(settings["rsync_args"]) + list(job.tool_args)
    own = any(
        a.startswith(OWN_PARTIAL_OPTIONS) or (a[:1] == "-" and a[1:2] != "-" and any(c in a for c in OWN_PARTIAL_SHORT))
        for a in args
    )
    return not own and not is_remote(job.source) and not is_remote(dest or job.dest)


def keep_partial(written: list[str], dest: str, source: str, late=None) -> list[str]:
    """While the transfer is stopped (SIGSTOP), before it is ended: of the files its processes
    have open for writing (``written``), move each of rsync's temporary files under ``dest``
    (the run's destination folder) to where --partial-dir would have kept it, .rsync-partial/NAME
    in its folder, so that its data outlives the stop (rsync would delete it) and the next run,
    given --partial-dir and --no-W, builds on it. ``source`` is the run's source, which tells
    which file each is; once ``late`` (a threading.Event) is set, nothing more is moved (bkmd
    has ended the transfer without waiting). Returns what it kept (or an earlier stop kept
    more of); what it cannot keep is logged and left."""
    root = os.path.join(os.path.realpath(dest), "")
    kept = []
    for path in written:
        folder, temp = os.path.split(path)
        match = TEMP_NAME.match(temp)
        if not match or not os.path.join(folder, "").startswith(root):
            continue
        relative = os.path.relpath(folder, root)
        name = _source_name(source, relative, match["name"])
        if name is None:
            log.info("not keeping %s: no one file of the source has its name", path)
            continue
        if late is not None and late.is_set():
            break
        try:
            if _move_partial(folder, temp, name):
                kept.append(os.path.join(folder, PARTIAL_DIR, name))
        except OSError as e:
            log.warning("could not keep %s for the next run: %s", path, e.strerror or e)
    return kept


def _source_name(source: str, relative: str, name: str) -> str | None:
    # "SRC/" copies SRC's content into DEST; "SRC" copies the folder (or file) itself.
    base = source if source.endswith("/") else os.path.dirname(source.rstrip("/"))
    folder = os.path.normpath(os.path.join(base, relative))
    found = []
    for candidate in (name, "." + name):
        try:
            if stat.S_ISREG(os.lstat(os.path.join(folder, candidate)).st_mode):
                found.append(candidate)
        except OSError:
            pass
    return found[0] if len(found) == 1 else None


def _move_partial(folder: str, temp: str, name: str) -> bool:
    # Through folder descriptors that follow no symbolic link in the last step (bkmd runs
    # this only for its own transfers: it has rsync's rights there). A rename, not a link: it
    # works on every file system (vfat has no links), and rsync, stopped, finds no file to
    # delete when it ends. .rsync-partial is made as rsync makes it (0700).
    where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        size = os.stat(temp, dir_fd=where, follow_symlinks=False).st_size
        if size == 0:
            return False
        try:
            os.mkdir(PARTIAL_DIR, 0o700, dir_fd=where)
        except FileExistsError:
            pass
        partial = os.open(PARTIAL_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=where)
        try:
            try:
                if os.stat(name, dir_fd=partial, follow_symlinks=False).st_size >= size:
                    return True  # an earlier stop kept more of it: that is what the next run takes
            except FileNotFoundError:
                pass
            os.rename(temp, name, src_dir_fd=where, dst_dir_fd=partial)
            return True
        finally:
            os.close(partial)
    finally:
        os.close(where)


# Exit codes of failures that may pass by themselves (the network, the remote shell, a timeout):
# worth a retry. The others (a missing file, permissions, a full disk) fail the same way again.
TRANSIENT = frozenset({10, 12, 30, 35, 255})
DRY_FILES = re.compile(r"^Number of regular files transferred: (?P<n>[\d.,]+)")
DRY_BYTES = re.compile(r"^Total transferred file size: (?P<n>[\d.,]+) bytes")


def dry_run_argv(job, settings) -> list[str]:
    """rsync's own dry run with the job's filters and arguments: what a run would send."""
    args = [settings["rsync_path"], "-a", "-n", "--stats", "--no-h", "-s"]
    args += [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rsync_args"]) + list(job.tool_args)  # this job's own last: they can override
    # A snapshot's run sends what its latest snapshot does not have.
    dest = job.dest.rstrip("/") + "/latest/" if getattr(job, "mode", "copy") == "snapshot" else job.dest
    return args + ["--", job.source, dest]


# A dry run that counted what it would send: 24 is a file that vanished while it looked.
DRY_RUN_OK = frozenset({0, 24})
GUARD_OK = DRY_RUN_OK


def verify_complete(code: int | None, lines: list[str]) -> bool:
    """Whether rsync compared everything (24: a source file vanished meanwhile)."""
    return code in DRY_RUN_OK


def guard_argv(job, settings) -> list[str]:
    """A mirror run's own dry run: its --stats count what it would delete."""
    return dry_run_argv(job, settings)[:-3] + ["--delete", "--", job.source, job.dest]


STATS_COUNT = re.compile(
    r"^Number of (?P<what>files|created files|deleted files): (?P<n>[\d.,]+)(?: \((?P<kinds>.*)\))?$"
)
REGULAR = re.compile(r"\breg: (?P<n>[\d.,]+)")


def guard_counts(stdout: str, stderr: str) -> tuple[int, int, int] | None:
    """(files at the source, files at the destination, files a mirror would delete), regular
    files only, from a dry run's --stats; None if they are not there. The destination's count
    follows from rsync's: what the source has, less what would be created there, plus what
    would be deleted there."""
    found = {}
    for line in stdout.splitlines():
        if (match := STATS_COUNT.match(line)) is not None:
            regular = REGULAR.search(match["kinds"] or "")
            found[match["what"]] = _integer(regular["n"]) if regular else 0
    if len(found) < 3:
        return None
    source, created, deleted = found["files"], found["created files"], found["deleted files"]
    return source, source - created + deleted, deleted


TRANSFERRED_SIZE = re.compile(r"^Total transferred file size: (?P<n>[\d.,]+) bytes")


def snapshot_stats(lines: list[str]) -> dict | None:
    """A finished snapshot's {"files", "bytes", "new_bytes"} from the run's --stats: its
    regular files, their size, and the size of those written anew rather than hard-linked to
    the snapshot before it (what it holds that the one before does not)."""
    found: dict = {}
    for line in lines:
        if (match := STATS_COUNT.match(line)) is not None and match["what"] == "files":
            regular = REGULAR.search(match["kinds"] or "")
            found["files"] = _integer(regular["n"]) if regular else 0
        elif (match := TOTAL_SIZE.match(line)) is not None:
            found["bytes"] = _integer(match["n"])
        elif (match := TRANSFERRED_SIZE.match(line)) is not None:
            found["new_bytes"] = _integer(match["n"])
    return found if len(found) == 3 else None


def verify_argv(job, settings, dest: str, extra: bool) -> list[str]:
    """Compare by checksum without changing anything: rsync reads every file on both sides and
    itemizes what differs; with ``extra`` (a mirror) what only the destination has, too."""
    args = [settings["rsync_path"], "-a", "-n", "--checksum", "--itemize-changes", "--info=progress2", "--stats"]
    args += ["--no-h", "--outbuf=L", "-s"]
    if extra:
        args.append("--delete")
    # What an interrupted run keeps for the next one is no difference of the backup's.
    args += [f"--exclude={PARTIAL_DIR}/"] + [f"--exclude={pattern}" for pattern in job.excludes]
    args += list(settings["rsync_args"]) + list(job.tool_args)
    return args + ["--", job.source, dest]


ITEM = re.compile(r"^(?P<kind>[<>ch.])(?P<type>[fLDS])(?P<flags>\S{9}) (?P<name>.+)$")
DELETING = re.compile(r"^\*deleting +(?P<name>.+)$")


def verify_items(lines: list[str]) -> dict[str, list[str]]:
    """{"differ", "missing", "extra"} from itemized lines: a file to be created is missing at
    the backup, one whose checksum or size differs ("c" or "s") differs; one rsync would delete
    is extra. A change of time or permissions only is not a difference of content."""
    found: dict[str, list[str]] = {"differ": [], "missing": [], "extra": []}
    for line in lines:
        if (match := DELETING.match(line)) is not None:
            if not match["name"].endswith("/"):
                found["extra"].append(match["name"])
            continue
        match = ITEM.match(line)
        if match is None:
            continue
        name = match["name"].split(" -> ")[0] if match["type"] == "L" else match["name"]
        if match["flags"].startswith("+"):
            found["missing"].append(name)
        elif match["type"] == "f" and (match["flags"][0] == "c" or match["flags"][1] == "s"):
            found["differ"].append(name)
    return found


def dry_run_counts(stdout: str, stderr: str) -> tuple[int, int] | None:
    """(files, bytes) a run would send, from a dry run's --stats; None if they are not there."""
    files = size = None
    for line in stdout.splitlines():
        if (match := DRY_FILES.match(line)) is not None:
            files = _integer(match["n"])
        elif (match := DRY_BYTES.match(line)) is not None:
            size = _integer(match["n"])
    return None if files is None or size is None else (files, size)


FIRST_SNAPSHOT = re.compile(r"^--link-dest arg does not exist: .*/\.\./latest$")
STOPPED = re.compile(r"received SIGINT, SIGTERM, or SIGHUP|\(code 20\)|rsync: \[\w+\] .*(signal|code 20)")


def expected(line: str, stopped: bool) -> str | None:
    """Why a line the tool printed is expected noise, not a problem (the job log says so)."""
    if stopped and STOPPED.search(line):
        return "bkm stopped the transfer, as asked"
    if FIRST_SNAPSHOT.match(line):
        return "the first snapshot: nothing to hard-link to yet"
    return None


def environment(base: dict) -> dict:
    env = {k: v for k, v in base.items() if k not in ("RSYNC_PROTECT_ARGS", "RSYNC_OLD_ARGS")}
    env["LC_ALL"] = "C.UTF-8"  # bare digits, a dot for decimals
    return env


def _integer(text: str) -> int:
    if text[-1] in _SUFFIX:
        return int(float(text[:-1].replace(",", ".")) * _SUFFIX[text[-1]])
    return int(text.replace(",", "").replace(".", ""))


def rank(line: str, stream: str | None = None) -> int | None:
    """How specific an error line is (lower is better), None for a line that is no error.
    ``stream``, when known: errors go to stderr (stdout has the statistics and, with -v, file
    names), and a line there that rsync did not write comes from the remote shell or the far side."""
    if stream == "out" or NOT_AN_ERROR.match(line):
        return None
    if line.startswith("rsync error:"):
        return SUMMARY
    if CONSEQUENCE.match(line):
        return GENERIC
    if line.startswith("rsync:") or "failed:" in line:
        return RSYNC
    if REMOTE_SHELL.search(line):
        return REMOTE
    if stream == "err" and not line.startswith("rsync"):
        return OTHER
    return None


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
        # The data rsync sent (its --stats "Literal data"), when it got that far.
        self.sent_exact: int | None = None
        self.files_exact: int | None = None  # files and folders in scope (--stats)
        # What the records prove about the total: low <= total <= high (high None: no bound yet).
        self._low = 0
        self._high: int | None = None
        self._estimate: int | None = None  # the total shown, kept while the bounds allow it
        # Whether rsync's file list is complete: only a "to-chk" record says so (or an "xfer#N,
        # to-check=" one, from an rsync without incremental recursion). Before the first record
        # with a chk part, which comes only when a file or a folder's list is finished, and while
        # records say "ir-chk", the total still grows.
        self._listed = False
        self._settled = 0  # the counter at the end of the last finished file
        self._last: Sample | None = None
        self.cause: tuple[int, str] | None = None  # (rank, line): the most specific error line

    def feed(self, stream: str, data: bytes) -> tuple[list[Sample], list[str]]:
        text = self._pending[stream] + data.decode("utf-8", "replace")
        records = text.replace("\r", "\n").split("\n")
        tail = records.pop()
        self._pending[stream] = tail
        samples, lines = self._records(stream, records)
        match = PROGRESS.match(tail)
        if match and tail != self._used_early[stream]:
            samples.append(self._sample(match))
            self._used_early[stream] = tail
        return samples, lines

    def finish(self) -> tuple[list[Sample], list[str]]:
        """What is left, and the last reading again, marked ``ended``: only finished files
        carry over to a resumed run (see Sample.settled)."""
        samples, lines = [], []
        for stream in ("out", "err"):
            more, text = self._records(stream, [self._pending[stream]])
            samples += more
            lines += text
        self._pending = {"out": "", "err": ""}
        if self._last is not None:
            last = dataclasses.replace(self._last, settled=self._settled, ended=True)
            if self.total_exact is not None:
                last.total = last.total_low = last.total_high = self.total_exact
                last.listing = False
            samples.append(last)
            self._last = None
        return samples, lines

    def _records(self, stream: str, records: list[str]) -> tuple[list[Sample], list[str]]:
        samples: list[Sample] = []
        lines: list[str] = []
        # rsync prints a record per finished file: 100,000 of them on a tree of small files.
        # Of a run of records read together only the last one, and the last one that ends a
        # file (its counter is what a resumed run keeps), change what is shown; matching and
        # sampling each one cost bkmd a fifth of the transfer's CPU. So a run of records shaped
        # like progress (rsync right-aligns the counter: a record starts with a space) is
        # gathered and only those two are parsed; should one of them not parse, every record of
        # the run is looked at, so that no message is ever taken for progress.
        run: list[str] = []
        for record in records:
            if record == self._used_early[stream]:
                self._used_early[stream] = ""
                continue
            if (record[:1] == " " and "%" in record) or (record[:1].isdigit() and PROGRESS.match(record)):
                run.append(record)  # the latter: a counter as wide as its column (a petabyte)
                continue
            if run:
                self._progress(stream, run, samples, lines)
                run = []
            if record.strip():
                self._message(stream, record, lines)
        if run:
            self._progress(stream, run, samples, lines)
        return samples, lines

    def _progress(self, stream: str, run: list[str], samples: list[Sample], lines: list[str]) -> None:
        last = PROGRESS.match(run[-1])
        finished = next((record for record in reversed(run) if "(xf" in record), None)
        finished_match = PROGRESS.match(finished) if finished is not None else None
        if last is not None and (finished is None or finished_match is not None):
            if finished_match is not None and finished is not run[-1]:
                samples.append(self._sample(finished_match))
            samples.append(self._sample(last))
            return
        for record in run:
            match = PROGRESS.match(record)
            if match:
                samples.append(self._sample(match))
            else:
                self._message(stream, record, lines)

    def _message(self, stream: str, record: str, lines: list[str]) -> None:
        total = TOTAL_SIZE.match(record)
        if total:
            self.total_exact = _integer(total["n"])
        literal = LITERAL_DATA.match(record)
        if literal:
            self.sent_exact = _integer(literal["n"])
        files = FILE_COUNT.match(record)
        if files:
            self.files_exact = _integer(files["n"])
        line = record.rstrip()
        level = rank(line, stream)
        if level is not None and (self.cause is None or level < self.cause[0]):
            self.cause = (level, line)
        lines.append(line)

    def _sample(self, match: re.Match) -> Sample:
        done = _integer(match["bytes"])
        pct = int(match["pct"])
        if match["chk_kind"] == "to" and not self._listed:
            # The list is complete from now on: what the records said of the partial list bounds
            # the total from below only, so the bounds start again from this record.
            self._listed = True
            self._low, self._high, self._estimate = 0, None, None
        self._bound(done, pct)
        if match["xfr"]:
            self._settled = done  # printed as a file finishes: everything counted so far is done
        checked = None
        if match["chk_total"]:
            # Of the files listed so far (with "ir-chk" the list, and so this fraction, can still
            # fall): runs.py's stall watchdog counts any change as progress.
            total_files = int(match["chk_total"])
            checked = (total_files - int(match["chk_left"])) / total_files if total_files else 1.0
        listing = not self._listed and self.total_exact is None
        self._last = Sample(
            bytes=done,
            total=self._total(),
            percent=float(pct),
            checked=checked,
            settled=self._settled,
            total_low=self._low if self.total_exact is None else self.total_exact,
            total_high=None if listing else self._high if self.total_exact is None else self.total_exact,
            listing=listing,
        )
        return self._last

    def _bound(self, done: int, pct: int) -> None:
        """Narrow the bounds on the total with one record: pct <= 100*done/total < pct+1.

        While rsync still lists files, that total is only the part listed so far: it bounds the
        run's total from below (the list only grows), never from above."""
        if pct >= 100:
            low = high = done
        else:
            low = max(done, done * 100 // (pct + 1))  # one byte of slack for rsync's doubles
            high = done * 100 // pct + 1 if pct else None
        if not self._listed:  # the total still grows: only this record's own lower bound holds
            self._low, self._high, self._estimate = low, None, None
            return
        new_low = max(self._low, low)
        new_high = high if self._high is None else (self._high if high is None else min(self._high, high))
        if new_high is not None and new_low > new_high:  # the tree changed under rsync: start again
            self._low, self._high, self._estimate = low, high, None
        else:
            self._low, self._high = new_low, new_high

    def _total(self) -> int | None:
        if self.total_exact is not None:
            return self.total_exact
        if self._high is None or not self._listed:
            return None
        if self._high - self._low > TOTAL_SPREAD * self._high:
            return None
        if self._estimate is None:
            self._estimate = (self._low + self._high) // 2
        else:
            # Kept while possible; else moved to the nearest possible value: every move is then
            # towards the true total, so in all it moves at most half the spread.
            self._estimate = min(max(self._estimate, self._low), self._high)
        return self._estimate


VANISHED_SHOWN = 10  # the first vanished files named as warnings; the log has them all


def _cut(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def most_specific(lines: list[str], parser) -> str | None:
    """The error line that best names the cause: what the parser saw over the whole run
    (it knows which lines came from stderr), or else the best of ``lines``."""
    best = parser.cause
    for line in lines:
        level = rank(line)
        if level is not None and (best is None or level < best[0]):
            best = (level, line)
    return _cut(best[1]) if best else None


def outcome(code: int, lines: list[str], parser: Parser, job) -> Outcome:
    """What an exit code means for the run; ``lines`` are the messages rsync printed."""
    if code == 0:
        return Outcome("completed")
    detail = most_specific(lines, parser)
    if code == 24:
        # A missing source root also exits 24 when a file vanished too: that is a failure.
        source = job.source.rstrip("/")
        missing = [line for line in lines if "link_stat" in line and source in line]
        if missing:
            return Outcome("failed", _error(code, _cut(missing[0])))
        # One warning per vanished file (the first few; the log has them all).
        vanished = [line[line.index(VANISHED) :] for line in lines if VANISHED in line]
        warnings = vanished[:VANISHED_SHOWN] or [f"rsync exit 24: {MEANINGS[24]}"]
        if len(vanished) > VANISHED_SHOWN:
            warnings.append(f"and {len(vanished) - VANISHED_SHOWN} more vanished files (bkm logs JOB)")
        return Outcome("completed", warnings=warnings)
    return Outcome("failed", _error(code, detail))


def _error(code: int, detail: str | None) -> str:
    if code < 0:
        message = f"rsync was killed by signal {-code}"
    else:
        message = f"rsync exit {code}: {MEANINGS.get(code, 'unknown error')}"
    return f"{message}: {detail}" if detail else message
