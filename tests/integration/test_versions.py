"""Versions with real rsync and rclone on real files: mirror and its guard, snapshots with
hard links and retention (local and over ssh), restore, verify."""

from __future__ import annotations

import json
import os

import pytest
from helpers import bkm, create, make_tree, slow_tree, wait_for
from sshd import Sshd


def run(home: str, name: str, *extra: str) -> tuple[int, dict]:
    out = bkm(home, "job", "start", name, "--wait", *extra)
    shown = json.loads(bkm(home, "job", "show", name, "--json").stdout)
    return out.returncode, shown


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def snapshots_in(dest: str) -> list[str]:
    return sorted(n for n in os.listdir(dest) if n != "latest")


def flip_a_byte_keeping_size_and_time(path: str) -> None:
    """What rsync's quick check (size and mtime) cannot see."""
    before = os.stat(path)
    data = bytearray(read(path))
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_snapshots_hard_link_what_did_not_change_and_retention_keeps_the_newest(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {"same.bin": 200_000, "changing.txt": 10})
    every = os.path.join(home, "every")
    two = os.path.join(home, "two")
    create(home, "every", "rsync", source + "/", every, "--mode", "snapshot")
    create(home, "two", "rsync", source + "/", two, "--mode", "snapshot", "--keep-last", "2")
    versions = []
    for i in range(3):
        # A size of its own each time: rsync's quick check (size and mtime, to the second) sees
        # a same-size change within the second as no change, in every mode.
        text = f"version {i}\n" * (i + 1)
        with open(os.path.join(source, "changing.txt"), "w") as f:
            f.write(text)
        versions.append(text.encode())
        for name in ("every", "two"):
            code, job = run(home, name)
            assert code == 0 and job["last_run"]["outcome"] == "completed", job["last_run"]
    folders = snapshots_in(every)
    assert len(folders) == 3 and not any(f.endswith(".partial") for f in folders)
    assert os.readlink(os.path.join(every, "latest")) == folders[-1]
    inodes = {os.stat(os.path.join(every, f, "same.bin")).st_ino for f in folders}
    assert len(inodes) == 1 and os.stat(os.path.join(every, folders[0], "same.bin")).st_nlink == 3
    assert [read(os.path.join(every, f, "changing.txt")) for f in folders] == versions
    # --keep-last 2: the third run left two, the newest two.
    kept = snapshots_in(two)
    assert len(kept) == 2 and os.readlink(os.path.join(two, "latest")) == kept[-1]
    assert read(os.path.join(two, kept[0], "changing.txt")) == versions[1]
    assert "removed by retention" in bkm(home, "logs", "two").stdout
    listed = json.loads(bkm(home, "snapshots", "every", "--json").stdout)
    assert [s["name"] for s in listed] == folders[::-1] and listed[0]["latest"] and listed[0]["files"] == 2
    assert listed[-1]["new_bytes"] >= 200_000 and listed[0]["new_bytes"] < 100  # only what changed
    table = bkm(home, "snapshots", "every").stdout.splitlines()
    assert table[0].split() == ["SNAPSHOT", "TIME", "FILES", "SIZE", "NEW"] and "latest" in table[1]


def test_a_paused_snapshot_goes_on_in_its_partial_folder_and_is_then_named(bkmd, home):
    source = os.path.join(home, "src")
    slow_tree(source)
    dest = os.path.join(home, "snaps")
    create(home, "slow", "rsync", source + "/", dest, "--mode", "snapshot", "--bwlimit", "1024")
    assert bkm(home, "job", "start", "slow").returncode == 0
    partial = wait_for(
        lambda: [n for n in os.listdir(dest) if n.endswith(".partial")] if os.path.isdir(dest) else None,
        10,
        what="the partial folder",
    )[0]
    wait_for(lambda: json.loads(bkm(home, "job", "show", "slow", "--json").stdout)["progress"]["bytes_transferred"] > 0,
             10, what="bytes moving")  # fmt: skip
    assert bkm(home, "job", "pause", "slow").returncode == 0
    assert os.listdir(dest) == [partial]  # kept as it is, not named, no latest
    code, job = run(home, "slow")
    assert code == 0, job["last_run"]
    assert job["last_run"]["resumed"] is True
    assert sorted(os.listdir(dest)) == [partial.removesuffix(".partial"), "latest"]
    assert read(os.path.join(dest, "latest", "b3.bin")) == read(os.path.join(source, "b3.bin"))


