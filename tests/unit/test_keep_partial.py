"""bkmd keeps a stopped rsync run's unfinished file itself (no --partial-dir on every run): the
argv, when it may, and the moving aside, on real files and a real process's open files."""

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
    # What --partial-dir's own rule did: such folders are neither sent nor deleted.
    assert "--filter=-p .rsync-partial/" in kept
    assert rclone.argv(job(source="/s", dest="r:b"), SETTINGS, keeper=True) == rclone.argv(
        job(source="/s", dest="r:b"), SETTINGS
    )


def test_bkmd_keeps_only_local_runs_in_rsyncs_usual_way():
    assert rsync.can_keep_partial(job(dest="/backup"), SETTINGS)
    assert not rsync.can_keep_partial(job(dest="backup@host:/srv"), SETTINGS)
    assert not rsync.can_keep_partial(job(source="host:/data/", dest="/backup"), SETTINGS)  # a pull
    own = (["--inplace"], ["--partial"], ["--partial-dir=/x"], ["--temp-dir=/t"], ["--append-verify"], ["-P"])
    for args in own + (["-avP"], ["-aT", "/tmp"], ["-T/tmp"], ["--delay-updates"]):
        assert not rsync.can_keep_partial(job(dest="/backup", tool_args=args), SETTINGS), args
    assert not rsync.can_keep_partial(job(dest="/backup"), dict(SETTINGS, rsync_args=["--delay-updates"]))
    assert rsync.can_keep_partial(job(dest="/backup", tool_args=["-e", "ssh -p 22", "--checksum", "-z"]), SETTINGS)
    assert not rclone.can_keep_partial(job(dest="/backup"), SETTINGS)


def write(path: str, size: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x" * size)
    return path


def test_rsyncs_temporary_files_are_moved_where_partial_dir_keeps_them(tmp_path):
    source, dest = str(tmp_path / "src") + "/", str(tmp_path / "dst")
    write(os.path.join(source, "sub", "big file.bin"), 9000)
    write(os.path.join(source, "empty.bin"), 9000)
    temp = write(os.path.join(dest, "sub", ".big file.bin.Ab3xZ9"), 5000)
    others = [
        write(os.path.join(dest, "sub", "done.txt"), 10),  # not rsync's temporary name
        write(os.path.join(str(tmp_path), "elsewhere", ".x.bin.Ab3xZ9"), 10),  # outside dest
        write(os.path.join(dest, ".empty.bin.Qq1234"), 0),  # nothing written yet
        write(os.path.join(dest, ".gone.bin.Qq1234"), 10),  # no such file in the source
    ]
    kept = rsync.keep_partial([temp, *others], dest, source)
    target = os.path.join(dest, "sub", ".rsync-partial", "big file.bin")
    assert kept == [target]
    assert os.path.getsize(target) == 5000 and not os.path.exists(temp)  # moved: works without links
    assert oct(os.stat(os.path.dirname(target)).st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(dest)) == [".empty.bin.Qq1234", ".gone.bin.Qq1234", "sub"]


def test_a_source_without_its_trailing_slash_is_the_folder_itself(tmp_path):
    source, dest = str(tmp_path / "data"), str(tmp_path / "dst")
    write(os.path.join(source, "a.bin"), 100)
    temp = write(os.path.join(dest, "data", ".a.bin.Zz9911"), 50)
    assert rsync.keep_partial([temp], dest, source) == [os.path.join(dest, "data", ".rsync-partial", "a.bin")]


def test_a_dot_file_is_kept_under_its_own_name_and_an_ambiguous_one_not_at_all(tmp_path):
    # rsync names both "big" and ".big" in flight ".big.XXXXXX": the source tells which.
    source, dest = str(tmp_path / "src") + "/", str(tmp_path / "dst")
    write(os.path.join(source, ".hidden"), 100)
    temp = write(os.path.join(dest, ".hidden.aB3dE5"), 50)
    assert rsync.keep_partial([temp], dest, source) == [os.path.join(dest, ".rsync-partial", ".hidden")]
    write(os.path.join(source, "both"), 100)
    write(os.path.join(source, ".both"), 100)
    temp = write(os.path.join(dest, ".both.aB3dE5"), 50)
    assert rsync.keep_partial([temp], dest, source) == []
    assert os.path.exists(temp)


def test_a_larger_earlier_partial_stays_and_a_smaller_one_is_replaced(tmp_path):
    source, dest = str(tmp_path / "src") + "/", str(tmp_path / "dst")
    write(os.path.join(source, "f.bin"), 9000)
    earlier = write(os.path.join(dest, ".rsync-partial", "f.bin"), 3000)
    # The earlier one is what the next run takes: kept all the same.
    assert rsync.keep_partial([write(os.path.join(dest, ".f.bin.aaaaaa"), 2000)], dest, source) == [earlier]
    assert os.path.getsize(earlier) == 3000
    assert rsync.keep_partial([write(os.path.join(dest, ".f.bin.bbbbbb"), 4000)], dest, source) == [earlier]
    assert os.path.getsize(earlier) == 4000


def test_a_symbolic_link_planted_as_partial_dir_is_not_followed(tmp_path):
    source, dest, outside = str(tmp_path / "src") + "/", str(tmp_path / "dst"), str(tmp_path / "outside")
    write(os.path.join(source, "f.bin"), 100)
    os.makedirs(outside)
    temp = write(os.path.join(dest, ".f.bin.cccccc"), 100)
    os.symlink(outside, os.path.join(dest, ".rsync-partial"))
    assert rsync.keep_partial([temp], dest, source) == []
    assert os.listdir(outside) == [] and os.path.exists(temp)


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


def test_a_move_after_the_deadline_does_not_happen(tmp_path):
    import threading

    source, dest = str(tmp_path / "src") + "/", str(tmp_path / "dst")
    write(os.path.join(source, "f.bin"), 100)
    temp = write(os.path.join(dest, ".f.bin.dddddd"), 50)
    late = threading.Event()
    late.set()
    assert rsync.keep_partial([temp], dest, source, late) == []
    assert os.path.exists(temp)


def test_jobs_paused_before_bkmd_kept_files_itself_look_for_what_rsync_kept():
    from bkmd.job import Job
    from helpers import job_record

    old = {k: v for k, v in job_record().items() if k != "partial_kept"}  # a store of before
    for status, expected in (("paused", True), ("interrupted", True), ("completed", False), ("failed", False)):
        assert Job.from_record(dict(old, status=status)).partial_kept is expected, status
    assert Job.from_record(dict(old, status="paused", partial_kept=False)).partial_kept is False
    assert Job.from_record(dict(old, status="completed", partial_kept=True)).partial_kept is True
