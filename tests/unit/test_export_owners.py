"""bkm export on a system bkmd gives the caller's own jobs only, root included: a file carries no
owner, so whoever applies it would own a member's job and run its hooks (as root, for root).
The same rule, without root or real users, as the system-mode test checks it with them."""

import pytest
from bkmd import apply
from bkmd.access import Caller
from bkmd.errors import ValidationFailed
from bkmd.job import Job
from helpers import job_record


class Jobs:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs

    def visible(self, caller: Caller) -> list[Job]:
        return [job for job in self.jobs if caller.sees(job.owner)]

    def find(self, ref: str, caller: Caller) -> Job:
        return next(job for job in self.visible(caller) if job.name == ref)


class Daemon:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = Jobs(jobs)


def job(name: str, uid: int) -> Job:
    owner = {"uid": uid, "user": f"u{uid}", "gid": uid}
    return Job.from_record(
        job_record(id=f"{uid:032x}", name=name, owner=owner, hooks={"before": ["mount /mnt/backup"]})
    )


DAEMON = Daemon([job("roots", 0), job("anns", 1001), job("bobs", 1002)])


def test_root_exports_roots_jobs_and_counts_the_others():
    exported = apply.export(DAEMON, Caller(0, 0, system=True), None)
    assert [e["name"] for e in exported["jobs"]] == ["roots"] and exported["others"] == 2
    with pytest.raises(ValidationFailed) as caught:
        apply.export(DAEMON, Caller(0, 0, system=True), ["anns"])
    assert "belongs to u1001: export it as u1001" in str(caught.value.data)


def test_a_member_exports_their_own_and_a_user_bkmd_everything():
    exported = apply.export(DAEMON, Caller(1001, 1001, system=True), None)
    assert [e["name"] for e in exported["jobs"]] == ["anns"] and exported["others"] == 0
    everything = apply.export(DAEMON, Caller(1001, 1001, system=False), None)  # one user's own bkmd
    assert [e["name"] for e in everything["jobs"]] == ["anns", "bobs", "roots"]
