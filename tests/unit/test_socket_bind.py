"""bkmd's socket and its folder: exactly the mode asked, in a folder nobody else can write to."""

import os
import socket
import stat

import pytest
from bkmd.main import StartupError, _make_dir, prepare, socket_folder_problem
from bkmd.server import bind_socket

from bkm.paths import resolve


def stale_socket(path: str, mode: int) -> None:
    """What a killed daemon leaves: a socket file nobody listens on, here with ``mode``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    sock.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("stale_mode, mode", [(0o666, 0o600), (0o755, 0o600), (0o755, 0o660), (0o666, 0o660)])
def test_binding_over_a_stale_socket_gives_exactly_the_mode_asked(home, stale_mode, mode):
    path = os.path.join(home, "bkmd.sock")
    stale_socket(path, stale_mode)
    sock = bind_socket(path, mode)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == mode
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        sock.close()


def test_a_fresh_socket_gets_exactly_the_mode_asked(home):
    path = os.path.join(home, "bkmd.sock")
    sock = bind_socket(path, 0o600)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        sock.close()


def folder(home: str, mode: int) -> str:
    path = os.path.join(home, "run")
    os.mkdir(path)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o500])
def test_a_folder_only_its_owner_can_write_to_is_fine(home, mode):
    assert socket_folder_problem(folder(home, mode), os.geteuid(), None) is None


@pytest.mark.parametrize("mode, why", [(0o777, "other users"), (0o1777, "other users"), (0o770, "its group")])
def test_a_folder_others_can_write_to_is_refused(home, mode, why):
    path = folder(home, mode)
    problem = socket_folder_problem(path, os.geteuid(), None)
    assert problem is not None and path in problem and why in problem
    assert "\n" not in problem


def test_a_group_writable_folder_is_fine_only_for_bkmds_own_group(home):
    path = folder(home, 0o770)
    gid = os.stat(path).st_gid
    assert socket_folder_problem(path, os.geteuid(), gid) is None
    assert socket_folder_problem(path, os.geteuid(), gid + 1) is not None
    # The group's members may not write when others may.
    os.chmod(path, 0o777)
    assert socket_folder_problem(path, os.geteuid(), gid) is not None


def test_a_folder_of_another_user_is_refused(home):
    path = folder(home, 0o700)
    if os.geteuid() == 0:
        os.chown(path, 54321, -1)  # a folder of someone else, and bkmd runs as root
        euid = 0
    else:
        euid = os.geteuid() + 54321  # as if bkmd ran as someone else
    problem = socket_folder_problem(path, euid, None)
    assert problem is not None and path in problem and f"uid {os.stat(path).st_uid}" in problem
    assert "\n" not in problem


def test_a_folder_of_root_is_fine_for_any_bkmd():
    assert os.stat("/usr").st_uid == 0
    assert socket_folder_problem("/usr", 54321, None) is None


def test_make_dir_gives_exactly_the_mode_whatever_the_umask(home):
    old = os.umask(0o077)
    try:
        _make_dir(os.path.join(home, "a", "b"), 0o750)
        _make_dir(os.path.join(home, "c"), 0o700)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(os.path.join(home, "a", "b")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(home, "c")).st_mode) == 0o700


def test_make_dir_leaves_an_existing_folder_as_it_is(home):
    path = folder(home, 0o755)
    _make_dir(path, 0o700)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755


def test_make_dir_refuses_a_file_in_the_way(home):
    path = os.path.join(home, "file")
    open(path, "w").close()
    with pytest.raises(StartupError) as e:
        _make_dir(path)
    assert path in str(e.value)


def test_prepare_refuses_a_socket_folder_others_can_write_to(home):
    path = folder(home, 0o777)
    with pytest.raises(StartupError) as e:
        prepare(resolve(home=home, socket=os.path.join(path, "bkmd.sock")))
    assert path in str(e.value) and "\n" not in str(e.value)


def test_prepare_creates_a_missing_socket_folder_private(home):
    old = os.umask(0o002)
    try:
        held, _, _ = prepare(resolve(home=home, socket=os.path.join(home, "new", "bkmd.sock")))
    finally:
        os.umask(old)
    held.release()
    assert stat.S_IMODE(os.stat(os.path.join(home, "new")).st_mode) == 0o700


def test_system_mode_gives_the_socket_folder_to_the_group(home):
    from bkmd.main import _socket_folder

    from bkm import paths as bkm_paths

    paths = bkm_paths._replace(resolve(home=home, socket=os.path.join(home, "run", "bkmd.sock")), system=True)
    gid = os.getgid()  # a group this process may give its folders to, standing in for bkm
    old = os.umask(0o077)
    try:
        _socket_folder(paths, gid)
    finally:
        os.umask(old)
    st = os.stat(paths.socket_dir)
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == gid
