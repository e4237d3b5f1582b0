import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_daemon_is_python_daemon_from_the_repository_root():
    # Our daemon/ folder must never shadow python-daemon's `daemon` package.
    code = "import importlib; d = importlib.import_module('daemon'); print(hasattr(d, 'DaemonContext'), d.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    has_context, location = out.stdout.split()
    assert has_context == "True"
    assert not location.startswith(os.path.join(ROOT, "daemon") + os.sep)


def test_daemon_is_python_daemon_in_this_test_process():
    import importlib

    assert hasattr(importlib.import_module("daemon"), "DaemonContext")


def test_no_init_in_the_daemon_folder():
    assert not os.path.exists(os.path.join(ROOT, "daemon", "__init__.py"))


def test_both_programs_report_the_same_version():
    from helpers import program

    from bkm import __version__

    bkm = subprocess.run(program("bkm") + ["--version"], capture_output=True, text=True, check=True)
    bkmd = subprocess.run(program("bkmd") + ["--version"], capture_output=True, text=True, check=True)
    assert bkm.stdout.strip() == f"bkm {__version__}"
    assert bkmd.stdout.strip() == f"bkmd {__version__}"


def test_bkmd_serves_exactly_the_methods_of_the_shared_protocol(tmp_path):
    """bkm/protocol.py is the one list of method names both programs rely on."""
    from bkmd import methods
    from bkmd.app import Daemon
    from bkmd.settings import Settings

    from bkm import paths, protocol

    home = str(tmp_path)
    daemon = Daemon(paths.resolve(home=home), [], Settings(home + "/settings.yaml", {}))
    assert set(methods.build(daemon).methods) == set(protocol.METHODS)
