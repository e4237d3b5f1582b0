import calendar
import time

import pytest

from bkm import render


@pytest.mark.parametrize(
    "stamp",
    [
        "1970-01-01T00:00:00Z",
        "2000-02-29T12:34:56Z",
        "2026-11-28T17:52:13Z",
        "2100-03-01T23:59:59Z",
        "1999-12-31T23:59:59Z",
    ],
)
def test_parse_time_agrees_with_the_calendar(stamp):
    assert render.parse_time(stamp) == calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_parse_time_refuses_other_shapes():
    with pytest.raises(ValueError):
        render.parse_time("2026-11-28 17:52:13")


def test_ago():
    now = render.parse_time("2026-11-28T18:00:00Z")
    assert render.ago("2026-11-28T17:59:30Z", now) == "30s ago"
    assert render.ago("2026-11-28T15:00:00Z", now) == "3h00m ago"
    assert render.ago(None, now) == "-"


@pytest.mark.parametrize(
    "count, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 1024**3, "5.0 GiB"), (None, "-")]
)
def test_human_bytes(count, text):
    assert render.human_bytes(count) == text


@pytest.mark.parametrize(
    "seconds, text", [(None, "-"), (5, "5s"), (125, "2m05s"), (7260, "2h01m"), (3 * 86400 + 3600, "3d01h")]
)
def test_human_duration(seconds, text):
    assert render.human_duration(seconds) == text


def test_cut_marks_what_it_cut():
    assert render.cut("abcdef", 10) == "abcdef"
    assert render.cut("abcdefghijk", 5) == "abcd…"
    assert len(render.cut("x" * 100, 24)) == 24


def test_safe_shows_escape_sequences_instead_of_sending_them():
    text = render.safe("evil\x1b[2Jname\x07\n")
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "\\x1b[2J" in text
    assert render.safe("plain ünïcode") == "plain ünïcode"


class Stream:
    def __init__(self, tty: bool = False, closed: bool = False) -> None:
        self.tty, self.closed = tty, closed

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self.tty


def test_is_terminal():
    assert render.is_terminal(Stream(tty=True))
    assert not render.is_terminal(Stream())
    assert not render.is_terminal(Stream(tty=True, closed=True))
    assert not render.is_terminal(object())


def test_is_terminal_defaults_to_stdout(monkeypatch):
    monkeypatch.setattr("sys.stdout", Stream(tty=True))
    assert render.is_terminal()
    monkeypatch.setattr("sys.stdout", Stream())
    assert not render.is_terminal()


def test_colours_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render.colours_wanted(Stream(tty=True))
    assert not render.colours_wanted(Stream())
    assert not render.colours_wanted(Stream(tty=True, closed=True))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.colours_wanted(Stream(tty=True))


def test_render_needs_no_click():
    import subprocess
    import sys

    code = "import sys, bkm.render; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


KNOWN = {
    "name": "photos",
    "status": "running",
    "percent": 45.0,
    "bytes_transferred": 12 * 1024**2,
    "total_bytes": 27 * 1024**2,
    "speed_bytes": 2 * 1024**2,
    "eta_seconds": 8,
    "total_known": True,
}
# rsync still lists the tree: the percent is held, the ETA null, the total not known.
SCANNING = dict(KNOWN, name="mail", percent=0.0, total_bytes=0, eta_seconds=None, total_known=False)


def test_progress_line_says_scanning_instead_of_a_percent_until_the_total_is_known():
    assert render.progress_line(KNOWN) == (
        "photos  running  [#########-----------]   45.0%  12.0 MiB/27.0 MiB  2.0 MiB/s  ETA 8s"
    )
    assert render.progress_line(SCANNING) == "mail  running  [scanning            ]  12.0 MiB so far  2.0 MiB/s"
    # A resumed run shows the earlier total as far as known, but no percent, bar or ETA from it.
    line = render.progress_line(dict(SCANNING, percent=40.0, total_bytes=27 * 1024**2, eta_seconds=3))
    assert "scanning" in line and "%" not in line and "ETA" not in line and "27.0 MiB" not in line
    idle = render.progress_line(dict(SCANNING, idle_seconds=45))
    assert idle == "mail  running  [scanning            ]  12.0 MiB so far  no progress for 45s"


