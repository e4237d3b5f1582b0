"""Engines: argv builders and parsers, on output captured from real rsync and rclone runs."""

import os
import re
from types import SimpleNamespace

import pytest
from bkmd import outcome as judging
from bkmd.engines import rclone, rsync
from bkmd.progress import Tracker
from helpers import DATA, replay

from bkm import settings as schema


def read(name: str) -> bytes:
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def feed_records(parser, stream: str, data: bytes):
    """Feed ``data`` one record at a time, as it arrives from a slow transfer (a record a
    second): every record becomes a sample. Read together, a run of records gives only the
    samples that change what is shown (see test_rsync_records_read_together_give_one_sample)."""
    samples, lines = [], []
    for piece in re.split(rb"(?<=[\r\n])", data):
        if piece:
            more, text = parser.feed(stream, piece)
            samples += more
            lines += text
    return samples, lines


def parse_all(module, name: str):
    """Feed a capture to a parser read by read, as bkmd does; its exit code, the parser, the
    samples and the message lines."""
    code, chunks = replay(name)
    parser = module.Parser()
    samples, lines = [], []
    for _, stream, data in chunks:
        more, text = parser.feed(stream, data)
        samples += more
        lines += text
    more, text = parser.finish()
    return code, parser, samples + more, lines + text


def job(**changes):
    values = dict(source="/src/", dest="/dst", bwlimit=0, excludes=[], runs=[], tool_args=[])
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
        "--stats",
        "--no-h",
        "--outbuf=L",
        "--partial-dir=.rsync-partial",
        "--bwlimit=500",
        "-s",
    ):
        assert flag in args
    # Local copies go --whole-file (rsync's default there), except a resumed run, which
    # builds on the partial data the interrupted one kept.
    assert "--no-W" not in args
    assert "--no-W" in rsync.argv(job(), SETTINGS, resume=True)
    # Incremental recursion stays on (issue 11: --no-inc-recursive made 20,000 small files 2.4x
    # slower); the parser says when the total is known instead (test_progress.py).
    assert not any("inc-recursive" in a for a in args)
    # An exclude is always glued to its option: it can never become an option of its own.
    assert "--exclude=--rsh=evil" in args and "--rsh=evil" not in args


def test_rsync_stats_count_the_files_in_scope():
    parser = rsync.Parser()
    feed_records(parser, "out", read("rsync_p2_stats2.out"))
    parser.finish()
    assert parser.files_exact == 225


def test_rsync_argv_remote_keeps_delta_transfer_and_settings_apply():
    settings = dict(SETTINGS, rsync_path="/opt/rsync", rsync_args=["--checksum"])
    args = rsync.argv(job(dest="backup@host:/srv"), settings)
    assert args[0] == "/opt/rsync" and "--no-W" not in args and "--checksum" in args
    assert not any(a.startswith("--bwlimit") for a in args)


def test_a_jobs_tool_args_come_after_the_settings_and_before_the_paths():
    settings = dict(SETTINGS, rsync_args=["--checksum"], rclone_args=["--fast-list"])
    for engine, first in ((rsync, "--checksum"), (rclone, "--fast-list")):
        for build in (engine.argv, engine.dry_run_argv):
            args = build(job(tool_args=["--rsh=ssh -p 2222", "-v"]), settings)
            assert args[-6:] == [first, "--rsh=ssh -p 2222", "-v", "--", "/src/", "/dst"]


def test_rsync_environment_pins_the_locale_and_drops_argument_switches():
    env = rsync.environment({"LANG": "de_DE.UTF-8", "RSYNC_PROTECT_ARGS": "0", "RSYNC_OLD_ARGS": "1", "X": "y"})
    assert env == {"LANG": "de_DE.UTF-8", "LC_ALL": "C.UTF-8", "X": "y"}


# -- rsync parser --------------------------------------------------------------------------------


