import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Bkmd, short_tempdir  # noqa: E402


@pytest.fixture
def home():
    path = short_tempdir()
    yield path
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
