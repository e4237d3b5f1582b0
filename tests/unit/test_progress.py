"""Progress a person can trust, on real runs replayed read by read (tests/data/CAPTURES.md):
a run stopped with SIGTERM after 4.5 s and run again the same way, as bkm pauses and resumes."""

import re

import pytest
from bkmd.engines import Sample, rclone, rsync
from bkmd.progress import Tracker
from helpers import replay

BWLIMIT = 2000 * 1024  # the resume captures ran at --bwlimit=2000 (KiB/s)
TREE = 20_991_520  # tree/: big1.bin 6 MiB, big2.bin 4 MiB, m/f1..f10.bin 1 MiB, small/ 20 x 1000 B
ONEFILE = 20_971_520  # one/big.bin, 20 MiB


def drive(module, name: str, tracker: Tracker) -> list[dict]:
    """What bkmd does with a run (runs.py): each read's samples at the time it arrived, then
    finish(), then complete() on success or speed and ETA cleared otherwise. Returns the
    progress shown at the start, after each read and at the end (with what the run record
    says was sent)."""
    code, chunks = replay(name)
    parser = module.Parser()
    shown = [tracker.as_dict()]
    clock = 0.0
    for clock, stream, data in chunks:
        samples, _ = parser.feed(stream, data)
        for sample in samples:
            tracker.apply(sample, clock)
        if samples:
            shown.append(tracker.as_dict())
    for sample in parser.finish()[0]:
        tracker.apply(sample, clock)
    if code == 0:
        tracker.complete(parser.total_exact)
    else:
        tracker.speed, tracker.eta = 0.0, None
    shown.append(dict(tracker.as_dict(), sent=tracker.bytes - tracker.base_bytes))
    return shown


def resume(module, capture: str, with_total: bool) -> tuple[list[dict], list[dict]]:
    first = Tracker(module.TOTAL_COVERS_TREE)
    before = drive(module, capture + "_run1", first)
    paused = before[-1]
    # As runs.py builds the Tracker of a resumed run; with_total: also the total shown so far.
    # resumed=True: a run paused before it finished a file or knew its total leaves 0 %, 0 bytes
    # and no total, which a Tracker cannot tell from a fresh run's start.
    extra = {"base_total": paused["total_bytes"]} if with_total else {}
    second = Tracker(
        module.TOTAL_COVERS_TREE,
        base_bytes=paused["bytes_transferred"],
        base_percent=paused["percent"],
        resumed=True,
        **extra,
    )
    return before, drive(module, capture + "_run2", second)


RESUMES = [
    # module, capture, source size, what the tool counted in the resumed run, whether the first
    # run knew the total before the pause
    (rsync, "rsync_resume_tree", TREE, TREE - 6_291_456, True),  # big1.bin was done; big2.bin's part is reused
    # One file: rsync prints no "to-chk" record before it is done, so its list (and total) is
    # never known to be complete before the pause. 8 MiB reused from .rsync-partial, counted again.
    (rsync, "rsync_resume_onefile", ONEFILE, ONEFILE, False),
    (rsync, "rsync_remote_resume_tree", TREE, TREE - 6_291_456, True),  # over a remote shell: delta transfer
    (rclone, "rclone_resume_tree", TREE, TREE - 2_117_152, True),  # the small files, f1, f2 were done
    (rclone, "rclone_resume_onefile", ONEFILE, ONEFILE, True),  # rclone sends the partial file again
]


