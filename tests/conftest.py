import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Bkmd, short_tempdir  # noqa: E402


@pytest.fixture(autouse=True)
def no_bkmd_left_behind():
    """Whatever a test did, and however it ended, no bkmd it started outlives it (and a bkmd's
    transfers end with it: they get SIGTERM when it dies)."""
    Bkmd.started.clear()
    yield
    for daemon in Bkmd.started:
        daemon.kill()
    Bkmd.started.clear()


@pytest.fixture
def home():
    path = short_tempdir()
    yield path
    for daemon in Bkmd.started:
        if daemon.home == path:
            daemon.kill()  # before its home goes
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bkmd(home):
    daemon = Bkmd(home).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def data_dir(home):
    """A small real source tree and a free destination beside it."""
    source = os.path.join(home, "src")
    os.makedirs(os.path.join(source, "sub"))
    for name, size in (("a.txt", 1000), ("sub/b.bin", 5000)):
        with open(os.path.join(source, name), "wb") as f:
            f.write(os.urandom(size))
    return source
