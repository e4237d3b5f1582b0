"""Engines: argv builders and parsers, on output captured from real rsync and rclone runs."""

import os
from types import SimpleNamespace

import pytest
from bkmd.engines import rclone, rsync
from bkmd.progress import Tracker

from bkm import settings as schema

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def read(name: str) -> bytes:
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def job(**changes):
    values = dict(source="/src/", dest="/dst", bwlimit=0, excludes=[])
    values.update(changes)
    return SimpleNamespace(**values)


SETTINGS = dict(schema.DEFAULTS)


# -- rsync argv ----------------------------------------------------------------------------------


def test_rsync_argv_ends_options_before_the_paths():
    args = rsync.argv(job(bwlimit=500, excludes=["*.tmp", "--rsh=evil"]), SETTINGS)
    assert args[0] == "rsync"
    assert args[-3:] == ["--", "/src/", "/dst"]
    for flag in (
        "-a",
        "--info=progress2",
        "--no-inc-recursive",
        "--partial-dir=.rsync-partial",
        "--no-W",
        "--bwlimit=500",
        "-s",
    ):
        assert flag in args
    # An exclude is always glued to its option: it can never become an option of its own.
    assert "--exclude=--rsh=evil" in args and "--rsh=evil" not in args


def test_rsync_argv_remote_keeps_delta_transfer_and_settings_apply():
    settings = dict(SETTINGS, rsync_path="/opt/rsync", rsync_args=["--checksum"])
    args = rsync.argv(job(dest="backup@host:/srv"), settings)
    assert args[0] == "/opt/rsync" and "--no-W" not in args and "--checksum" in args
    assert not any(a.startswith("--bwlimit") for a in args)


def test_rsync_environment_pins_the_locale_and_drops_argument_switches():
    env = rsync.environment({"LANG": "de_DE.UTF-8", "RSYNC_PROTECT_ARGS": "0", "RSYNC_OLD_ARGS": "1", "X": "y"})
    assert env == {"LANG": "de_DE.UTF-8", "LC_ALL": "C.UTF-8", "X": "y"}


# -- rsync parser --------------------------------------------------------------------------------


def test_rsync_throttled_run_gives_rising_samples_and_a_total():
    parser = rsync.Parser()
    samples, lines = parser.feed("out", read("rsync_p2_bw2000.out"))
    more, rest = parser.finish()
    samples += more
    assert len(samples) > 100 and lines + rest == []
    assert samples[1].bytes == 2_097_152 and samples[1].percent == 7.0
    assert samples[-1].percent == 100.0 and samples[-1].checked == 1.0
    assert abs(samples[-1].total - 26_338_024) / 26_338_024 < 0.02


def test_rsync_records_split_anywhere_are_put_back_together():
    data = read("rsync_p2_bw2000.out")
    whole, _ = rsync.Parser().feed("out", data + b"\n")
    parser = rsync.Parser()
    pieces = []
    for i in range(0, len(data), 7):  # 7-byte reads cut records in the middle
        pieces += parser.feed("out", data[i : i + 7])[0]
    pieces += parser.finish()[0]

    def collapsed(values):  # a record cut before its "(xfr#...)" part is read twice
        return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]

    assert collapsed([s.bytes for s in pieces]) == collapsed([s.bytes for s in whole])


def test_rsync_stats_give_the_exact_total_and_are_logged():
    parser = rsync.Parser()
    samples, lines = parser.feed("out", read("rsync_p2_stats2.out"))
    assert parser.total_exact == 110_299_104
    assert "Total file size: 110,299,104 bytes" in lines
    assert samples and all(s.total == 110_299_104 for s in samples if s is samples[-1])


def test_rsync_nothing_changed_is_all_checked_and_no_bytes():
    samples, _ = rsync.Parser().feed("out", read("rsync_p2_nochange.out"))
    assert samples and all(s.bytes == 0 and s.checked == 1.0 for s in samples)


def test_rsync_few_changed_ends_at_4_percent_of_bytes_but_all_checked():
    samples, _ = rsync.Parser().feed("out", read("rsync_p2_fewchanged.out"))
    assert samples[-1].percent == 4.0 and samples[-1].checked == 1.0