def test_rsync_throttled_run_gives_rising_samples_and_a_total():
    parser = rsync.Parser()
    samples, lines = feed_records(parser, "out", read("rsync_p2_bw2000.out"))
    more, rest = parser.finish()
    samples += more
    assert len(samples) > 100 and lines + rest == []
    assert samples[1].bytes == 2_097_152 and samples[1].percent == 7.0
    assert samples[-1].percent == 100.0 and samples[-1].checked == 1.0
    assert abs(samples[-1].total - 26_338_024) / 26_338_024 < 0.02


def test_rsync_records_split_anywhere_are_put_back_together():
    data = read("rsync_p2_bw2000.out")
    whole, _ = feed_records(rsync.Parser(), "out", data + b"\n")
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
    samples, lines = feed_records(parser, "out", read("rsync_p2_stats2.out"))
    assert parser.total_exact == 110_299_104
    assert "Total file size: 110,299,104 bytes" in lines
    assert samples and all(s.total == 110_299_104 for s in samples if s is samples[-1])


def test_rsync_nothing_changed_is_all_checked_and_no_bytes():
    samples, _ = feed_records(rsync.Parser(), "out", read("rsync_p2_nochange.out"))
    assert samples and all(s.bytes == 0 and s.checked == 1.0 for s in samples)


def test_rsync_few_changed_ends_at_4_percent_of_bytes_but_all_checked():
    samples, _ = feed_records(rsync.Parser(), "out", read("rsync_p2_fewchanged.out"))
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
    samples, _ = feed_records(rsync.Parser(), "out", read("rsync_p2_ir_default_smalltree.out"))
    assert samples and all(s.checked is None or 0 <= s.checked <= 1 for s in samples)


def test_rsync_incremental_recursion_total_is_unknown_until_to_chk():
    """3,000 small files in 300 folders (tests/data/CAPTURES.md): while rsync still lists the
    tree ("ir-chk", and before the first chk record) its records bound the total from below
    only; from the first "to-chk" record they bound it both ways, and --stats gives it exactly."""
    rc, parser, samples, _ = parse_all(rsync, "rsync_ir_smallfiles")
    exact = 7_643_335
    assert rc == 0 and parser.total_exact == exact
    switch = next(i for i, s in enumerate(samples) if not s.listing)
    assert switch > 1000 and not any(s.listing for s in samples[switch:])
    for s in samples[:switch]:
        assert s.total is None and s.total_high is None and s.total_low <= exact
    assert all(s.total_low <= exact <= (s.total_high or exact) for s in samples[switch:])
    # Every record with a chk part says how far the checks got, "ir-chk" ones included.
    assert sum(s.checked is not None for s in samples[:switch]) > 1000
    assert all(0 <= s.checked <= 1 for s in samples if s.checked is not None)
    assert samples[-1].ended and samples[-1].total == exact


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


# What ssh, the far side or rsync said about the cause, not rsync's closing summary
# ("rsync error: ... (code N) at io.c(...)") nor "connection unexpectedly closed".
RSYNC_CAUSES = [
    ("rsync_ssh_unknown_host", 255, "ssh: Could not resolve hostname nosuchhost.invalid: Name or service not known"),
    ("rsync_ssh_refused", 255, "ssh: connect to host 127.0.0.1 port 1: Connection refused"),
    ("rsync_ssh_hostkey", 255, "Host key verification failed."),
    ("rsync_ssh_auth", 255, "bkm@127.0.0.1: Permission denied (password,publickey)."),
    ("rsync_ssh_no_remote_rsync", 12, '"rsync --server -slogDtpre.LsfxCIvu" not implemented'),
    (
        "rsync_remote_shell_missing",
        14,
        "rsync: [sender] Failed to exec /nonexistent/ssh: No such file or directory (2)",
    ),
    (
        "rsync_missing_source",
        23,
        'rsync: [sender] change_dir "/tmp/bkm-capture/nosuchsrc" failed: No such file or directory (2)',
    ),
]


