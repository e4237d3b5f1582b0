"""A transfer that outlives a kill -9 of bkmd is ended by the next bkmd, however early it died."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import Bkmd, bkm, create, wait_for


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("tool", ["rsync", "rclone"])
def test_a_transfer_ignoring_sigterm_is_ended_after_a_kill_9_in_its_first_second(home, data_dir, tool):
    """The pid is on disk as soon as the transfer starts (it used to wait for the first 10 s
    checkpoint): the next bkmd ends the survivor before anything can start a second one."""
    pidfile = os.path.join(home, "tool.pid")
    fake = os.path.join(home, "stubborn")
    with open(fake, "w") as f:
        # Ignores SIGTERM, so PR_SET_PDEATHSIG alone does not end it; exec keeps the pid.
        f.write(
            f"#!/bin/sh\ntrap '' TERM INT HUP\necho $$ > {pidfile}.tmp\nmv {pidfile}.tmp {pidfile}\nexec sleep 600\n"
        )
    os.chmod(fake, 0o755)
    with open(os.path.join(home, "settings.yaml"), "w") as f:
        f.write(f"{tool}_path: {fake}\n")
    daemon = Bkmd(home).start()
    pid = None
    try:
        create(home, "early", tool, data_dir + "/", os.path.join(home, "dst"))
        assert bkm(home, "job", "start", "early").returncode == 0
        began = time.monotonic()
        wait_for(lambda: os.path.exists(pidfile), 10, what="the transfer to start")
        with open(pidfile) as f:
            pid = int(f.read())
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))  # the case: killed at 1 s
        daemon.kill()  # returns once bkmd is reaped: PR_SET_PDEATHSIG was sent (and ignored)
        assert _process_alive(pid), "the fake transfer should have survived bkmd"
        daemon = Bkmd(home).start()
        assert not _process_alive(pid)
        shown = json.loads(bkm(home, "job", "show", "early", "--json").stdout)
        assert shown["status"] == "interrupted"
        log = bkm(home, "logs", "early").stdout
        assert f"ended the transfer (pid {pid}) left by the previous bkmd: killed (SIGKILL)" in log
        assert not os.listdir(os.path.join(home, "transfers"))
    finally:
        daemon.stop()
        if pid is not None and _process_alive(pid):
            os.kill(pid, signal.SIGKILL)
