"""The queue of jobs waiting for a free slot: one ordered structure, oldest first."""

from __future__ import annotations


class RunQueue:
    """Job ids in the order they were queued, each with whether its run resumes."""

    def __init__(self) -> None:
        self._waiting: dict[str, bool] = {}  # dicts keep insertion order

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._waiting

    def add(self, job_id: str, resume: bool) -> None:
        self._waiting[job_id] = resume

    def remove(self, job_id: str) -> bool | None:
        """Take a job out of the queue; its resume flag, or None when it was not queued."""
        return self._waiting.pop(job_id, None)

    def put_back(self, job_id: str, resume: bool, position: int) -> None:
        """Return a job to where it was (undoing a removal)."""
        items = list(self._waiting.items())
        items.insert(position, (job_id, resume))
        self._waiting = dict(items)

    def position(self, job_id: str) -> int | None:
        for index, waiting in enumerate(self._waiting):
            if waiting == job_id:
                return index
        return None

    def pop(self) -> tuple[str, bool]:
        job_id = next(iter(self._waiting))
        return job_id, self._waiting.pop(job_id)

    def items(self) -> list[tuple[str, bool]]:
        """(job id, resume) oldest first: a copy, to change the queue while going through it."""
        return list(self._waiting.items())

    def clear(self) -> None:
        self._waiting.clear()

    def ids(self) -> list[str]:
        return list(self._waiting)