def test_mirror_deletes_what_the_source_deleted_and_its_guard_saves_an_emptied_source(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {f"f{i}.txt": 100 for i in range(4)})
    dest = os.path.join(home, "mirror")
    create(home, "m", "rsync", source + "/", dest, "--mode", "mirror")
    assert run(home, "m")[0] == 0
    os.remove(os.path.join(source, "f0.txt"))
    assert run(home, "m")[0] == 0
    assert sorted(os.listdir(dest)) == ["f1.txt", "f2.txt", "f3.txt"]
    for name in os.listdir(source):  # an unmounted disk looks like this
        os.remove(os.path.join(source, name))
    code, job = run(home, "m")
    assert code == 1 and job["status"] == "failed"
    assert job["last_run"]["error"].startswith("mirror guard: the source has no files; the mirror would delete all 3")
    assert sorted(os.listdir(dest)) == ["f1.txt", "f2.txt", "f3.txt"]  # untouched
    code, job = run(home, "m", "--force")
    assert code == 0 and os.listdir(dest) == []
    assert "mirror guard: skipped this once (--force)" in bkm(home, "logs", "m").stdout


def test_the_guard_refuses_deleting_more_than_half_and_rclone_mirrors_too(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {f"f{i}.txt": 100 for i in range(4)})
    dest = os.path.join(home, "mirror")
    create(home, "r", "rclone", source, dest, "--mode", "mirror")
    assert run(home, "r")[0] == 0
    os.remove(os.path.join(source, "f0.txt"))
    assert run(home, "r")[0] == 0 and sorted(os.listdir(dest)) == ["f1.txt", "f2.txt", "f3.txt"]
    for name in ("f1.txt", "f2.txt"):
        os.remove(os.path.join(source, name))
    code, job = run(home, "r")
    assert code == 1 and "mirror guard: the mirror would delete 2 of the 3 files" in job["last_run"]["error"]
    assert sorted(os.listdir(dest)) == ["f1.txt", "f2.txt", "f3.txt"]


def test_restore_a_file_and_a_tree_from_latest_and_from_an_older_snapshot(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {"docs/cv.txt": 3000, "photos/a.jpg": 50_000, "photos/b.jpg": 50_000})
    dest = os.path.join(home, "snaps")
    create(home, "s", "rsync", source + "/", dest, "--mode", "snapshot")
    assert run(home, "s")[0] == 0
    first = {p: read(os.path.join(source, p)) for p in ("docs/cv.txt", "photos/a.jpg", "photos/b.jpg")}
    with open(os.path.join(source, "docs/cv.txt"), "wb") as f:
        f.write(b"the new cv\n")
    assert run(home, "s")[0] == 0
    older = snapshots_in(dest)[0]

    out = bkm(home, "restore", "s", "docs/cv.txt", "--to", os.path.join(home, "r1"), "--wait")
    assert out.returncode == 0, out.stderr
    assert read(os.path.join(home, "r1", "docs", "cv.txt")) == b"the new cv\n"  # latest
    assert os.listdir(os.path.join(home, "r1")) == ["docs"]  # only what was asked
    out = bkm(home, "restore", "s", "--to", os.path.join(home, "r2"), "--snapshot", older, "--wait")
    assert out.returncode == 0, out.stderr
    for path, data in first.items():  # the whole older tree, byte for byte
        assert read(os.path.join(home, "r2", path)) == data
    job = json.loads(bkm(home, "job", "show", "s", "--json").stdout)
    assert job["last_run"]["trigger"] == "restore" and job["status"] == "completed"
    assert job["last_success_at"] == job["runs"][1]["finished_at"]  # a restore is no backup
    # Never into the backup, never silently over the source.
    for into in (dest, os.path.join(dest, "latest", "docs"), os.path.join(source, "docs")):
        out = bkm(home, "restore", "s", "--to", into)
        assert out.returncode == 2 and out.stderr.startswith("bkm: error: to: overlaps"), out.stderr
    out = bkm(home, "restore", "s", "../etc", "--to", os.path.join(home, "r3"))
    assert out.returncode == 2 and "leaves the backed-up tree" in out.stderr
    out = bkm(home, "restore", "s", "--to", os.path.join(home, "r3"), "--snapshot", "2001-01-01T000000Z")
    assert out.returncode == 2 and "no snapshot 2001-01-01T000000Z" in out.stderr
    dry = bkm(home, "restore", "s", "photos", "--to", os.path.join(home, "r4"), "--dry-run", "--json")
    assert json.loads(dry.stdout) == {"files": 2, "bytes": 100_000} and not os.path.exists(os.path.join(home, "r4"))


