import pytest

from bkm import settings
from bkm.model import parse_bwlimit


def test_every_contract_key_has_its_default():
    assert settings.DEFAULTS == {
        "max_concurrent_jobs": 2,
        "default_bwlimit": 0,
        "rsync_path": "rsync",
        "rclone_path": "rclone",
        "rsync_args": [],
        "rclone_args": [],
        "progress_interval": 1.0,
        "log_max_bytes": 10485760,
        "log_backups": 3,
        "on_interrupted": "ask",
        "keep_runs": 20,
        "stall_timeout": 900,  # was 0: a dead remote must not hang for ever by default
        "resume_after_stop": True,
        "timezone": "",  # the machine's
        "catch_up": True,
        "retries": 0,
        "retry_wait": 60,
        "hook_timeout": 300,
        "notify_urls": [],
        "notify_on": "failure",
        "metrics_listen": "",
    }


@pytest.mark.parametrize(
    "key, value, parsed",
    [
        ("max_concurrent_jobs", "3", 3),
        ("max_concurrent_jobs", 1, 1),
        ("default_bwlimit", "0", 0),
        ("progress_interval", "0.2", 0.2),
        ("progress_interval", 60, 60.0),
        ("timezone", "Europe/Berlin", "Europe/Berlin"),
        ("timezone", "", ""),
        ("retry_wait", "90s", 90),
        ("retry_wait", "5m", 300),
        ("retry_wait", "120", 120),
        ("retries", "3", 3),
        ("hook_timeout", "5m", 300),
        ("notify_urls", "ntfy://ntfy.sh/a json://h/x", ["ntfy://ntfy.sh/a", "json://h/x"]),
        ("notify_on", "always", "always"),
        ("metrics_listen", "127.0.0.1:9876", "127.0.0.1:9876"),
        ("metrics_listen", "[::1]:9876", "[::1]:9876"),
        ("catch_up", "off", False),
        ("rsync_args", "--checksum -v", ["--checksum", "-v"]),
        ("rsync_args", '["-a b"]', ["-a b"]),
        ("rclone_args", [], []),
        ("on_interrupted", "resume", "resume"),
        ("stall_timeout", "30", 30),
        ("rsync_path", "/usr/local/bin/rsync", "/usr/local/bin/rsync"),
        ("log_backups", "0", 0),
    ],
)
def test_good_values(key, value, parsed):
    assert settings.parse(key, value) == parsed


@pytest.mark.parametrize(
    "key, value",
    [
        ("max_concurrent_jobs", "0"),
        ("max_concurrent_jobs", "two"),
        ("max_concurrent_jobs", True),
        ("default_bwlimit", "-1"),
        ("progress_interval", "0.1"),
        ("progress_interval", "61"),
        ("progress_interval", "nan"),
        ("rsync_args", '["unclosed'),
        ("rsync_args", "'unbalanced"),
        ("rsync_args", [1]),
        ("on_interrupted", "later"),
        ("rsync_path", "-x"),
        ("rsync_path", ""),
        ("log_max_bytes", "100"),
        ("keep_runs", "0"),
        ("stall_timeout", "-5"),
        ("timezone", "Mars/Olympus"),
        ("timezone", "../../etc/passwd"),
        ("retries", "11"),
        ("retry_wait", "0s"),
        ("retry_wait", "2h"),
        ("notify_urls", "not-a-url"),
        ("notify_on", "sometimes"),
        ("metrics_listen", "9876"),
        ("metrics_listen", "host:99999"),
        ("retry_wait", ""),
    ],
)
def test_bad_values_name_the_expected_form(key, value):
    with pytest.raises(ValueError) as e:
        settings.parse(key, value)
    assert "must be" in str(e.value)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(settings.UnknownSetting):
        settings.parse("nope", 1)
    message = settings.unknown_message("nope")
    assert all(key in message for key in settings.SETTINGS)


@pytest.mark.parametrize(
    "value",
    [0, 17, "17", " 5 ", "+5", 2**31 - 1, "2147483647", -1, "-1", 2**31, "x", "", True, 1.5, "1.5", None, [], "٣"],
)
def test_default_bwlimit_accepts_exactly_what_a_jobs_bwlimit_accepts(value):
    parsed, problem = parse_bwlimit(value)
    if problem is None:
        assert settings.parse("default_bwlimit", value) == parsed
    else:
        with pytest.raises(ValueError) as e:
            settings.parse("default_bwlimit", value)
        assert "KiB/s" in str(e.value)