def test_only_a_running_job_is_scanning_and_older_events_had_known_totals():
    older = {key: value for key, value in KNOWN.items() if key != "total_known"}  # an older bkmd
    assert render.progress_line(older) == render.progress_line(KNOWN)
    paused = render.progress_line(dict(SCANNING, status="paused"))
    assert "scanning" not in paused and "0.0%" in paused


@pytest.mark.parametrize("width", [120, 80, 50, 30])
def test_a_scanning_row_has_no_percent_bar_or_eta(width):
    row = render.row(SCANNING, width, False)
    assert len(row) <= width - 1 and "%" not in row and "#" not in row and "ETA" not in row
    assert "scann" in row  # cut to "scann…" at 30 columns, like everything else there
    if width >= 50:
        assert "[scanning " in row  # in the bar's frame, which stays where the others' bars are


def test_a_scanning_row_keeps_the_columns_of_the_others():
    known, scanning = render.row(KNOWN, 120, False), render.row(SCANNING, 120, False)
    assert len(known) == len(scanning) and known.index("[") == scanning.index("[")
    assert known.index("]") == scanning.index("]")
    # The bytes and speed columns end where the known row's do.
    assert known.index("MiB/27.0 MiB") + len("MiB/27.0 MiB") == scanning.index("so far") + len("so far")
    assert known.index("2.0 MiB/s") == scanning.index("2.0 MiB/s")


def test_table_is_plain_columns_two_spaces_apart_each_at_least_its_header_and_two_wide():
    rows = [["a", "bb", None, "x y"], ["ccc", "d", "e  ", ""], ["  lead", "", "z", "q"]]
    assert render.table(["H1", "HEADER2", "H3", "H4"], rows) == (
        "H1    HEADER2    H3    H4\na     bb               x y\nccc   d          e\nlead             z     q"
    )
    assert render.table(["A", "B"], []) == "A    B"


def test_until_and_local_time():
    from bkm import render

    now = render.parse_time("2026-11-29T10:00:00Z")
    assert render.until("2026-11-29T13:12:00Z", now) == "in 3h12m"
    assert render.until("2026-11-29T10:00:00Z", now) == "due now"
    assert render.until(None, now) == "-" and render.until("soon", now) == "soon"


def test_local_time_follows_tz(monkeypatch):
    import time

    from bkm import render

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert render.local_time("2026-11-29T10:00:00Z") == "2026-11-29 11:00 CET"
        assert render.local_time("2026-07-01T10:00:00Z") == "2026-07-01 12:00 CEST"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_terminal_cells_of_wide_and_combining_characters():
    from bkm import render

    assert render.cells("データ") == 6 and render.cells("abc") == 3 and render.cells("e\u0301") == 1
    assert render.cut("データデータ", 5) == "デー…" and render.cells(render.cut("データデータ", 5)) == 5
    assert render.pad("データ", 8) == "データ  "


def test_a_table_fits_the_width_by_cutting_the_columns_allowed_to_give_way():
    from bkm import render

    rows = [("データ" * 5, "x", "/a/very/long/path/of/some/length"), ("b", "yy", "/short")]
    text = render.table(("NAME", "T", "PATH"), rows, width=30, shrink=(0, 2))
    lines = text.splitlines()
    assert all(render.cells(line) <= 30 for line in lines)
    starts = {render.cells(line[: line.index(cell)]) for line, cell in zip(lines, ("T", "x", "yy"), strict=True)}
    assert len(starts) == 1  # the unshrunk column stays aligned
    assert render.table(("NAME",), [], width=3, shrink=(0,)) == "NAME"


def test_every_row_of_a_drawing_gets_the_same_bar():
    from bkm import render

    events = [
        dict(name="a", status="running", percent=40.0, bytes_transferred=10**6, total_bytes=10**7, speed_bytes=10**5,
             eta_seconds=90),
        dict(name="b", status="queued", percent=0.0, waiting="waiting for a free slot (2 running) " * 3),
        dict(name="c", status="running", percent=10.0, bytes_transferred=1, total_bytes=10**7, idle_seconds=400),
    ]  # fmt: skip
    for width in (150, 120, 80, 60):
        rows = [render.row(event, width, False) for event in events]
        # The bar's frame opens and closes at the same column in every row.
        assert len({(row.index("["), row.index("]")) for row in rows}) == 1, rows
        assert all(render.cells(row) <= width - 1 for row in rows), rows