@pytest.mark.parametrize("tool", ["rsync", "rclone"])
def test_verify_sees_a_flipped_byte_that_the_quick_check_cannot(bkmd, home, tool):
    source = os.path.join(home, "src")
    make_tree(source, {"a.bin": 100_000, "sub/b.bin": 5_000})
    dest = os.path.join(home, "backup")
    create(home, "v", tool, source + "/" if tool == "rsync" else source, dest)
    assert run(home, "v")[0] == 0
    out = bkm(home, "verify", "v")
    assert out.returncode == 0, out.stderr
    assert "the same as the source" in out.stdout
    flip_a_byte_keeping_size_and_time(os.path.join(dest, "sub", "b.bin"))
    os.remove(os.path.join(dest, "a.bin"))
    out = bkm(home, "verify", "v", "--json")
    assert out.returncode == 1
    found = json.loads(out.stdout)
    assert (found["ok"], found["differ"], found["missing"], found["extra"]) == (False, ["sub/b.bin"], ["a.bin"], [])
    job = json.loads(bkm(home, "job", "show", "v", "--json").stdout)
    assert job["last_verify"]["counts"] == {"differ": 1, "missing": 1, "extra": 0}
    assert job["last_run"]["trigger"] == "verify" and job["status"] == "failed"
    assert "DIFFERENT" in bkm(home, "job", "show", "v").stdout
    # A fresh copy: the damaged file removed from the backup, a run, and all is the same again.
    os.remove(os.path.join(dest, "sub", "b.bin"))
    assert run(home, "v")[0] == 0
    out = bkm(home, "verify", "v")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(bkm(home, "job", "show", "v", "--json").stdout)["last_verify"]["ok"] is True


def test_modes_are_checked_with_the_other_fields(bkmd, home, data_dir):
    dest = os.path.join(home, "d")
    out = bkm(home, "job", "create", "x", "--type", "rclone", "--source", data_dir, "--dest", dest,
              "--mode", "snapshot")  # fmt: skip
    assert out.returncode == 2 and "mode: snapshot mode needs type rsync" in out.stderr
    out = bkm(home, "job", "create", "x", "--type", "rsync", "--source", data_dir, "--dest", dest, "--keep-last", "3")
    assert out.returncode == 2 and "keep: the --keep-* rules are for snapshot mode only" in out.stderr
    create(home, "x", "rsync", data_dir + "/", dest, "--mode", "snapshot", "--keep-last", "3", "--keep-daily", "7")
    out = bkm(home, "job", "edit", "x", "--keep-daily", "0", "--keep-weekly", "4", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["keep"] == {"last": 3, "weekly": 4}
    out = bkm(home, "job", "edit", "x", "--mode", "copy", "--json")  # the rules go with snapshot mode
    assert out.returncode == 0 and json.loads(out.stdout)["keep"] == {}
    assert bkm(home, "job", "edit", "x", "--mode", "snapshot", "--keep-last", "3").returncode == 0
    out = bkm(home, "snapshots", "x", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []
    out = bkm(home, "job", "create", "c", "--type", "rsync", "--source", data_dir + "/", "--dest", dest + "2")
    assert bkm(home, "snapshots", "c").returncode == 2


def test_snapshots_at_a_host_destination_through_ssh(bkmd, home):
    """`host:path`: rsync over the real ssh, and the renaming, `latest` and retention done there
    through the same remote shell (the job's --rsh)."""
    sshd = Sshd().start()
    try:
        source = os.path.join(home, "src")
        make_tree(source, {"same.bin": 50_000, "changing.txt": 5, "a[1].txt": 7, "a1.txt": 8})
        far = os.path.join(home, "far")
        dest = f"alpha:{far}"
        create(home, "r", "rsync", source + "/", dest, "--mode", "snapshot", "--keep-last", "2",
               f"--tool-arg=--rsh=ssh -F {sshd.config}")  # fmt: skip
        for i in range(3):
            with open(os.path.join(source, "changing.txt"), "w") as f:
                f.write(f"v{i}\n" * (i + 1))  # a new size: see the first test
            code, job = run(home, "r")
            assert code == 0, job["last_run"]
        kept = snapshots_in(far)
        assert len(kept) == 2 and os.readlink(os.path.join(far, "latest")) == kept[-1]
        assert len({os.stat(os.path.join(far, k, "same.bin")).st_ino for k in kept}) == 1
        assert read(os.path.join(far, "latest", "changing.txt")) == b"v2\n" * 3
        listed = json.loads(bkm(home, "snapshots", "r", "--json").stdout)
        assert [s["name"] for s in listed] == kept[::-1]
        out = bkm(home, "restore", "r", "changing.txt", "--to", os.path.join(home, "back"), "--wait")
        assert out.returncode == 0, out.stderr
        assert read(os.path.join(home, "back", "changing.txt")) == b"v2\n" * 3
        # A name with [ ] is that name, not a pattern, on the far side too.
        out = bkm(home, "restore", "r", "a[1].txt", "--to", os.path.join(home, "glob"), "--wait")
        assert out.returncode == 0, out.stderr
        assert os.listdir(os.path.join(home, "glob")) == ["a[1].txt"]
    finally:
        sshd.cleanup()


def test_a_restore_stopped_with_bkmd_is_not_resumed_as_a_backup(home):
    """A mirror's backup run in the restore's place would delete the backup of a lost source."""
    import shutil

    from helpers import Bkmd

    daemon = Bkmd(home).start()
    source = os.path.join(home, "src")
    slow_tree(source)
    dest = os.path.join(home, "mirror")
    create(home, "m", "rsync", source + "/", dest, "--mode", "mirror", "--bwlimit", "1024")
    assert bkm(home, "job", "edit", "m", "--bwlimit", "0").returncode == 0
    assert run(home, "m")[0] == 0
    assert bkm(home, "job", "edit", "m", "--bwlimit", "1024").returncode == 0
    shutil.rmtree(source)  # the disk died: now the files must come back
    os.makedirs(source)
    backed_up = sorted(os.listdir(dest))
    out = bkm(home, "restore", "m", "--to", os.path.join(home, "back"))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: json.loads(bkm(home, "job", "show", "m", "--json").stdout)["progress"]["bytes_transferred"] > 0,
             10, what="the restore moving")  # fmt: skip
    assert daemon.stop() == 0  # pauses the restore, as a reboot would
    daemon = Bkmd(home).start()  # resume_after_stop is on by default
    job = json.loads(bkm(home, "job", "show", "m", "--json").stdout)
    assert job["status"] == "paused" and job["last_run"]["trigger"] == "restore"
    assert sorted(os.listdir(dest)) == backed_up  # nothing deleted
    assert "restore not resumed by itself" in bkm(home, "logs", "m").stdout
    # The same restore again goes on and completes.
    assert bkm(home, "job", "edit", "m", "--bwlimit", "0").returncode == 0
    out = bkm(home, "restore", "m", "--to", os.path.join(home, "back"), "--wait")
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(os.path.join(home, "back"))) == [n for n in backed_up if n != ".rsync-partial"]
    daemon.stop()