@pytest.mark.parametrize("name, code, cause", RSYNC_CAUSES)
def test_rsync_error_names_the_most_specific_line(name, code, cause):
    rc, parser, _, lines = parse_all(rsync, name)
    assert rc == code and cause in lines  # the capture says what it should
    expected = f"rsync exit {code}: {rsync.MEANINGS[code]}: {cause}"
    assert rsync.outcome(rc, lines, parser, job()).error == expected
    # Judged from the message lines alone (which stream each came from unknown), the same.
    assert rsync.outcome(rc, lines, rsync.Parser(), job()).error == expected
    # And what `--wait`, `job show` and `status` get.
    verdict = judging.judge(rsync, rc, lines, parser, job())
    assert verdict.status == "failed" and verdict.error == expected


def test_rsync_error_keeps_the_cause_past_the_last_200_lines():
    """bkmd keeps only the last 200 message lines; the parser remembers the cause itself."""
    rc, parser, _, lines = parse_all(rsync, "rsync_ssh_refused")
    later = [f"rsync: connection unexpectedly closed ({i} bytes received so far) [sender]" for i in range(300)]
    error = rsync.outcome(rc, (lines + later)[-200:], parser, job()).error
    assert error.endswith("ssh: connect to host 127.0.0.1 port 1: Connection refused")


def test_error_lines_are_cut_to_a_sensible_length():
    name = "/src/" + "x" * 1000
    line = f'rsync: [sender] send_files failed to open "{name}": Permission denied (13)'
    error = rsync.outcome(23, [line], rsync.Parser(), job()).error
    assert error.startswith("rsync exit 23: partial transfer due to error: rsync: [sender] send_files")
    assert error.endswith("…") and len(error) <= len("rsync exit 23: partial transfer due to error: ") + 300
    parser = rclone.Parser()
    parser.feed("err", ('{"level":"error","msg":"Failed to copy: ' + "y" * 1000 + '"}\n').encode())
    assert len(rclone.outcome(1, [], parser, job()).error) <= len(f"rclone exit 1: {rclone.MEANINGS[1]}: ") + 300


def test_rsync_records_bound_the_total_and_it_is_shown_once_pinned_down():
    """rsync truncates its percent, so each record bounds the total; the total is given once
    the bounds are within 2 %, and then stays within 1 % of its first value."""
    for name, exact in (("rsync_p2_noir_bw", 110_299_104), ("rsync_p2_bw2000", 26_338_024)):
        _, _, samples, _ = parse_all(rsync, name)
        assert samples[1].total is None  # 19 % (noir_bw), 7 % (bw2000): far too loose
        assert all(s.total_low <= exact <= (s.total_high or exact) for s in samples)
        totals = [s.total for s in samples if s.total]
        assert totals and max(totals) <= min(totals) * 1.01 and totals[-1] == exact


def test_rsync_settled_bytes_are_those_of_finished_files():
    """Stopped 4.5 s into a 2000 KiB/s run: big1.bin (6 MiB) finished, big2.bin partly sent."""
    rc, _, samples, _ = parse_all(rsync, "rsync_resume_tree_run1")
    assert rc == 20
    assert [(s.bytes, s.settled) for s in samples if s.checked is not None] == [(6_291_456, 6_291_456)]
    end = samples[-1]
    assert end.ended and end.bytes == 8_290_304 and end.settled == 6_291_456
    assert [s for s in samples if s.ended] == [end]


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


RCLONE_CAUSES = [
    # Printed as plain text, not JSON: rclone gives up before it starts logging in JSON.
    (
        "rclone_missing_remote",
        1,
        'Failed to create file system for "nosuch:bucket": didn\'t find section in config file',
    ),
    (
        "rclone_connection_refused",
        1,
        'Failed to create file system for "wd:x": read metadata failed: Propfind "http://127.0.0.1:9/x": '
        "dial tcp 127.0.0.1:9: connect: connection refused",
    ),
    # Logged as errors, and then summed up ("Attempt 1/1 failed with 1 errors and: ...").
    (
        "rclone_missing_source",
        3,
        "Local file system at /tmp/bkm-capture/nosuchsrc: error reading source root directory: directory not found",
    ),
    ("rclone_dest_not_writable", 1, "s10.txt: Failed to copy: mkdir /tmp/bkm-capture/ro/sub: permission denied"),
]


