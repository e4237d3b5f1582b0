"""bkm settings ... and bkm status through a real bkmd."""

import json
import os

import pytest
from helpers import Bkmd, bkm


def test_settings_show_lists_every_key_with_defaults(bkmd):
    values = json.loads(bkm(bkmd.home, "settings", "show", "--json").stdout)
    assert values["max_concurrent_jobs"] == 2 and values["on_interrupted"] == "ask"
    from bkm.settings import SETTINGS

    assert list(values) == list(SETTINGS)
    table = bkm(bkmd.home, "settings", "show", env={"COLUMNS": "200"}).stdout
    lines = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert set(lines) == set(SETTINGS)
    # Values in their units, and what each setting means.
    assert lines["log_max_bytes"].split()[1:3] == ["10.0", "MiB"] and "rotated" in lines["log_max_bytes"]
    assert lines["stall_timeout"].split()[1] == "15m00s" and lines["default_bwlimit"].split()[1:3] == [
        "0",
        "(unlimited)",
    ]
    assert lines["progress_interval"].split()[1] == "1s"
    out = bkm(bkmd.home, "settings", "set", "log_max_bytes", "20MiB")
    assert out.returncode == 0 and out.stdout.strip() == "log_max_bytes = 20971520 (20.0 MiB)"
    assert bkm(bkmd.home, "settings", "set", "stall_timeout", "1h").stdout.strip() == "stall_timeout = 3600 (1h00m)"
    assert "(default 10.0 MiB)" in bkm(bkmd.home, "settings", "show", env={"COLUMNS": "200"}).stdout


@pytest.mark.parametrize(
    "key, typed, printed, value",
    [
        ("max_concurrent_jobs", "4", "4", 4),
        ("progress_interval", "0.5", "0.5", 0.5),
        (
            "rsync_args",
            "--checksum --one-file-system",
            '["--checksum", "--one-file-system"]',
            ["--checksum", "--one-file-system"],
        ),
        ("on_interrupted", "resume", "resume", "resume"),
    ],
)
def test_set_get_round_trip_persists_and_resets(home, key, typed, printed, value):
    daemon = Bkmd(home).start()
    try:
        out = bkm(home, "settings", "set", key, typed)
        assert out.returncode == 0, out.stderr
        got = bkm(home, "settings", "get", key)
        assert got.stdout == printed + "\n"
        assert json.loads(bkm(home, "settings", "get", key, "--json").stdout) == value
    finally:
        assert daemon.stop() == 0
    daemon = Bkmd(home).start()  # persisted across a restart
    try:
        assert json.loads(bkm(home, "settings", "get", key, "--json").stdout) == value
        assert bkm(home, "settings", "reset", key).returncode == 0
        assert json.loads(bkm(home, "settings", "show", "--json").stdout)[key] != value
    finally:
        daemon.stop()


def test_reset_everything(bkmd):
    bkm(bkmd.home, "settings", "set", "keep_runs", "5")
    bkm(bkmd.home, "settings", "set", "log_backups", "1")
    out = bkm(bkmd.home, "settings", "reset")
    assert out.returncode == 0
    values = json.loads(bkm(bkmd.home, "settings", "show", "--json").stdout)
    assert values["keep_runs"] == 20 and values["log_backups"] == 3


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("max_concurrent_jobs", "0", "1 or more"),
        ("progress_interval", "100", "0.2 to 60"),
        ("on_interrupted", "maybe", "ask, pause, resume"),
        ("default_bwlimit", "-1", "0 (unlimited) or more"),
        ("rsync_args", '["unclosed', "a list of arguments"),
        ("log_max_bytes", "10", "4096 or more"),
        ("stall_timeout", "soon", "0 (disabled) or more"),
    ],
)
def test_bad_values_exit_2_with_the_expected_form(bkmd, key, value, expected):
    out = bkm(bkmd.home, "settings", "set", key, value)
    assert out.returncode == 2 and expected in out.stderr and out.stderr.startswith("bkm: error: ")


def test_unknown_key_lists_the_valid_ones(bkmd):
    for command in (
        ["settings", "set", "colour", "blue"],
        ["settings", "get", "colour"],
        ["settings", "reset", "colour"],
    ):
        out = bkm(bkmd.home, *command)
        assert out.returncode == 2
        assert "unknown setting 'colour'" in out.stderr and "max_concurrent_jobs" in out.stderr


def test_settings_file_is_yaml_with_only_what_was_set(bkmd):
    bkm(bkmd.home, "settings", "set", "keep_runs", "7")
    import yaml

    with open(os.path.join(bkmd.home, "settings.yaml")) as f:
        assert yaml.safe_load(f) == {"version": 1, "keep_runs": 7}


def test_status_shows_daemon_and_counts(bkmd, data_dir):
    bkm(bkmd.home, "job", "create", "a", "--type", "rsync", "--source", data_dir, "--dest", bkmd.home + "/a")
    info = json.loads(bkm(bkmd.home, "status", "--json").stdout)
    assert info["pid"] == bkmd.proc.pid and info["socket"] == bkmd.socket
    assert info["counts"] == {
        "pending": 1,
        "queued": 0,
        "running": 0,
        "paused": 0,
        "completed": 0,
        "failed": 0,
        "interrupted": 0,
    }
    assert info["uptime_seconds"] >= 0 and info["version"]
    human = bkm(bkmd.home, "status").stdout
    assert f"pid {bkmd.proc.pid}" in human and "1 pending" in human


def test_help_and_version_need_no_daemon(home):
    assert bkm(home, "--help").returncode == 0
    assert "job" in bkm(home, "--help").stdout
    for command in (["job", "--help"], ["job", "create", "--help"], ["settings", "set", "--help"]):
        out = bkm(home, *command)
        assert out.returncode == 0 and "Usage:" in out.stdout


def test_unknown_command_is_a_usage_error(home):
    out = bkm(home, "frobnicate")
    assert out.returncode == 2 and out.stderr.startswith("bkm: error: No such command")