def test_rsync_german_locale_digit_grouping():
    lines = read("rsync_locale_progress.txt").decode().splitlines()
    # The capture marks line ends with a visible "$" (cat -A).
    german = next(line for line in lines if line.startswith("de_DE.UTF-8")).split(None, 1)[1].rstrip("$")
    parser = rsync.Parser()
    samples, _ = parser.feed("out", ("\r" + german + "\r").encode())
    assert samples[0].bytes == 20_971_520 and samples[0].percent == 100.0
    stats = next(line for line in lines if line.startswith("Total file size: 20.971.520"))
    parser.feed("out", stats.encode() + b"\n")
    assert parser.total_exact == 20_971_520


def test_rsync_human_readable_sizes():
    text = read("rsync_human_levels.txt").decode()
    h_line = next(line for line in text.splitlines() if line.startswith("-h "))
    record = h_line.split(None, 1)[1].split("|")[0]
    samples, _ = rsync.Parser().feed("out", ("\r" + record + "\r").encode())
    assert samples[0].bytes == 8_550_000


def test_rsync_incremental_recursion_record_parses():
    samples, _ = rsync.Parser().feed("out", read("rsync_p2_ir_default_smalltree.out"))
    assert samples and all(s.checked is None or 0 <= s.checked <= 1 for s in samples)


def test_rsync_error_lines_go_to_the_log():
    parser = rsync.Parser()
    err = b'rsync: [sender] link_stat "/x" failed: No such file or directory (2)\nrsync error: some'
    samples, lines = parser.feed("err", err)
    assert samples == [] and lines == ['rsync: [sender] link_stat "/x" failed: No such file or directory (2)']
    assert parser.finish()[1] == ["rsync error: some"]


@pytest.mark.parametrize(
    "code, status, text",
    [
        (0, "completed", None),
        (23, "failed", "rsync exit 23: partial transfer due to error"),
        (11, "failed", "rsync exit 11: error in file I/O"),
        (-9, "failed", "killed by signal 9"),
    ],
)
def test_rsync_outcomes(code, status, text):
    result = rsync.outcome(
        code, ['rsync: [sender] link_stat "/gone" failed: No such file (2)'], rsync.Parser(), job(source="/src/")
    )
    assert result.status == status
    if text:
        assert text in result.error and "link_stat" in result.error


def test_rsync_24_is_completed_with_a_warning():
    result = rsync.outcome(24, ['file has vanished: "/src/tmp.1"'], rsync.Parser(), job(source="/src/"))
    assert result.status == "completed" and result.error is None
    assert "vanished" in result.warnings[0]


def test_rsync_24_with_the_source_root_missing_is_a_failure():
    lines = ['rsync: [sender] link_stat "/src" failed: No such file or directory (2)']
    assert rsync.outcome(24, lines, rsync.Parser(), job(source="/src/")).status == "failed"


def test_rsync_exit_code_meanings_match_the_captures():
    text = read("rsync_exitcodes.txt").decode()
    for code in (1, 10, 11, 14, 23):
        assert f"rc={code}" in text and code in rsync.MEANINGS


# -- rclone --------------------------------------------------------------------------------------


def test_rclone_argv():
    args = rclone.argv(job(source="/src", dest="remote:bucket", bwlimit=750, excludes=["*.iso"]), SETTINGS)
    assert args[:2] == ["rclone", "copy"]
    assert args[-3:] == ["--", "/src", "remote:bucket"]
    for flag in ("--use-json-log", "--stats=1s", "--retries=1", "--check-first", "--bwlimit=750", "--exclude=*.iso"):
        assert flag in args


def test_rclone_stats_parse():
    parser = rclone.Parser()
    samples, lines = parser.feed("err", read("rclone_json_stats.err"))
    assert len(samples) >= 4
    assert samples[0].bytes == 21_092_320 and samples[0].total == 110_299_104
    assert [s.bytes for s in samples] == sorted(s.bytes for s in samples)
    assert lines == ["info: Starting bandwidth limiter at 20Mi Byte/s"]