@pytest.mark.parametrize("with_total", [True, False], ids=["with_base_total", "as_runs_py_calls_today"])
@pytest.mark.parametrize("module, capture, size, counted, known", RESUMES, ids=[r[1] for r in RESUMES])
def test_a_paused_then_resumed_run_shows_true_totals_percents_and_speeds(
    module, capture, size, counted, known, with_total
):
    before, after = resume(module, capture, with_total)
    for shown in (before, after):
        # No ETA without a total.
        assert all(p["eta_seconds"] is None for p in shown if not p["total_known"])
        totals = [p["total_bytes"] for p in shown if p["total_bytes"]]
        # Once known, the total moves by 1 % at most (rclone's exactly, rsync's as its records
        # narrow it down), and nothing is counted twice: never more done than in scope.
        assert (totals or (shown is before and not known)) and max(totals or [0]) <= min(totals or [0]) * 1.01
        assert (shown is after or known) == any(p["total_known"] for p in shown)
        assert all(p["bytes_transferred"] <= p["total_bytes"] for p in shown if p["total_bytes"])
        # Bytes moved per second, not rsync's count of the reused partial file in a burst.
        assert max(p["speed_bytes"] for p in shown) <= 1.2 * BWLIMIT
    # The percent never goes back, from the first run's start to the resumed run's end.
    percents = [p["percent"] for p in before + after]
    assert percents == sorted(percents)
    # Paused with its total unknown, the percent was held (at 0): it was never a made-up figure.
    assert 0 < before[-1]["percent"] < 100 if known else before[-1]["percent"] == 0
    assert [p["bytes_transferred"] for p in after] == sorted(p["bytes_transferred"] for p in after)
    end = after[-1]
    assert (end["percent"], end["total_bytes"], end["bytes_transferred"]) == (100.0, size, size)
    assert end["sent"] == counted  # the run record's bytes: what this run's tool counted
    assert max(p["speed_bytes"] for p in after) >= 0.8 * BWLIMIT  # and there is a speed
    if with_total:
        assert after[0]["total_bytes"] == before[-1]["total_bytes"]  # shown from the first moment


def test_the_old_double_count_of_rclone_resumes_is_gone():
    """Before: the resumed run's total was the bytes moved before the pause (8.3 MB, partial files
    included) plus rclone's total for this run (18.9 MB, those files whole): 27.2 MB for 21 MB."""
    _, after = resume(rclone, "rclone_resume_tree", with_total=False)
    assert {p["total_bytes"] for p in after[1:]} == {TREE}


def test_a_resumed_rsync_burst_is_not_a_speed():
    """rsync counts the 8 MiB it reuses from the partial file within the first second and says
    10.72MB/s itself; bytes actually sent come at the 2000 KiB/s limit."""
    _, chunks = replay("rsync_resume_onefile_run2")
    assert any(b"10.72MB/s" in data for _, _, data in chunks)
    _, after = resume(rsync, "rsync_resume_onefile", with_total=False)
    speeds = [p["speed_bytes"] for p in after if p["speed_bytes"]]
    assert speeds and all(0.9 * BWLIMIT <= s <= 1.1 * BWLIMIT for s in speeds)


@pytest.mark.parametrize(
    "capture, size, limit", [("rsync_p2_noir_bw", 110_299_104, 20000), ("rsync_p2_bw2000", 26_338_024, 2000)]
)
def test_a_fresh_rsync_run_total_holds_still_and_ends_exact(capture, size, limit):
    shown = drive(rsync, capture, Tracker(rsync.TOTAL_COVERS_TREE))
    totals = [p["total_bytes"] for p in shown if p["total_bytes"]]
    assert max(totals) <= min(totals) * 1.01 and totals[-1] == size
    assert all(p["total_bytes"] == 0 for p in shown[:3])  # not shown before it is known
    percents = [p["percent"] for p in shown]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert max(p["speed_bytes"] for p in shown) <= 1.2 * limit * 1024


def test_a_run_that_ends_unfinished_keeps_only_finished_files():
    tracker = Tracker(True)
    tracker.apply(Sample(bytes=600, total=1000, settled=600), 0.0)
    tracker.apply(Sample(bytes=800, total=1000, settled=600), 1.0)
    tracker.apply(Sample(bytes=800, total=1000, settled=600, ended=True), 1.5)
    assert tracker.as_dict()["bytes_transferred"] == 600 and tracker.percent == 80.0  # the percent stays
    assert tracker.bytes - tracker.base_bytes == 800  # the run record: what was sent


