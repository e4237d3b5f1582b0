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


def test_user_defaults_without_xdg(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ann")
    p = resolve(env={})
    assert p.settings == "/home/ann/.config/bkm/settings.yaml"
    assert p.store == "/home/ann/.local/state/bkm/jobs.yaml"
    # No runtime dir: the socket lives in the state folder.
    assert p.socket == "/home/ann/.local/state/bkm/bkmd.sock"


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


def test_home_and_system_together_is_an_error():
    with pytest.raises(PathError):
        resolve(home="/x", system=True)


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
