import os
import subprocess
import sys

import pytest

from bkm.paths import PathError, check_socket_path, resolve

HOME_ENV = {"HOME": "/home/ann"}


def test_bkm_home_holds_everything():
    p = resolve(env={"BKM_HOME": "/srv/b"})
    assert (p.settings, p.store, p.lock, p.logs, p.socket, p.pidfile) == (
        "/srv/b/settings.yaml",
        "/srv/b/jobs.yaml",
        "/srv/b/jobs.yaml.lock",
        "/srv/b/logs",
        "/srv/b/bkmd.sock",
        "/srv/b/bkmd.pid",
    )


def test_home_flag_beats_environment():
    assert resolve(home="/x", env={"BKM_HOME": "/y"}).store == "/x/jobs.yaml"


def test_user_defaults_follow_xdg(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ann")
    env = {"XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/run/user/1000"}
    p = resolve(env=env)
    assert p.settings == "/c/bkm/settings.yaml"
    assert p.store == "/s/bkm/jobs.yaml"
    assert p.logs == "/s/bkm/logs"
    assert p.socket == "/run/user/1000/bkm/bkmd.sock"
    assert p.pidfile == "/run/user/1000/bkm/bkmd.pid"


def test_user_defaults_without_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/ann")
    p = resolve(env={}, runtime_base=str(tmp_path / "none"))
    assert p.settings == "/home/ann/.config/bkm/settings.yaml"
    assert p.store == "/home/ann/.local/state/bkm/jobs.yaml"
    # No runtime dir at all: the socket lives in the state folder.
    assert p.socket == "/home/ann/.local/state/bkm/bkmd.sock"
    assert p.pidfile == "/home/ann/.local/state/bkm/bkmd.pid"


def user_runtime(tmp_path, uid: int | None = None) -> str:
    """A stand-in for /run/user: holding the folder of ``uid`` (this user) when given."""
    base = tmp_path / "run-user"
    base.mkdir()
    if uid is not None:
        (base / str(uid)).mkdir(mode=0o700)
    return str(base)


def test_without_xdg_runtime_dir_the_users_run_folder_is_used(monkeypatch, tmp_path):
    # cron, ssh without PAM: no XDG_RUNTIME_DIR, but the login session's folder is there.
    monkeypatch.setenv("HOME", "/home/ann")
    uid = os.getuid()
    base = user_runtime(tmp_path, uid)
    p = resolve(env={}, runtime_base=base, uid=uid)
    assert p.socket == os.path.join(base, str(uid), "bkm", "bkmd.sock")
    assert p.pidfile == os.path.join(base, str(uid), "bkm", "bkmd.pid")
    assert p.store == "/home/ann/.local/state/bkm/jobs.yaml"  # only the socket moves
    # A relative XDG_RUNTIME_DIR is invalid (XDG spec): as if unset.
    assert resolve(env={"XDG_RUNTIME_DIR": "rel"}, runtime_base=base, uid=uid).socket == p.socket


def test_a_run_folder_of_someone_else_is_not_used(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/ann")
    uid = os.getuid()
    base = user_runtime(tmp_path, uid)
    # The folder named after this uid belongs to this process's user, not to the uid asked for.
    other = uid + 54321
    os.rename(os.path.join(base, str(uid)), os.path.join(base, str(other)))
    assert resolve(env={}, runtime_base=base, uid=other).socket == "/home/ann/.local/state/bkm/bkmd.sock"


def test_a_run_folder_that_is_not_a_folder_is_not_used(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/ann")
    uid = os.getuid()
    base = user_runtime(tmp_path)
    open(os.path.join(base, str(uid)), "w").close()
    assert resolve(env={}, runtime_base=base, uid=uid).socket == "/home/ann/.local/state/bkm/bkmd.sock"


def test_a_missing_run_folder_means_the_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/ann")
    base = user_runtime(tmp_path)  # empty: the user has no session
    p = resolve(env={"XDG_STATE_HOME": "/s"}, runtime_base=base, uid=os.getuid())
    assert p.socket == "/s/bkm/bkmd.sock"


def test_xdg_runtime_dir_wins_over_the_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/ann")
    uid = os.getuid()
    base = user_runtime(tmp_path, uid)
    p = resolve(env={"XDG_RUNTIME_DIR": "/r"}, runtime_base=base, uid=uid)
    assert p.socket == "/r/bkm/bkmd.sock"


def test_home_system_and_socket_flags_ignore_the_run_folder(tmp_path):
    uid = os.getuid()
    base = user_runtime(tmp_path, uid)
    assert resolve(env={"BKM_HOME": "/srv/b"}, runtime_base=base, uid=uid).socket == "/srv/b/bkmd.sock"
    assert resolve(system=True, env={}, runtime_base=base, uid=uid).socket == "/run/bkm/bkmd.sock"
    assert resolve(socket="/tmp/s.sock", env={}, runtime_base=base, uid=uid).socket == "/tmp/s.sock"


def test_both_programs_default_to_the_real_run_folder(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ann")
    own = f"/run/user/{os.getuid()}"
    try:
        mine = os.stat(own).st_uid == os.getuid()
    except OSError:
        mine = False
    expected = own + "/bkm/bkmd.sock" if mine else "/home/ann/.local/state/bkm/bkmd.sock"
    assert resolve(env={}).socket == expected


def test_paths_stays_light():
    # The client imports it on every call.
    code = "import sys; before = set(sys.modules); import bkm.paths; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bkm', 'bkm.paths']"


def test_relative_xdg_values_are_ignored(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ann")
    assert resolve(env={"XDG_STATE_HOME": "rel"}).store == "/home/ann/.local/state/bkm/jobs.yaml"


def test_system_paths():
    p = resolve(system=True, env={"BKM_HOME": "/ignored"})
    assert p.system
    assert (p.settings, p.store, p.logs, p.socket, p.pidfile) == (
        "/etc/bkm/settings.yaml",
        "/var/lib/bkm/jobs.yaml",
        "/var/log/bkm",
        "/run/bkm/bkmd.sock",
        "/run/bkm/bkmd.pid",
    )


def test_home_and_system_together_is_system_mode_in_that_folder():
    p = resolve(home="/x", system=True, env={"BKM_HOME": "/ignored"})
    assert p.system and p.home == "/x"
    assert (p.store, p.socket, p.settings, p.logs) == ("/x/jobs.yaml", "/x/bkmd.sock", "/x/settings.yaml", "/x/logs")


def test_socket_override_changes_only_the_socket():
    p = resolve(socket="/tmp/s.sock", env={"BKM_HOME": "/srv/b"})
    assert p.socket == "/tmp/s.sock"
    assert p.store == "/srv/b/jobs.yaml"
    assert resolve(env={"BKM_HOME": "/srv/b", "BKM_SOCKET": "/tmp/e.sock"}).socket == "/tmp/e.sock"


def test_socket_path_limit():
    check_socket_path("/" + "a" * 106)
    with pytest.raises(PathError) as e:
        check_socket_path("/" + "a" * 107)
    assert "108 bytes" in str(e.value) and "107" in str(e.value)
    assert "--socket" in e.value.hint
