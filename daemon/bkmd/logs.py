"""Per-job log files: one line per event with a UTC timestamp, rotated by size."""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("bkmd.logs")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class JobLogs:
    def __init__(self, folder: str, settings) -> None:
        self.folder = folder
        self.settings = settings
        self.listeners: list = []  # callables(job_id, line): live followers

    def path(self, job_id: str) -> str:
        return os.path.join(self.folder, f"{job_id}.log")

    def write(self, job_id: str, message: str, level: str = "info") -> None:
        # One record is one line, whatever the tool printed.
        text = message.replace("\r", " ").replace("\n", " ")
        line = f"{stamp()} {level} {text}"
        data = (line + "\n").encode("utf-8", "replace")
        path = self.path(job_id)
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
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

    def remove(self, job_id: str) -> None:
        path = self.path(job_id)
        for candidate in [path] + [f"{path}.{n}" for n in range(1, self.settings["log_backups"] + 2)]:
            try:
                os.unlink(candidate)
            except FileNotFoundError:
                pass
