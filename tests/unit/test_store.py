import errno
import json
import os
import subprocess
import sys

import pytest
import yaml
from bkmd import store
from hypothesis import given, settings
from hypothesis import strategies as st


def job(i: int, **extra) -> dict:
    """A stored job as bkmd writes it: every field (helpers.job_record) and its state."""
    from helpers import job_record

    return job_record(
        **{
            "id": f"{i:032x}",
            "name": f"job-{i}",
            "source": "/src/",
            "dest": "/dst",
            "created_at": "2026-11-28T17:50:00Z",
            "updated_at": "2026-11-28T17:50:00Z",
            "progress": {"percent": 0.0, "eta_seconds": None},
            "last_run": None,
            "rev": i,
            **extra,
        }
    )


def test_missing_store_is_empty(tmp_path):
    assert store.load_jobs(str(tmp_path / "jobs.yaml")) == []
    assert store.load_settings(str(tmp_path / "settings.yaml")) == {}


def test_round_trip_and_the_file_is_plain_yaml(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    records = [job(1), job(2, name="ünïcode ✓", excludes=["*.tmp", 'a"b\\c'])]
    store.save_jobs(path, records)
    assert store.load_jobs(path) == records
    with open(path) as f:
        data = yaml.safe_load(f)
    assert data == {"version": store.STORE_VERSION, "jobs": records}


def test_hand_edited_block_yaml_is_read(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "jobs": [job(1)]}, default_flow_style=False))
    assert store.load_jobs(str(path)) == [job(1)]


