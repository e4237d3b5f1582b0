"""bkmd keeps a stopped rsync run's unfinished file itself (no --partial-dir on every run): the
argv, when it may, and the linking, on real files and a real process's open files."""

import os
import subprocess
import sys

from bkmd import runner
from bkmd.engines import rclone, rsync
from helpers import wait_for
from test_engines import SETTINGS, job


def test_the_argv_asks_rsync_for_partial_dir_only_where_bkmd_does_not_keep():
    assert "--partial-dir=.rsync-partial" in rsync.argv(job(), SETTINGS)
    assert "--partial-dir=.rsync-partial" in rsync.argv(job(), SETTINGS, resume=True)
    kept = rsync.argv(job(), SETTINGS, keeper=True)
    assert not any(a.startswith("--partial") for a in kept) and kept[-3] == "--"
    assert rclone.argv(job(source="/s", dest="r:b"), SETTINGS, keeper=True) == rclone.argv(
        job(source="/s", dest="r:b"), SETTINGS
    )


def test_bkmd_keeps_only_local_runs_in_rsyncs_usual_way():
    assert rsync.can_keep_partial(job(dest="/backup"), SETTINGS)
    assert not rsync.can_keep_partial(job(dest="backup@host:/srv"), SETTINGS)
    for own in (["--inplace"], ["--partial"], ["--partial-dir=/x"], ["--temp-dir=/t"], ["--append-verify"]):
        assert not rsync.can_keep_partial(job(dest="/backup", tool_args=own), SETTINGS), own
    assert not rsync.can_keep_partial(job(dest="/backup"), dict(SETTINGS, rsync_args=["--delay-updates"]))
    assert not rclone.can_keep_partial(job(dest="/backup"), SETTINGS)


def write(path: str, size: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x" * size)
    return path


def test_rsyncs_temporary_files_are_linked_where_partial_dir_keeps_them(tmp_path):
    dest = str(tmp_path / "dst")
    temp = write(os.path.join(dest, "sub", ".big file.bin.Ab3xZ9"), 5000)
    others = [
        write(os.path.join(dest, "sub", "done.txt"), 10),  # not rsync's temporary name
        write(os.path.join(str(tmp_path), "elsewhere", ".x.bin.Ab3xZ9"), 10),  # outside dest
        write(os.path.join(dest, ".empty.bin.Qq1234"), 0),  # nothing written yet
    ]
    kept = rsync.keep_partial([temp, *others], dest)
    target = os.path.join(dest, "sub", ".rsync-partial", "big file.bin")
    assert kept == [target]
    assert os.path.samefile(target, temp)  # a link: rsync's writes and deletion leave it whole
    assert oct(os.stat(os.path.dirname(target)).st_mode & 0o777) == "0o700"
    os.unlink(temp)  # what rsync does at a stop without --partial-dir
    assert os.path.getsize(target) == 5000
    assert sorted(os.listdir(dest)) == [".empty.bin.Qq1234", "sub"]


def test_a_larger_earlier_partial_stays_and_a_smaller_one_is_replaced(tmp_path):
    dest = str(tmp_path)
    earlier = write(os.path.join(dest, ".rsync-partial", "f.bin"), 3000)
    assert rsync.keep_partial([write(os.path.join(dest, ".f.bin.aaaaaa"), 2000)], dest) == []
    assert os.path.getsize(earlier) == 3000
    assert rsync.keep_partial([write(os.path.join(dest, ".f.bin.bbbbbb"), 4000)], dest) == [earlier]
    assert os.path.getsize(earlier) == 4000


def test_a_symbolic_link_planted_as_partial_dir_is_not_followed(tmp_path):
    dest, outside = str(tmp_path / "dst"), str(tmp_path / "outside")
    os.makedirs(outside)
    temp = write(os.path.join(dest, ".f.bin.cccccc"), 100)
    os.symlink(outside, os.path.join(dest, ".rsync-partial"))
    assert rsync.keep_partial([temp], dest) == []
    assert os.listdir(outside) == []


def test_a_process_groups_files_open_for_writing(tmp_path):
    written, read = str(tmp_path / "w.bin"), write(str(tmp_path / "r.bin"), 1)
    code = (
        "import sys, time\n"
        f"w = open({written!r}, 'wb'); r = open({read!r}, 'rb')\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert child.stdout.readline() == b"open\n"
        assert runner.group_members(child.pid) == [child.pid]
        assert runner.files_open_for_writing(child.pid) == [written]
        os.rename(written, written + ".moved")  # named by the path that names it now
        assert runner.files_open_for_writing(child.pid) == [written + ".moved"]
        os.unlink(written + ".moved")  # no name left: nothing to link
        assert runner.files_open_for_writing(child.pid) == []
    finally:
        child.stdin.close()
        child.wait(10)
    wait_for(lambda: runner.group_members(child.pid) == [], 5, what="the group gone")