@pytest.mark.parametrize("name, code, cause", RCLONE_CAUSES)
def test_rclone_error_names_the_most_specific_line(name, code, cause):
    rc, parser, _, lines = parse_all(rclone, name)
    assert rc == code
    # Every run without an rclone.conf logs this NOTICE: it is in the log, never the error.
    assert any("Config file" in line and "not found - using defaults" in line for line in lines)
    expected = f"rclone exit {code}: {rclone.MEANINGS[code]}: {cause}"
    assert rclone.outcome(rc, lines, parser, job()).error == expected
    assert rclone.outcome(rc, lines, rclone.Parser(), job()).error == expected  # from the lines alone
    assert judging.judge(rclone, rc, lines, parser, job()).error == expected


def test_rclone_config_notice_alone_is_not_an_error():
    _, parser, _, lines = parse_all(rclone, "rclone_missing_remote")
    notice = [line for line in lines if "Config file" in line]
    assert rclone.outcome(1, notice, rclone.Parser(), job()).error == f"rclone exit 1: {rclone.MEANINGS[1]}"


def test_rclone_settled_bytes_leave_out_the_files_being_sent():
    """Stopped 4.5 s in: the 20 small files and m/f1.bin, m/f2.bin finished; big1, big2, f3, f4
    were being sent (and are sent again from their first byte by the next run)."""
    rc, _, samples, _ = parse_all(rclone, "rclone_resume_tree_run1")
    assert rc == -15
    end = samples[-1]
    assert end.ended and end.bytes == 8_293_920 and end.settled == 20 * 1000 + 2 * 1_048_576
    assert all(s.total == 20_991_520 for s in samples)


def test_rclone_total_is_unknown_while_the_check_first_queue_fills():
    parser = rclone.Parser()
    checking = b'{"level":"warning","msg":"","stats":{"bytes":0,"totalBytes":5000,"transfers":0,"checks":3}}\n'
    sending = b'{"level":"warning","msg":"","stats":{"bytes":10,"totalBytes":9000,"transfers":0}}\n'
    samples, _ = parser.feed("err", checking + sending)
    assert [s.total for s in samples] == [None, 9000]


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
    samples, _ = feed_records(rsync.Parser(), "out", read("rsync_p2_bw2000.out"))
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
    # Nothing is read a third time: finish() only repeats the last reading, marked as the end.
    samples, lines = parser.finish()
    assert lines == [] and [(s.bytes, s.ended) for s in samples] == [(20_971_520, True)]


def test_rsync_sent_bytes_are_its_literal_data_not_the_files_it_counted():
    """A file vanished before it was sent: rsync counts it in "Total transferred file size"
    and in its progress, but sent only the other three (captured: 4 files of 1 MiB, one removed
    mid-run, `rsync -a --stats --no-inc-recursive --bwlimit=1024`)."""
    parser = rsync.Parser()
    _, lines = parser.feed("out", read("rsync_vanished_file_stats.out"))
    assert parser.sent_exact == 3 * 1024 * 1024 and parser.total_exact == 4 * 1024 * 1024
    result = rsync.outcome(24, lines, parser, job(source="/tmp/vt/src/"))
    assert result.status == "completed" and result.warnings == ['file has vanished: "/tmp/vt/src/f3.bin"']


def test_rsync_sent_bytes_of_a_full_copy():
    parser = rsync.Parser()
    parser.feed("out", read("rsync_p2_stats2.out"))
    parser.finish()
    assert parser.sent_exact == 110_299_104
