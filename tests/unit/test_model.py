import pytest

from bkm import model


@pytest.mark.parametrize(
    "name, problem",
    [
        (None, "is required"),
        ("", "is required"),
        ("x" * 129, "at most 128"),
        ("a/b", "'/'"),
        ("a\x1bb", "control"),
        ("a\nb", "control"),
        ("a\x85b", "control"),
        ("-rf", "start with '-'"),
        (5, "string"),
    ],
)
def test_bad_names(name, problem):
    assert problem in model.name_problem(name)


@pytest.mark.parametrize("name", ["photos", "x" * 128, "Fotos 2026", "日本語", "a.b-c_d"])
def test_good_names(name):
    assert model.name_problem(name) is None


def test_types():
    assert model.type_problem("rsync") is None
    assert model.type_problem("rclone") is None
    assert "required" in model.type_problem(None)
    assert "rsync, rclone" in model.type_problem("scp")


@pytest.mark.parametrize(
    "path, remote",
    [
        ("host:/srv", True),
        ("user@host:x", True),
        ("remote:", True),
        ("b2:bucket/dir", True),
        ("/srv/a:b", False),
        ("/plain", False),
        ("rel/a:b", False),
    ],
)
def test_is_remote(path, remote):
    assert model.is_remote(path) is remote


@pytest.mark.parametrize(
    "path, problem",
    [
        ("-e sh", "start with '-'"),
        ("--rsh=evil", "start with '-'"),
        ("relative", "absolute"),
        ("/a\x00b", "NUL"),
        ("", "required"),
        ("/\udc80", "UTF-8"),
    ],
)
def test_bad_paths(path, problem):
    assert problem in model.path_problem(path)


@pytest.mark.parametrize("value, parsed", [(0, 0), (500, 500), ("750", 750), (" 10 ", 10)])
def test_good_bwlimits(value, parsed):
    assert model.parse_bwlimit(value) == (parsed, None)


@pytest.mark.parametrize("value", [-1, "-3", "1.5", 1.5, "abc", True, [], 2**31])
def test_bad_bwlimits(value):
    parsed, problem = model.parse_bwlimit(value)
    assert parsed is None and problem


def test_excludes():
    assert model.excludes_problem(["*.tmp", "cache/"]) is None
    assert "list" in model.excludes_problem("*.tmp")
    assert model.excludes_problem([""])
    assert model.excludes_problem(["a\nb"])
    assert model.excludes_problem(["x"] * 1001)


def test_brief_cuts_long_values():
    assert len(model.brief("x" * 10_000)) <= 60
