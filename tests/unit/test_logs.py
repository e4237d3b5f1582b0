import os

import pytest
from bkmd.logs import JobLogs, lines_before


def write(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.mark.parametrize("count", [1, 3, 10, 500, 2000])
def test_last_lines_across_block_boundaries(tmp_path, count):
    path = str(tmp_path / "x.log")
    lines = [f"2026-11-28T00:00:00Z info line {i} " + "x" * (i % 300) for i in range(1500)]
    write(path, lines)
    got, first = lines_before(path, None, count)
    assert [text for _, text in got] == lines[-count:]
    # Paging backwards from the earliest offset continues without a gap or an overlap.
    more, _ = lines_before(path, first, 5)
    assert [text for _, text in more] == lines[-count - 5 : -count] if count < 1500 else more == []


def test_missing_file_and_empty_lines(tmp_path):
    assert lines_before(str(tmp_path / "none.log"), None, 5) == ([], 0)
    path = str(tmp_path / "y.log")
    with open(path, "w") as f:
        f.write("a\n\nb\nc")  # no final newline: the last line still counts
    assert [t for _, t in lines_before(path, None, 10)[0]] == ["a", "b", "c"]


def test_rotation_keeps_the_configured_backups(tmp_path):
    logs = JobLogs(str(tmp_path), {"log_max_bytes": 4096, "log_backups": 2})
    for i in range(400):
        logs.write("job", f"line {i} " + "y" * 40)
    names = sorted(os.listdir(tmp_path))
    assert names == ["job.log", "job.log.1", "job.log.2"]
    assert all(os.path.getsize(tmp_path / n) <= 4096 for n in names)
    with open(tmp_path / "job.log") as f:
        assert f.read().splitlines()[-1].endswith("line 399 " + "y" * 40)


def test_a_line_is_one_line_whatever_it_contains(tmp_path):
    logs = JobLogs(str(tmp_path), {"log_max_bytes": 100000, "log_backups": 1})
    logs.write("job", "two\nlines\rand a return")
    with open(tmp_path / "job.log") as f:
        assert len(f.read().splitlines()) == 1