def test_a_resume_from_unsettled_progress_never_shows_more_than_the_total():
    """A run interrupted by a crash resumes from the last saved progress, partial file included."""
    tracker = Tracker(True, base_bytes=800, base_percent=80.0, base_total=1000)
    tracker.apply(Sample(bytes=400, total=1000), 0.0)  # rsync counts the reused partial again
    assert tracker.as_dict()["bytes_transferred"] == 1000 and tracker.bytes - tracker.base_bytes == 400
    assert tracker.percent == 100.0


def test_rclone_credit_comes_from_the_totals_when_the_earlier_total_is_known():
    # Earlier runs: 30 of 100 in files that finished, but the progress saved counts 45.
    tracker = Tracker(False, base_bytes=45, base_percent=45.0, base_total=100)
    tracker.apply(Sample(bytes=0, total=70), 0.0)
    assert (tracker.total, tracker.bytes, tracker.percent) == (100, 30, 45.0)
    tracker.apply(Sample(bytes=70, total=70), 1.0)
    tracker.complete()
    assert (tracker.total, tracker.bytes, tracker.percent) == (100, 100, 100.0)
    assert tracker.bytes - tracker.base_bytes == 70


def test_the_percent_shown_is_not_rounded_up_to_100():
    tracker = Tracker(True)
    tracker.apply(Sample(bytes=9997, total=10000), 0.0)
    assert tracker.as_dict()["percent"] == 99.9
    tracker.complete(10000)
    assert tracker.as_dict()["percent"] == 100.0


def test_a_rsync_total_proven_wrong_moves_to_the_nearest_possible_value():
    tracker = Tracker(True, base_bytes=0, base_percent=39.6, base_total=20_889_600)
    tracker.apply(Sample(bytes=11_533_336, total=21_163_865, total_low=20_969_701, total_high=21_358_030), 1.0)
    assert tracker.total == 20_969_701  # not the midpoint 21,163,865: the least move that is right


SMALLFILES = 7_643_335  # 3,000 files of 1-4 KiB in 300 folders (tests/data/CAPTURES.md)


def test_incremental_recursion_says_when_the_total_is_known_and_the_percent_never_goes_back():
    """rsync as bkm runs it since issue 11, with incremental recursion, on many small files at
    2000 KiB/s: for two thirds of the run (2,203 of 3,311 chk records) the records say "ir-chk",
    and rsync's own percent, over the files listed so far, runs up to 20 points ahead of the
    truth. The progress shown says the total is not known (no ETA), holds the percent (0 here)
    meanwhile, shows the total from the first "to-chk" record on, and ends exact at 100 %."""
    code, chunks = replay("rsync_ir_smallfiles")
    assert code == 0
    parser, tracker = rsync.Parser(), Tracker(rsync.TOTAL_COVERS_TREE)
    seen, shown = b"", [(None, tracker.as_dict())]  # (the last chk kind rsync printed, progress)
    ahead, checked = 0.0, []
    for clock, stream, data in chunks:
        samples, _ = parser.feed(stream, data)
        for sample in samples:
            tracker.apply(sample, clock)
            if sample.listing:
                ahead = max(ahead, sample.percent - 100.0 * sample.bytes / SMALLFILES)
                checked.append(sample.checked)
        seen += data
        if samples:
            kinds = re.findall(rb"(ir|to)-chk=", seen[-4096:])
            shown.append((kinds[-1].decode() if kinds else None, tracker.as_dict()))
    for sample in parser.finish()[0]:
        tracker.apply(sample, clock)
    tracker.complete(parser.total_exact)
    end = tracker.as_dict()

    assert ahead > 15  # what rsync's own percent would have shown: made up
    # "ir-chk" records still say how far the checks got (the stall watchdog's other sign of life).
    assert len({c for c in checked if c is not None}) > 100
    kinds = [kind for kind, _ in shown]
    assert kinds.count("ir") > 100 and kinds.count("to") > 20  # both phases, read by read
    for kind, progress in shown:
        if kind != "to":  # still listing: nothing is known about the total
            assert progress["total_known"] is False and progress["eta_seconds"] is None
            assert progress["percent"] == 0.0 and progress["total_bytes"] == 0  # held, not made up
        else:  # rsync's list is complete: its records pin the total down at once here
            assert progress["total_known"] is True and progress["total_bytes"] > 0
            assert abs(progress["total_bytes"] - SMALLFILES) <= 0.01 * SMALLFILES
            # Within half the 2 % spread of the truth, never further ahead.
            assert progress["percent"] <= 100.0 * progress["bytes_transferred"] / SMALLFILES + 1.0
    assert [p["total_known"] for _, p in shown] == sorted(p["total_known"] for _, p in shown)  # once known, known
    percents = [p["percent"] for _, p in shown] + [end["percent"]]
    assert percents == sorted(percents)  # never back
    assert any(kind == "to" and p["eta_seconds"] for kind, p in shown)  # an ETA once the total is known
    assert parser.total_exact == SMALLFILES
    assert end == dict(
        end, percent=100.0, total_bytes=SMALLFILES, bytes_transferred=SMALLFILES, total_known=True, eta_seconds=0
    )


