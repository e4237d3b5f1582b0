"""bkm doctor and shell completion."""

import json
import os
import subprocess

import pytest
from helpers import Bkmd, bkm, create


def test_doctor_all_ok_with_a_running_bkmd(bkmd):
    out = bkm(bkmd.home, "doctor")
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    assert all(line.startswith("ok") for line in lines), out.stdout
    for name in ("bkmd", "rsync", "rclone", "store", "logs", "disk", "socket"):
        assert any(line.split()[1] == name for line in lines), name
    results = json.loads(bkm(bkmd.home, "doctor", "--json").stdout)
    rsync = next(r for r in results if r["check"] == "rsync")
    assert rsync["status"] == "ok" and "version" in rsync["detail"]
    daemon = next(r for r in results if r["check"] == "bkmd")
    assert f"pid {bkmd.proc.pid}" in daemon["detail"] and "protocol 1" in daemon["detail"]


def test_doctor_works_with_bkmd_down_and_fails(home):
    out = bkm(home, "doctor", "--json")
    assert out.returncode == 1
    results = {r["check"]: r for r in json.loads(out.stdout)}
    assert results["bkmd"]["status"] == "fail" and "not running" in results["bkmd"]["detail"]
    assert results["rsync"]["status"] == "ok" and results["rclone"]["status"] == "ok"


def test_doctor_checks_the_same_machine_with_bkmd_up_or_down(home):
    down = [r["check"] for r in json.loads(bkm(home, "doctor", "--json").stdout)]
    daemon = Bkmd(home).start()
    try:
        up = [r["check"] for r in json.loads(bkm(home, "doctor", "--json").stdout)]
    finally:
        daemon.stop()
    machine = ["rsync", "rclone", "store", "logs", "settings", "disk"]
    assert [c for c in down if c in machine] == machine == [c for c in up if c in machine]
    assert down[0] == up[0] == "bkmd"


def test_doctor_fails_on_a_missing_tool(bkmd):
    bkm(bkmd.home, "settings", "set", "rclone_path", "/nonexistent/rclone")
    out = bkm(bkmd.home, "doctor")
    assert out.returncode == 1
    assert any(line.startswith("fail") and "rclone" in line for line in out.stdout.splitlines())


def test_doctor_fails_on_a_socket_others_can_use(bkmd):
    os.chmod(bkmd.socket, 0o666)
    out = bkm(bkmd.home, "doctor", "--json")
    assert out.returncode == 1
    socket_check = next(r for r in json.loads(out.stdout) if r["check"] == "socket")
    assert socket_check["status"] == "fail"


def complete(home: str, words: str, env: dict | None = None) -> list[str]:
    out = bkm(
        home,
        env={
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
            "_BKM_COMPLETE": "bash_complete",
            **(env or {}),
        },
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if line]


def test_completion_offers_job_names_and_setting_keys_of_the_running_daemon(bkmd, data_dir):
    for name in ("nightly", "nice", "weekly"):
        create(bkmd.home, name, "rsync", data_dir, bkmd.home + "/" + name)
    assert sorted(complete(bkmd.home, "bkm job start ni")) == ["nice", "nightly"]
    assert sorted(complete(bkmd.home, "bkm logs w")) == ["weekly"]
    assert complete(bkmd.home, "bkm settings set max") == ["max_concurrent_jobs"]
    assert "start" in complete(bkmd.home, "bkm job st")


def test_completion_is_quietly_empty_when_bkmd_is_down(home):
    assert complete(home, "bkm job start ni") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(home, shell):
    out = bkm(home, "completion", shell)
    assert out.returncode == 0 and "_BKM_COMPLETE" in out.stdout
    if shell == "bash":
        check = subprocess.run(["bash", "-n"], input=out.stdout, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr


def test_completion_uses_the_given_home(data_dir):
    from helpers import short_tempdir

    other = short_tempdir()
    daemon = Bkmd(other).start()
    try:
        create(other, "elsewhere", "rsync", data_dir, other + "/x")
        words = f"bkm --home {other} job show el"
        out = bkm(None, env={"COMP_WORDS": words, "COMP_CWORD": "5", "_BKM_COMPLETE": "bash_complete"})
        assert out.stdout.strip().endswith("elsewhere")
    finally:
        daemon.stop()