def test_rclone_nothing_to_do_has_no_percent():
    samples, _ = rclone.Parser().feed("err", read("rclone_json_nochange.err"))
    assert samples[0].total == 0 and samples[0].percent is None


def test_rclone_per_file_lines_and_partial_lines():
    data = read("rclone_json_copied_sample.err")
    parser = rclone.Parser()
    _, first = parser.feed("err", data[:50])
    _, lines = parser.feed("err", data[50:])
    assert first == [] and lines[0] == "info: small/f100.dat: Copied (new)"


def test_rclone_non_json_lines_are_kept():
    _, lines = rclone.Parser().feed("err", b"2026/11/28 17:59:17 Fatal error: unknown flag: --x\n")
    assert lines == ["2026/11/28 17:59:17 Fatal error: unknown flag: --x"]


@pytest.mark.parametrize(
    "code, status, text", [(0, "completed", None), (3, "failed", "directory not found"), (-15, "failed", "signal 15")]
)
def test_rclone_outcomes(code, status, text):
    parser = rclone.Parser()
    parser.feed("err", b'{"level":"error","msg":"directory not found"}\n')
    result = rclone.outcome(code, [], parser, job())
    assert result.status == status
    if text:
        assert text in result.error


# -- progress ------------------------------------------------------------------------------------


def test_progress_from_a_real_rsync_run_is_monotonic_with_speed_and_eta():
    samples, _ = rsync.Parser().feed("out", read("rsync_p2_bw2000.out"))
    tracker = Tracker(rsync.TOTAL_COVERS_TREE)
    seen = []
    for i, sample in enumerate(samples[:12]):  # the first 12 s of a 2000 KiB/s run, one a second
        tracker.apply(sample, now=float(i))
        seen.append(dict(tracker.as_dict()))
    percents = [s["percent"] for s in seen]
    assert percents == sorted(percents) and 0 < percents[-1] < 100
    assert seen[-1]["speed_bytes"] > 1_500_000 and seen[-1]["eta_seconds"] is not None
    assert seen[0]["eta_seconds"] is None  # no rate yet


def test_progress_never_goes_back_or_past_100():
    tracker = Tracker(True)
    tracker.apply(rsync.Sample(bytes=80, total=100), 0.0)
    tracker.apply(rsync.Sample(bytes=50, total=200), 1.0)  # an estimate that moved up
    assert tracker.percent == 80.0
    tracker.apply(rsync.Sample(bytes=500, total=100), 2.0)
    assert tracker.percent == 100.0


def test_progress_of_a_resumed_rclone_run_continues():
    tracker = Tracker(rclone.TOTAL_COVERS_TREE, base_bytes=30, base_percent=30.0)
    tracker.apply(rclone.Sample(bytes=0, total=70), 0.0)
    assert tracker.percent == 30.0 and tracker.total == 100
    tracker.apply(rclone.Sample(bytes=35, total=70), 1.0)
    assert tracker.percent == 65.0


def test_progress_complete_is_100():
    tracker = Tracker(True)
    tracker.apply(rsync.Sample(bytes=4, total=100, checked=0.97), 0.0)
    assert tracker.percent == 4.0  # checked files are not moved bytes
    tracker.complete(exact_total=100)
    assert tracker.as_dict()["percent"] == 100.0 and tracker.total == 100


def test_rsync_a_complete_trailing_record_is_used_at_once_and_only_once():
    parser = rsync.Parser()
    samples, _ = parser.feed("out", b"\r         32,768   0%    0.00kB/s    0:00:00  ")
    assert [s.bytes for s in samples] == [32768]  # not held back until the next record begins
    samples, _ = parser.feed("out", b"\r      2,097,152   7%    1.95MB/s    0:00:12  ")
    assert [s.bytes for s in samples] == [2_097_152]
    # A record cut after its time field grows into an xfr record: used again, with more to say.
    samples, _ = parser.feed("out", b"\r     20,971,520  79%    1.96MB/s    0:00:10")
    samples2, _ = parser.feed("out", b" (xfr#1, to-chk=201/202)\r")
    assert [s.bytes for s in samples + samples2] == [20_971_520, 20_971_520]
    assert samples2[0].checked == 1 / 202
    assert parser.finish() == ([], [])