def test_records_read_together_give_at_most_two_samples_and_the_same_truth():
    """bkmd reads rsync's pipe every 0.2 s (runner.GATHER_SECONDS): on a tree of small files a
    read holds hundreds of records. Only the last one, and the last that ended a file, become
    samples; what is shown still never goes back and ends exact, as when read record by record."""
    code, chunks = replay("rsync_ir_smallfiles")
    reads, window, data = [], None, b""
    for clock, stream, piece in chunks:
        assert stream == "out"
        if window is not None and clock - window >= 0.2:
            reads.append((window, data))
            data, window = b"", None
        window = clock if window is None else window
        data += piece
    reads.append((window, data))
    assert len(reads) < len(chunks) / 3
    parser, tracker = rsync.Parser(), Tracker(rsync.TOTAL_COVERS_TREE)
    shown = [tracker.as_dict()]
    for clock, data in reads:
        samples, lines = parser.feed("out", data)
        assert len(samples) <= 2 + data.count(b"\n")  # messages (--stats) split a run of records
        for sample in samples:
            tracker.apply(sample, clock)
        shown.append(tracker.as_dict())
    for sample in parser.finish()[0]:
        tracker.apply(sample, reads[-1][0])
    tracker.complete(parser.total_exact)
    end = tracker.as_dict()
    percents = [p["percent"] for p in shown] + [end["percent"]]
    assert percents == sorted(percents) and len(set(percents)) > 5
    assert [p["total_known"] for p in shown] == sorted(p["total_known"] for p in shown)
    assert code == 0 and parser.total_exact == SMALLFILES
    assert (end["percent"], end["total_bytes"], end["bytes_transferred"]) == (100.0, SMALLFILES, SMALLFILES)


def test_a_total_still_growing_is_not_known_even_when_a_resumed_run_had_one():
    """A resumed run shows the earlier runs' total as far as known, but not as known: rsync may
    list more this time. A record whose partial list already exceeds it rules it out."""
    tracker = Tracker(True, base_bytes=500, base_percent=50.0, base_total=1000, resumed=True)
    assert tracker.as_dict()["total_known"] is False and tracker.as_dict()["total_bytes"] == 1000
    tracker.apply(Sample(bytes=100, percent=5.0, total_low=1900, listing=True), 0.0)
    shown = tracker.as_dict()
    assert (shown["total_known"], shown["total_bytes"], shown["percent"]) == (False, 0, 50.0)
    assert shown["eta_seconds"] is None
    tracker.apply(Sample(bytes=900, total=2000, percent=45.0, total_low=1990, total_high=2010), 2.0)
    shown = tracker.as_dict()
    assert (shown["total_known"], shown["total_bytes"], shown["percent"]) == (True, 2000, 70.0)  # 500 + 900
