"""What the mirror guard, verify and snapshots read from rsync's and rclone's real output
(captured in tests/data, see CAPTURES.md: "Versions")."""

import os

from bkmd.engines import rclone, rsync

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def read(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return f.read()


def test_rsync_stats_give_the_mirror_guard_its_three_counts():
    # src: 3 files; dst: 3 files (same.txt, sub/flip.bin, extra.txt); a mirror deletes extra.txt.
    assert rsync.guard_counts(read("rsync_mirror_guard_stats.out"), "") == (3, 3, 1)
    empty = "Number of files: 1 (dir: 1)\nNumber of created files: 0\nNumber of deleted files: 120 (reg: 118, dir: 2)\n"
    assert rsync.guard_counts(empty, "") == (0, 118, 118)
    assert rsync.guard_counts("rsync: change_dir failed\n", "") is None


def test_rclone_check_gives_the_mirror_guard_its_three_counts():
    assert rclone.guard_counts(read("rclone_check_sizeonly.out"), "") == (3, 3, 1)
    assert rclone.guard_counts("- a\n- b\n", "ERROR : 2 differences found") == (0, 2, 2)
    assert rclone.guard_counts("! broken\n= a\n", "") is None


def test_rsync_verify_finds_the_flipped_byte_the_missing_and_the_extra_file_not_a_new_mtime():
    lines = read("rsync_verify_mirror.out").replace("\r", "\n").splitlines()
    assert rsync.verify_items(lines) == {"differ": ["sub/flip.bin"], "missing": ["missing.txt"], "extra": ["extra.txt"]}


def test_rclone_check_download_finds_the_same():
    lines = read("rclone_check_download.out").splitlines()
    found = rclone.verify_items(lines)
    assert found == {"differ": ["sub/flip.bin"], "missing": ["missing.txt"], "extra": ["extra.txt"]}


def test_a_snapshots_stats_say_what_it_holds_anew():
    lines = read("rsync_snapshot_linkdest.out").replace("\r", "\n").splitlines()
    assert rsync.snapshot_stats(lines) == {"files": 3, "bytes": 5019, "new_bytes": 9}


class Job:
    source, dest, bwlimit, excludes, tool_args = "/src/", "/backup", 0, ["*.tmp"], []


SETTINGS = {"rsync_path": "rsync", "rclone_path": "rclone", "rsync_args": [], "rclone_args": [], "progress_interval": 1}


def test_modes_in_the_argv():
    mirror = rsync.argv(Job, SETTINGS, delete=True)
    assert "--delete" in mirror and mirror[-3:] == ["--", "/src/", "/backup"]
    snap = rsync.argv(Job, SETTINGS, dest="/backup/2026-11-29T020000Z.partial/", link_dest="../2026-11-29T010000Z")
    assert "--link-dest=../2026-11-29T010000Z" in snap and snap[-1] == "/backup/2026-11-29T020000Z.partial/"
    restore = rsync.argv(Job, SETTINGS, sources=["/backup/./a b", "/backup/./c"], dest="/restore/", filters=False)
    assert "--relative" in restore and "--exclude=*.tmp" not in restore
    assert restore[-4:] == ["--", "/backup/./a b", "/backup/./c", "/restore/"]
    assert rclone.argv(Job, SETTINGS, delete=True)[1] == "sync" and rclone.argv(Job, SETTINGS)[1] == "copy"
    back = rclone.argv(Job, SETTINGS, sources=["/backup"], dest="/restore", filters=False, includes=["a*b/", "c"])
    assert back[-3:] == ["--", "/backup", "/restore"] and "--exclude=*.tmp" not in back
    assert [a for a in back if a.startswith("--include")] == [
        "--include=/a\\*b", "--include=/a\\*b/**", "--include=/c", "--include=/c/**",
    ]  # fmt: skip