def test_empty_store_writes_an_empty_list(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    store.save_jobs(path, [])
    assert store.load_jobs(path) == []
    assert yaml.safe_load(open(path)) == {"version": 1, "jobs": []}


def test_parse_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("version: 1\njobs:\n- {id: [unclosed\n")
    before = path.read_bytes()
    with pytest.raises(store.StoreError) as e:
        store.load_jobs(str(path))
    assert e.value.line == 4 and e.value.column is not None
    assert str(path) in str(e.value)
    assert path.read_bytes() == before


def test_bad_utf8_names_its_position(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_bytes(b"version: 1\njobs:\n- {name: \xff}\n")
    with pytest.raises(store.StoreError) as e:
        store.load_jobs(str(path))
    assert (e.value.line, e.value.column) == (3, 10)


def test_missing_field_is_refused(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    broken = job(1)
    del broken["dest"]
    store.save_jobs(path, [broken])
    with pytest.raises(store.StoreError, match="'dest' is missing"):
        store.load_jobs(path)


def test_newer_version_is_refused(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("version: 99\njobs: []\n")
    with pytest.raises(store.StoreError, match="newer bkm"):
        store.load_jobs(str(path))


def test_duplicate_names_are_refused(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    store.save_jobs(path, [job(1), job(2, name="job-1")])
    with pytest.raises(store.StoreError, match="duplicate"):
        store.load_jobs(path)


def test_atomic_write_leaves_no_temp_file_and_private_mode(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    store.save_jobs(path, [job(1)])
    assert os.listdir(tmp_path) == ["jobs.yaml"]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_record_that_cannot_be_written_is_refused_before_the_file_is_touched(tmp_path):
    path = str(tmp_path / "jobs.yaml")
    store.save_jobs(path, [job(1)])
    before = open(path, "rb").read()

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        store.save_jobs(path, [job(2, progress=Unserialisable())])
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["jobs.yaml"]


def two_generations(tmp_path) -> tuple[str, bytes, bytes]:
    """A store saved twice: jobs.yaml (second generation) and jobs.yaml.bak (the first)."""
    path = str(tmp_path / "jobs.yaml")
    store.save_jobs(path, [job(1)])
    first = open(path, "rb").read()
    store.save_jobs(path, [job(1), job(2)])
    return path, open(path, "rb").read(), first


def failing(real, when, errno_=errno.ENOSPC):
    """``real`` (an os function), except that it raises OSError(errno_) when ``when(*args)``."""

    def fake(*args, **kwargs):
        if when(*args):
            raise OSError(errno_, os.strerror(errno_))
        return real(*args, **kwargs)

    return fake


# Each place inside atomic_write where a full disk (or a failing one) can stop the write.
FAILURES = {
    "fsync of the new file": ("fsync", lambda fd: True),
    "link of the backup": ("link", lambda src, dst: True),
    "rename of the backup": ("replace", lambda src, dst: dst.endswith(".bak")),
    "rename over the store": ("replace", lambda src, dst: dst.endswith("jobs.yaml")),
}


@pytest.mark.parametrize("function, when", list(FAILURES.values()), ids=list(FAILURES))
def test_a_write_that_fails_inside_atomic_write_keeps_the_old_file(tmp_path, monkeypatch, function, when):
    path, before, first = two_generations(tmp_path)
    monkeypatch.setattr(os, function, failing(getattr(os, function), when))
    with pytest.raises(OSError) as e:
        store.save_jobs(path, [job(1), job(2), job(3)])
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert open(path, "rb").read() == before  # byte for byte
    assert [j["name"] for j in store.load_jobs(path)] == ["job-1", "job-2"]
    # No temp file (nor a link made for the backup) is left behind; the backup is a good
    # generation (the first, or the second if the failure came after it was moved aside).
    assert sorted(os.listdir(tmp_path)) == ["jobs.yaml", "jobs.yaml.bak"]
    assert open(path + ".bak", "rb").read() in (first, before)


def test_a_write_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    """A real failing write (EFBIG from RLIMIT_FSIZE, as on a full disk: the write itself
    fails part-way), in a child process so that the limit binds nothing else."""
    path, before, _ = two_generations(tmp_path)
    limit = len(before) + 100
    bigger = [job(i, excludes=["x" * 100] * 10) for i in range(1, 20)]
    program = (
        "import json, resource, sys\n"
        "from bkmd import store\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))\n"
        "try:\n"
        "    store.save_jobs(sys.argv[1], json.load(sys.stdin))\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
        "else:\n"
        "    print('saved')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program, path, str(limit)],
        input=json.dumps(bigger),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(errno.EFBIG)
    assert len(store.dump_jobs(bigger)) > limit  # it did try to write past the limit
    assert open(path, "rb").read() == before
    assert [j["name"] for j in store.load_jobs(path)] == ["job-1", "job-2"]
    assert sorted(os.listdir(tmp_path)) == ["jobs.yaml", "jobs.yaml.bak"]


def test_settings_round_trip_and_validation(tmp_path):
    path = str(tmp_path / "settings.yaml")
    store.save_settings(path, {"max_concurrent_jobs": 4, "rsync_args": ["--checksum"]})
    assert store.load_settings(path) == {"max_concurrent_jobs": 4, "rsync_args": ["--checksum"]}
    (tmp_path / "bad.yaml").write_text("version: 1\nmax_concurrent_jobs: 0\n")
    with pytest.raises(store.StoreError, match="max_concurrent_jobs"):
        store.load_settings(str(tmp_path / "bad.yaml"))
    # A key this bkm does not know (a newer bkm's) is not an error: ignored, kept, warned about.
    (tmp_path / "unknown.yaml").write_text("nope: 1\nmax_concurrent_jobs: 3\n")
    found = store.read_settings(str(tmp_path / "unknown.yaml"))
    assert found.values == {"max_concurrent_jobs": 3} and found.unknown == {"nope": 1}
    assert any("'nope'" in warning for warning in found.warnings)
    assert store.load_settings(str(tmp_path / "unknown.yaml")) == {"max_concurrent_jobs": 3}


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
wide = st.text(st.characters(blacklist_categories=("Cs",), min_codepoint=0x7F), max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    name=text,
    source=wide,
    excludes=st.lists(text, max_size=3),
    percent=st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 2)),
    total=st.integers(0, 2**62),
)
def test_fast_format_means_the_same_to_a_yaml_parser(tmp_path_factory, name, source, excludes, percent, total):
    # The store is read by json on the fast path; any YAML tool must read the same values.
    # (Percent is stored rounded to 2 places by Job.record(): YAML 1.1 reads 1e-05 as text.)
    path = str(tmp_path_factory.mktemp("s") / "jobs.yaml")
    record = job(
        1,
        name=name,
        source=source,
        excludes=excludes,
        progress={"percent": percent, "total_bytes": total, "eta_seconds": None},
    )
    store.save_jobs(path, [record])
    assert store.load_jobs(path) == [record]
    with open(path) as f:
        assert yaml.safe_load(f)["jobs"] == json.loads(json.dumps([record]))


def test_a_jobs_stored_line_is_made_again_exactly_when_the_job_changed():
    from bkmd.job import Job
    from helpers import job_record

    record = job_record()
    job = Job.from_record(record)
    made = []

    def make(r):
        made.append(r)
        return store.job_line(r)

    first = job.stored_line(make)
    assert job.stored_line(make) is first and len(made) == 1
    job.progress = dict(job.progress, bytes_transferred=5)  # every change replaces a value
    assert '"bytes_transferred": 5' in job.stored_line(make) and len(made) == 2
    job.rev += 1000
    job.stored_line(make)
    assert len(made) == 3
    job.status = "queued"
    assert '"status": "queued"' in job.stored_line(make)
    assert json.loads(job.stored_line(make)[2:]) == job.record()


# -- the journal ----------------------------------------------------------------------------------


def _jobs_at(folder: str, count: int = 3):
    """A Jobs over a store of ``count`` jobs written whole, as bkmd leaves it after loading."""
    from bkmd.jobs import Jobs
    from helpers import job_record

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "jobs.yaml")
    store.save_jobs(path, [job_record(name=f"j{i}", id=f"{i:032x}", rev=i + 1) for i in range(count)])
    jobs = Jobs(path, store.load_jobs(path), lambda *a: None, {"uid": 0, "user": "root", "gid": 0})
    jobs.unsaved = True
    jobs.save(whole=True)  # as bkmd writes it: with a generation for a journal to continue
    return path, jobs


def _loaded(path: str) -> dict[str, dict]:
    records, _, warning = store.apply_journal(path, store.load_jobs(path))
    assert warning is None
    return {record["name"]: record for record in records}


def test_a_save_of_a_few_jobs_appends_them_to_the_journal_and_loading_applies_it(tmp_path):
    path, jobs = _jobs_at(str(tmp_path))
    with open(path, "rb") as f:
        whole = f.read()
    jobs.by_name["j1"].status = "completed"
    jobs.save()
    with open(path, "rb") as f:
        assert f.read() == whole  # the store itself is not written
    assert os.path.getsize(path + ".journal") > 0
    assert _loaded(path)["j1"]["status"] == "completed" and _loaded(path)["j0"]["status"] == "pending"
    jobs._remove(jobs.by_name["j2"])
    jobs.save()
    assert sorted(_loaded(path)) == ["j0", "j1"]
    # Written whole, the store has it all and the journal is gone.
    jobs.save(whole=True)
    assert not os.path.exists(path + ".journal")
    assert sorted(r["name"] for r in store.load_jobs(path)) == ["j0", "j1"]


def test_a_checkpoint_save_is_appended_unflushed_and_the_next_flushed_save_covers_it(tmp_path, monkeypatch):
    # Progress checkpoints (durable=False) do not flush: on a backup's own disk each flush
    # commits every pending change of the file system. The real fsync runs; we count its calls.
    path, jobs = _jobs_at(str(tmp_path))
    flushed = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    jobs.by_name["j0"].status = "running"
    jobs.save(durable=False)
    assert flushed == [] and _loaded(path)["j0"]["status"] == "running"
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    # The journal's data, then its folder (created by the unflushed save, named only now).
    assert flushed == [path + ".journal", str(tmp_path)]
    jobs.by_name["j1"].status = "failed"
    jobs.save()
    assert flushed[2:] == [path + ".journal"]
    loaded = _loaded(path)
    assert [loaded[n]["status"] for n in ("j0", "j1")] == ["completed", "failed"]


def test_after_a_failed_flushed_save_the_next_save_is_flushed_whoever_asks(tmp_path, monkeypatch):
    # A run's end is saved flushed; when that fails (a full disk), the checkpoint that retries
    # it must flush too, and an earlier unflushed append may be what did not reach the disk:
    # the store is then written whole.
    path, jobs = _jobs_at(str(tmp_path))
    flushed, failing = [], []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if failing:
            failing.pop()
            raise OSError(errno.EIO, "Input/output error")
        flushed.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    jobs.by_name["j0"].status = "running"
    jobs.save(durable=False)  # a checkpoint
    jobs.by_name["j0"].status = "completed"
    failing.append(1)
    with pytest.raises(OSError):
        jobs.save()
    assert jobs.flush_owed and jobs.journal.generation is None
    del flushed[:]
    jobs.save(durable=False)  # the next checkpoint: flushed, and whole
    assert flushed and not jobs.flush_owed
    assert not os.path.exists(path + ".journal")
    assert [r["status"] for r in store.load_jobs(path) if r["name"] == "j0"] == ["completed"]


def test_a_save_cut_short_counts_for_nothing(tmp_path):
    path, jobs = _jobs_at(str(tmp_path))
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    size = os.path.getsize(path + ".journal")
    jobs.by_name["j1"].status = "failed"
    jobs.by_name["j2"].status = "failed"
    jobs.save()
    with open(path + ".journal", "rb") as f:
        data = f.read()
    for cut in (size + 10, len(data) - len(b'{"commit": 1}\n'), len(data) - 1):
        with open(path + ".journal", "wb") as f:
            f.write(data[:cut])  # the second save torn at the end or in the middle: a crash
        loaded = _loaded(path)
        assert [loaded[n]["status"] for n in ("j0", "j1", "j2")] == ["completed", "pending", "pending"]


def test_a_journal_of_another_generation_of_the_store_is_set_aside_never_applied(tmp_path):
    path, jobs = _jobs_at(str(tmp_path))
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    # The store was written whole since by something else (another generation, or none).
    store.save_jobs(path, store.load_jobs(path))
    records, applied, warning = store.apply_journal(path, store.load_jobs(path))
    assert not applied and "does not continue" in warning
    assert {r["name"]: r["status"] for r in records}["j0"] == "pending"
    [aside] = [n for n in os.listdir(tmp_path) if n.startswith("jobs.yaml.journal.ignored-")]
    assert aside in warning and not os.path.exists(path + ".journal")  # kept, and never written over


def test_a_journal_follows_its_store_when_both_are_copied_or_edited(tmp_path):
    import shutil

    path, jobs = _jobs_at(str(tmp_path / "a"))
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a restore, a move to another disk: new inodes
    copy = str(tmp_path / "b" / "jobs.yaml")
    with open(copy, "a") as f:
        f.write("# a comment added by hand\n")
    assert _loaded(copy)["j0"]["status"] == "completed"


def test_a_journal_with_undecodable_bytes_at_its_end_loads_what_was_committed(tmp_path):
    path, jobs = _jobs_at(str(tmp_path))
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    with open(path + ".journal", "ab") as f:
        f.write(b'{"job": {"id": "\xe2\x82')  # a torn multibyte character, then a crash
    assert _loaded(path)["j0"]["status"] == "completed"
    with open(path + ".journal", "ab") as f:
        f.write(b"\xff\xfe garbage\n")
    assert _loaded(path)["j0"]["status"] == "completed"


def test_a_failed_append_is_cut_off_and_the_next_save_carries_only_what_changed(tmp_path, monkeypatch):
    from bkmd.change import Change

    path, jobs = _jobs_at(str(tmp_path))
    jobs.by_name["j0"].status = "completed"
    jobs.save()
    size = os.path.getsize(path + ".journal")
    change = Change()
    jobs.set_status(jobs.by_name["j1"], "start", "running", change)
    real_write = os.write

    def short_then_full(fd, data):  # half the save reaches the disk, then the disk is full
        if len(data) > 20:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(OSError):
        jobs.save()
    monkeypatch.setattr(os, "write", real_write)
    change.undo()
    assert os.path.getsize(path + ".journal") == size  # cut back to the last whole save
    assert jobs.dirty == set()  # j1 is back as it is on disk: nothing to write again
    jobs.by_name["j2"].status = "failed"
    jobs.save()
    loaded = _loaded(path)
    assert [loaded[n]["status"] for n in ("j0", "j1", "j2")] == ["completed", "pending", "failed"]


def test_many_changes_or_a_full_journal_write_the_store_whole(tmp_path, monkeypatch):
    path, jobs = _jobs_at(str(tmp_path), count=5)
    monkeypatch.setattr(store, "JOURNAL_MAX_ENTRIES", 3)
    for name in ("j0", "j1", "j2", "j3"):
        jobs.by_name[name].status = "completed"
    jobs.save()  # four changes: more than a journal save takes
    assert not os.path.exists(path + ".journal")
    assert sum(r["status"] == "completed" for r in store.load_jobs(path)) == 4
    monkeypatch.setattr(store, "JOURNAL_MAX_BYTES", 1)
    jobs.by_name["j4"].status = "completed"
    jobs.save()  # the first save after a whole write starts the journal
    assert os.path.exists(path + ".journal")
    jobs.by_name["j4"].status = "failed"
    jobs.save()  # the journal is "full": written whole again
    assert not os.path.exists(path + ".journal")
    assert {r["name"]: r["status"] for r in store.load_jobs(path)}["j4"] == "failed"


def test_bkmd_loads_a_journal_left_by_a_crash_and_writes_the_store_whole(tmp_path):
    from bkmd.jobs import Jobs

    path, jobs = _jobs_at(str(tmp_path))
    jobs.by_name["j1"].status = "completed"
    jobs.save()  # then bkmd dies: the change is only in the journal
    records, applied, _ = store.apply_journal(path, store.load_jobs(path))
    again = Jobs(path, records, lambda *a: None, {"uid": 0, "user": "root", "gid": 0})
    assert applied and again.unsaved  # its first save writes the store whole, ending the journal
    again.save()
    assert not os.path.exists(path + ".journal")
    assert {r["name"]: r["status"] for r in store.load_jobs(path)}["j1"] == "completed"
