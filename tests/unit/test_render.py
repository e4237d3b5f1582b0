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