def test_restores_and_verifies_are_no_backups(bkmd, home, data_dir):
    dest = os.path.join(home, "backup")
    create(home, "b", "rsync", data_dir + "/", dest)
    assert run(home, "b")[0] == 0
    os.rename(data_dir, data_dir + ".gone")  # the next backup fails
    code, job = run(home, "b")
    assert code == 1 and job["status"] == "failed"
    out = bkm(home, "restore", "b", "--to", os.path.join(home, "back"), "--wait")
    assert out.returncode == 0, out.stderr
    job = json.loads(bkm(home, "job", "show", "b", "--json").stdout)
    # The restore is in the history; the failed backup is still what the job's status says.
    assert job["status"] == "failed" and job["last_run"]["trigger"] == "restore"
    assert job["last_run"]["outcome"] == "completed"
    metrics = bkm(home, "metrics").stdout
    assert 'bkm_job_runs_total{job="b",outcome="completed"} 1' in metrics
    # A cron `job start --wait` meeting a restore in progress is refused, not a silent 0.
    slow = os.path.join(home, "slow")
    slow_tree(slow)
    create(home, "s", "rsync", slow + "/", os.path.join(home, "sb"))
    assert run(home, "s")[0] == 0
    assert bkm(home, "job", "edit", "s", "--bwlimit", "512").returncode == 0
    assert bkm(home, "restore", "s", "--to", os.path.join(home, "sback")).returncode == 0
    out = bkm(home, "job", "start", "s", "--wait")
    assert out.returncode == 5 and "is running for a restore: no backup can start until it ends" in out.stderr
    assert bkm(home, "job", "pause", "s").returncode == 0


