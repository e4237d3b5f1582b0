"""Per-job log files: one line per event with a UTC timestamp, rotated by size."""

from __future__ import annotations

import logging
import os

from bkmd.job import now

log = logging.getLogger("bkmd.logs")


class JobLogs:
    def __init__(self, folder: str, settings) -> None:
        self.folder = folder
        self.settings = settings
        self.listeners: list = []  # callables(job_id, line): live followers
        self._folder_made = False
        self.removed: set[str] = set()  # ids of deleted jobs (never reused)

    def path(self, job_id: str) -> str:
        return os.path.join(self.folder, f"{job_id}.log")

    def write(self, job_id: str, message: str, level: str = "info") -> None:
        if job_id in self.removed:  # a deleted job's late hook or delivery: no log again
            return
        # One record is one line, whatever the tool printed.
        text = message.replace("\r", " ").replace("\n", " ")
        line = f"{now()} {level} {text}"
        data = (line + "\n").encode("utf-8", "replace")
        path = self.path(job_id)
        try:
            if not self._folder_made:
                os.makedirs(self.folder, mode=0o700, exist_ok=True)
                self._folder_made = True
            self._rotate_if_needed(path, len(data))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            log.error("cannot write the log of job %s: %s", job_id, e)
        for listener in list(self.listeners):
            listener(job_id, line)

    def _rotate_if_needed(self, path: str, incoming: int) -> None:
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.settings["log_max_bytes"]:
            return
        backups = self.settings["log_backups"]
        if backups == 0:
            os.unlink(path)
            return
        for n in range(backups - 1, 0, -1):
            older = f"{path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{path}.{n + 1}")
        os.replace(path, f"{path}.1")

    def tail(self, job_id: str, limit: int = 10_000) -> str:
        """The end of the job's log from its last run's start, at most ``limit`` bytes of whole
        lines (a ping's and a notification's body)."""
        taken, _ = self.read(job_id, 200, None)
        lines = [line for _, _, line in taken]
        starts = [i for i, line in enumerate(lines) if " run started" in line]
        text = "\n".join(lines[starts[-1] :] if starts else lines)
        return text.encode("utf-8")[-limit:].decode("utf-8", "ignore").partition("\n")[2] if len(text) > limit else text

    def files(self, job_id: str) -> list[str]:
        """The job's log and its rotated predecessors, newest first."""
        path = self.path(job_id)
        found = [path] if os.path.exists(path) else []
        n = 1
        while os.path.exists(f"{path}.{n}"):
            found.append(f"{path}.{n}")
            n += 1
        return found

    def read(self, job_id: str, count: int, cursor: list | None) -> tuple[list[tuple[int, int, str]], list | None]:
        """The ``count`` lines before ``cursor`` ([file index, offset]; None: the newest), oldest
        first as (file index, offset, line), across rotated files; and the cursor for the page
        before, None when the log has nothing older."""
        files = self.files(job_id)
        index, end = (cursor[0], cursor[1]) if cursor else (0, None)
        taken: list[tuple[int, int, str]] = []
        while len(taken) < count and index < len(files):
            got, first = lines_before(files[index], end, count - len(taken))
            taken = [(index, offset, line) for offset, line in got] + taken
            if len(taken) < count or first == 0:
                index, end = index + 1, None
            else:
                end = first
        if len(taken) < count and index >= len(files):
            return taken, None
        earliest = taken[0] if taken else None
        if earliest is None:
            return taken, None
        if earliest[1] == 0:
            return taken, ([earliest[0] + 1, None] if earliest[0] + 1 < len(files) else None)
        return taken, [earliest[0], earliest[1]]

    def read_merged(self, jobs: list, count: int, before: dict | None) -> tuple[list[tuple], dict | None]:
        """The ``count`` newest lines of all ``jobs``' logs in time order, as (job, line); and
        the cursor for the page before: each job whose log has more to show mapped to its
        position (None: from its newest line). A job missing from ``before`` is done."""
        pages = {}
        candidates = []
        for job in jobs:
            if before is not None and job.id not in before:
                continue
            start = before.get(job.id) if before else None
            taken, following = self.read(job.id, count, start)
            pages[job.id] = (start, taken, following)
            candidates += [(text[:20], n, job, text) for n, (_, _, text) in enumerate(taken)]
        candidates.sort(key=lambda c: c[0])  # by timestamp; stable, so each job keeps its order
        chosen = candidates[-count:]
        first_chosen: dict[str, int] = {}
        for _, n, job, _ in chosen:
            first_chosen[job.id] = min(n, first_chosen.get(job.id, n))
        cursors: dict = {}
        for job_id, (start, taken, following) in pages.items():
            if job_id not in first_chosen:
                if taken:
                    cursors[job_id] = start  # nothing of it shown yet: the same place next time
            elif first_chosen[job_id] == 0:
                if following is not None:
                    cursors[job_id] = following
            else:
                index, offset, _ = taken[first_chosen[job_id]]
                cursors[job_id] = [index, offset]
        return [(job, text) for _, _, job, text in chosen], cursors or None

    def remove(self, job_id: str) -> None:
        """A deleted job's log and all its rotated files."""
        self.removed.add(job_id)
        for path in self.files(job_id):
            try:
                os.unlink(path)
            except OSError as e:
                log.error("cannot remove %s: %s", path, e)


BLOCK = 65536


def lines_before(path: str, end: int | None, count: int) -> tuple[list[tuple[int, str]], int]:
    """Up to ``count`` lines before byte ``end`` of ``path`` (None: its end), oldest first, each
    with its offset; and the offset of the earliest, to continue from. Reads backwards from
    ``end``, so the cost follows ``count``, not the size of the file."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return [], 0
    lines: list[tuple[int, bytes]] = []
    with f:
        size = os.fstat(f.fileno()).st_size
        position = size if end is None else min(end, size)
        buffer = b""
        while position > 0 and len(lines) < count:
            start = max(0, position - BLOCK)
            f.seek(start)
            buffer = f.read(position - start) + buffer
            position = start
            if position > 0:
                cut = buffer.find(b"\n")
                if cut < 0:
                    continue  # no whole line yet: read further back
                head, body, offset = buffer[: cut + 1], buffer[cut + 1 :], position + cut + 1
            else:
                head, body, offset = b"", buffer, 0
            found = []
            for part in body.split(b"\n"):
                if part:
                    found.append((offset, part))
                offset += len(part) + 1
            lines = found + lines
            buffer = head
    lines = lines[-count:] if count > 0 else []
    first = lines[0][0] if lines else 0
    return [(offset, part.decode("utf-8", "replace")) for offset, part in lines], first
