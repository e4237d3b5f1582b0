"""Who is asking, what they may see and change, and as whom their jobs run.

The contract's "System mode: who may do what": a system bkmd runs as root and admits members
of group bkm. A job belongs to its creator and runs as that user, so a member can back up
only what they can read and write only where they can write; members see only their own
jobs; settings (which name programs and arguments root would run) are root's. A user's own
bkmd serves only that user (and root), who see everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bkmd.errors import Unavailable


class Forbidden(Unavailable):
    """Not this caller's to do (-32004; the client exits 2 and names the rule)."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"permission denied: {rule}", {"permission": rule})


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def owner_record(uid: int, gid: int) -> dict:
    """A job's ``owner`` field (the contract's {"uid", "user"}, plus the gid it runs with)."""
    return {"uid": uid, "user": user_name(uid), "gid": gid}


def daemon_owner() -> dict:
    """Jobs written before owners existed belong to bkmd's own user."""
    return owner_record(os.geteuid(), os.getegid())


@dataclass(frozen=True)
class Caller:
    uid: int
    gid: int
    system: bool  # a system bkmd, where members are told apart

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def sees(self, owner: dict | None) -> bool:
        """Whether a job of ``owner`` exists for this caller (others' are "no such job")."""
        return not self.system or self.is_root or (owner or {}).get("uid") == self.uid

    def check_admin(self, what: str) -> None:
        if self.system and not self.is_root:
            raise Forbidden(f"{what} are root's to change on a system bkmd")

    def owner(self) -> dict:
        return owner_record(self.uid, self.gid)


def caller_of(connection, system: bool) -> Caller:
    """The caller on ``connection`` (SO_PEERCRED); bkmd's own user when there is none."""
    peer = getattr(connection, "peer", None)
    if peer is None:
        return Caller(os.geteuid(), os.getegid(), system)
    _, uid, gid = peer
    return Caller(uid, gid, system)


@dataclass(frozen=True)
class RunAs:
    """The credentials a job's transfer takes: its owner's uid, gid and groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    user: str

    def environment(self, base: dict) -> dict:
        return dict(base, HOME=self.home, USER=self.user, LOGNAME=self.user)


def run_as(owner: dict | None) -> RunAs | None:
    """None when the job runs as bkmd itself: bkmd is not root, or the owner is bkmd's user."""
    if owner is None or os.geteuid() != 0 or owner["uid"] == os.geteuid():
        return None
    import pwd

    uid, gid = owner["uid"], owner.get("gid", owner["uid"])
    try:
        entry = pwd.getpwuid(uid)
        groups = tuple(os.getgrouplist(entry.pw_name, gid))
        home, user = entry.pw_dir, entry.pw_name
    except KeyError:  # a uid with no name: no supplementary groups
        groups, home, user = (gid,), "/", str(uid)
    return RunAs(uid, gid, groups, home, user)
