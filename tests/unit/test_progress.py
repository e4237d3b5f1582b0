"""Progress a person can trust, on real runs replayed read by read (tests/data/CAPTURES.md):
a run stopped with SIGTERM after 4.5 s and run again the same way, as bkm pauses and resumes."""

import ast
import os

import pytest
from bkmd.engines import Sample, rclone, rsync
from bkmd.progress import Tracker

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
BWLIMIT = 2000 * 1024  # the resume captures ran at --bwlimit=2000 (KiB/s)
TREE = 20_991_520  # tree/: big1.bin 6 MiB, big2.bin 4 MiB, m/f1..f10.bin 1 MiB, small/ 20 x 1000 B
ONEFILE = 20_971_520  # one/big.bin, 20 MiB


def replay(name: str) -> tuple[int, list[tuple[float, str, bytes]]]:
    code, chunks = None, []
    with open(os.path.join(DATA, name + ".timing")) as f:
        for line in f:
            if line.startswith("# rc="):
                code = int(line.split()[1].split("=")[1])
            elif not line.startswith("#"):
                seconds, stream, _, data = line.split(None, 3)
                chunks.append((float(seconds), stream, ast.literal_eval(data)))
    return code, chunks


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
    extra = {"base_total": paused["total_bytes"]} if with_total else {}
    second = Tracker(
        module.TOTAL_COVERS_TREE, base_bytes=paused["bytes_transferred"], base_percent=paused["percent"], **extra
    )
    return before, drive(module, capture + "_run2", second)


RESUMES = [
    # module, capture, source size, what the tool counted in the resumed run
    (rsync, "rsync_resume_tree", TREE, TREE - 6_291_456),  # big1.bin was done; big2.bin's part is reused
    (rsync, "rsync_resume_onefile", ONEFILE, ONEFILE),  # 8 MiB reused from .rsync-partial, counted again
    (rsync, "rsync_remote_resume_tree", TREE, TREE - 6_291_456),  # over a remote shell: delta transfer
    (rclone, "rclone_resume_tree", TREE, TREE - 2_117_152),  # the small files, f1, f2 were done
    (rclone, "rclone_resume_onefile", ONEFILE, ONEFILE),  # rclone sends the partial file again
]


@pytest.mark.parametrize("with_total", [True, False], ids=["with_base_total", "as_runs_py_calls_today"])
@pytest.mark.parametrize("module, capture, size, counted", RESUMES, ids=[r[1] for r in RESUMES])
def test_a_paused_then_resumed_run_shows_true_totals_percents_and_speeds(module, capture, size, counted, with_total):
    before, after = resume(module, capture, with_total)
    for shown in (before, after):
        totals = [p["total_bytes"] for p in shown if p["total_bytes"]]
        # Once known, the total moves by 1 % at most (rclone's exactly, rsync's as its records
        # narrow it down), and nothing is counted twice: never more done than in scope.
        assert totals and max(totals) <= min(totals) * 1.01, totals
        assert all(p["bytes_transferred"] <= p["total_bytes"] for p in shown if p["total_bytes"])
        # Bytes moved per second, not rsync's count of the reused partial file in a burst.
        assert max(p["speed_bytes"] for p in shown) <= 1.2 * BWLIMIT
    # The percent never goes back, from the first run's start to the resumed run's end.
    percents = [p["percent"] for p in before + after]
    assert percents == sorted(percents) and 0 < before[-1]["percent"] < 100
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