def test_retention_removes_only_this_jobs_snapshots(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {"a.txt": 10})
    dest = os.path.join(home, "shared")
    create(home, "one", "rsync", source + "/", dest, "--mode", "snapshot")
    create(home, "two", "rsync", source + "/", dest, "--mode", "snapshot", "--keep-last", "1")
    assert run(home, "one")[0] == 0 and run(home, "one")[0] == 0
    ones = snapshots_in(dest)
    os.makedirs(os.path.join(dest, "2099-01-01T000000Z"))  # a folder from a clock gone wrong
    for _ in range(2):
        code, job = run(home, "two")
        assert code == 0, job["last_run"]
    left = snapshots_in(dest)
    assert set(ones) <= set(left) and "2099-01-01T000000Z" in left  # not two's to remove
    twos = [n for n in left if n not in ones and not n.startswith("2099")]
    assert len(twos) == 1 and os.readlink(os.path.join(dest, "latest")) == twos[0]  # its newest, kept


def test_a_snapshot_whose_name_was_taken_gets_the_next_and_a_real_latest_folder_fails(home):
    """bkmd stopped after a snapshot was named but before it saved so: the next run must not
    fail forever on `mv` (it takes the next name)."""
    import yaml
    from helpers import Bkmd

    daemon = Bkmd(home).start()
    source = os.path.join(home, "src")
    make_tree(source, {"a.txt": 10})
    dest = os.path.join(home, "snaps")
    create(home, "s", "rsync", source + "/", dest, "--mode", "snapshot")
    assert run(home, "s")[0] == 0
    (first,) = snapshots_in(dest)
    assert daemon.stop() == 0
    store = os.path.join(home, "jobs.yaml")
    with open(store) as f:
        data = yaml.safe_load(f)
    data["jobs"][0]["snapshot_partial"] = first + ".partial"  # as if the save had not happened
    with open(store, "w") as f:
        yaml.safe_dump(data, f)
    daemon = Bkmd(home).start()
    code, job = run(home, "s")
    assert code == 0, job["last_run"]
    folders = snapshots_in(dest)
    assert len(folders) == 2 and folders[0] == first and os.readlink(os.path.join(dest, "latest")) == folders[1]
    # A `latest` that is a real folder (a copy job made a snapshot job) is not silently kept.
    os.remove(os.path.join(dest, "latest"))
    os.makedirs(os.path.join(dest, "latest"))
    code, job = run(home, "s")
    assert code == 1 and "could not point latest at it" in job["last_run"]["error"]
    daemon.stop()


def test_restore_over_a_source_given_without_its_slash_and_dry_run_of_a_snapshot_job(bkmd, home):
    photos = os.path.join(home, "Photos")
    make_tree(photos, {"p1.jpg": 1000})
    create(home, "ph", "rsync", photos, os.path.join(home, "bk"))  # no slash: the folder itself
    assert run(home, "ph")[0] == 0
    os.remove(os.path.join(photos, "p1.jpg"))
    out = bkm(home, "restore", "ph", "--to", photos, "--wait")
    assert out.returncode == 0, out.stderr
    assert os.listdir(photos) == ["p1.jpg"]  # back where it was, not in Photos/Photos/
    create(home, "sn", "rsync", photos + "/", os.path.join(home, "sn"), "--mode", "snapshot")
    assert run(home, "sn")[0] == 0
    counted = json.loads(bkm(home, "job", "start", "sn", "--dry-run", "--json").stdout)
    assert counted == {"files": 0, "bytes": 0}  # against latest, not against the snapshots' folder


def test_verify_that_could_not_compare_is_no_success(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {"a.bin": 1000})
    create(home, "rv", "rclone", source, os.path.join(home, "backup"), "--tool-arg=--create-empty-src-dirs")
    assert run(home, "rv")[0] == 0
    out = bkm(home, "verify", "rv", "--json")  # rclone check refuses that flag: exit 1, no comparison
    assert out.returncode == 1
    found = json.loads(out.stdout)
    assert found["ok"] is False and found["counts"] is None and found["error"]


def test_an_rclone_restore_of_a_path_that_is_not_there_fails_as_rsyncs_does(bkmd, home):
    source = os.path.join(home, "src")
    make_tree(source, {"x.txt": 10, "sub dir/y*.txt": 20})
    create(home, "c", "rclone", source, os.path.join(home, "backup"))
    assert run(home, "c")[0] == 0
    out = bkm(home, "restore", "c", "nosuch.txt", "--to", os.path.join(home, "r1"), "--wait")
    assert out.returncode == 1 and "nothing in the backup matches nosuch.txt" in out.stderr
    out = bkm(home, "restore", "c", "sub dir/y*.txt", "--to", os.path.join(home, "r2"), "--wait")
    assert out.returncode == 0, out.stderr
    assert os.listdir(os.path.join(home, "r2", "sub dir")) == ["y*.txt"]
