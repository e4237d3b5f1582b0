"""bkm watch, bkm logs and the bkm status dashboard, against a real bkmd and real transfers."""

import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
from helpers import MIB, Bkmd, Lines, bkm, create, make_tree, program, wait_for, wait_for_subscribers

TOOLS = ["rsync", "rclone"]


def start_throttled(home: str, name: str, size: int = 3 * MIB, limit: int = 1024, tool: str = "rsync") -> None:
    source = os.path.join(home, name + "-src")
    # a.txt first: rsync's file list (incremental recursion) is known once a file is done.
    make_tree(source, {"a.txt": 1000, "data.bin": size})
    create(home, name, tool, source + "/", os.path.join(home, name + "-dst"), "--bwlimit", str(limit))
    assert bkm(home, "job", "start", name).returncode == 0


def queued_behind_a_gate(home: str, name: str, size: int = 2 * MIB, limit: int = 1024, tool: str = "rsync") -> None:
    """``name`` started but queued behind "gate", a job that holds the only slot (for a minute
    at its limit) until release_gate(): a watcher can start and subscribe, however slowly,
    before ``name`` moves a byte, and then see its whole run."""
    assert bkm(home, "settings", "set", "max_concurrent_jobs", "1").returncode == 0
    start_throttled(home, "gate", size=MIB, limit=16)
    source = os.path.join(home, name + "-src")
    # a.txt first: rsync's file list (incremental recursion) is known once a file is done.
    make_tree(source, {"a.txt": 1000, "data.bin": size})
    create(home, name, tool, source + "/", os.path.join(home, name + "-dst"), "--bwlimit", str(limit))
    out = bkm(home, "job", "start", name, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "queued", out.stderr


def release_gate(home: str) -> None:
    assert bkm(home, "job", "pause", "gate").returncode == 0


def in_background(home: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["env", f"BKM_HOME={home}", *program("bkm"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Its output once it ends by itself within ``timeout``; killed (and the test failed) if not."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


class Tmux:
    """bkm in a detached tmux pane that stays after it exits, so that the screen, what bkm
    wrote and its exit status can all be read."""

    def __init__(self, home: str, args: list[str], width: int) -> None:
        if not shutil.which("tmux"):
            pytest.skip("tmux is not installed (scripts/setup installs it)")
        self.session = f"bkm{os.getpid()}-{time.monotonic_ns()}"
        self.raw = os.path.join(home, f"{self.session}.raw")  # all bkm wrote, escapes included
        self.status = os.path.join(home, f"{self.session}.status")
        # bash records bkm's exit status (tmux's own record of it proved unreliable under load);
        # on Ctrl-C bash waits for bkm and carries on when bkm handled it.
        command = f"{shlex.join(program('bkm') + args)}; echo $? > {shlex.quote(self.status)}"
        tmux = ["tmux", "new-session", "-d", "-s", self.session, "-x", str(width), "-y", "20"]
        subprocess.run([*tmux, "env", f"BKM_HOME={home}", "TERM=xterm", "bash", "-c", command], check=True)
        subprocess.run(["tmux", "set-option", "-t", self.session, "remain-on-exit", "on"], check=True)
        subprocess.run(["tmux", "pipe-pane", "-t", self.session, "-o", f"cat >> {self.raw}"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True).stdout

    def value(self, name: str) -> str:
        return subprocess.run(
            ["tmux", "display", "-p", "-t", self.session, "#{" + name + "}"], capture_output=True, text=True
        ).stdout.strip()

    def row(self, name: str) -> str:
        rows = [line for line in self.screen().splitlines() if line.startswith(name + " ")]
        return rows[0].rstrip() if rows else ""

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def resize(self, width: int) -> None:
        subprocess.run(["tmux", "resize-window", "-t", self.session, "-x", str(width), "-y", "20"], check=True)

    def exit_status(self, timeout: float) -> str:
        def ended() -> str:
            try:
                with open(self.status) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return ""

        return wait_for(ended, timeout, interval=0.1, what="bkm to end")

    def written(self) -> bytes:
        with open(self.raw, "rb") as f:
            return f.read()

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


def test_watch_in_a_real_terminal(bkmd):
    queued_behind_a_gate(bkmd.home, "tv", size=4 * MIB)
    pane = Tmux(bkmd.home, ["watch", "tv"], width=120)
    try:
        wait_for(lambda: "queued" in pane.row("tv"), 20, interval=0.1, what="the queued job on the screen")
        wait_for_subscribers(bkmd.home, 1)
        release_gate(bkmd.home)
        wait_for(lambda: pane.row("tv").count("#") > 0, 20, interval=0.1, what="a progress bar on the screen")
        assert pane.exit_status(30) == "0"
        # What reached the terminal: each drawing goes back up over the last one and clears
        # it (redrawn in place), the bar grows, and the last drawing is the final status.
        drawings = pane.written().split(b"\x1b[J")[1:]
        assert len(drawings) >= 3 and all(d.startswith(b"tv ") for d in drawings)
        assert all(d.endswith(b"\x1b[1F") for d in drawings[:-1])  # one row: one line up each time
        fills = [d.count(b"#") for d in drawings]  # only the bar draws "#"
        assert fills == sorted(fills) and len({f for f in fills if 0 < f < max(fills)}) >= 1
        last = drawings[-1].decode()
        assert "completed" in last and " 100% " in last
    finally:
        pane.close()


@pytest.mark.parametrize("tool", TOOLS)
def test_watch_json_streams_events_to_the_final_status(bkmd, tool):
    queued_behind_a_gate(bkmd.home, "wj", size=4 * MIB, tool=tool)
    watcher = in_background(bkmd.home, "watch", "wj", "--json")
    wait_for_subscribers(bkmd.home, 1)
    release_gate(bkmd.home)
    stdout, stderr = finish(watcher, 60)
    assert watcher.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert all(e["event"] == "job_update" and e["name"] == "wj" for e in events)
    assert set(events[0]) >= {  # JSON may grow, never lose a field
        "event",
        "job_id",
        "name",
        "status",
        "percent",
        "bytes_transferred",
        "total_bytes",
        "speed_bytes",
        "eta_seconds",
        "time",
    }
    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued" and "running" in statuses
    assert any(e["status"] == "running" and 0 < e["percent"] < 100 for e in events)  # live progress
    assert events[-1]["status"] == "completed" and events[-1]["percent"] == 100.0


@pytest.mark.parametrize("tool", TOOLS)
def test_watch_exit_codes(bkmd, data_dir, tool):
    create(bkmd.home, "done", tool, data_dir + "/", os.path.join(bkmd.home, "d1"))
    assert bkm(bkmd.home, "job", "start", "done", "--wait").returncode == 0
    assert bkm(bkmd.home, "watch", "done").returncode == 0  # nothing running: ends at once
    create(bkmd.home, "broken", tool, data_dir + "/", os.path.join(bkmd.home, "d2"))
    os.rename(data_dir, data_dir + ".gone")
    assert bkm(bkmd.home, "job", "start", "broken", "--wait").returncode == 1
    assert bkm(bkmd.home, "watch", "broken").returncode == 1
    assert bkm(bkmd.home, "watch", "ghost").returncode == 4
    start_throttled(bkmd.home, "p", size=2 * MIB, limit=64, tool=tool)  # 32 s: paused long before
    waiter = in_background(bkmd.home, "watch", "p")
    wait_for_subscribers(bkmd.home, 1)  # the pause below is what it must see
    assert bkm(bkmd.home, "job", "pause", "p").returncode == 0
    finish(waiter, 20)
    assert waiter.returncode == 5


@pytest.mark.parametrize("tool", TOOLS)
def test_watch_on_a_non_terminal_prints_one_line_per_event(bkmd, tool):
    queued_behind_a_gate(bkmd.home, "plain", size=2 * MIB, tool=tool)
    watcher = in_background(bkmd.home, "watch", "plain")
    wait_for_subscribers(bkmd.home, 1)
    release_gate(bkmd.home)
    stdout, stderr = finish(watcher, 60)
    lines = stdout.splitlines()
    assert watcher.returncode == 0 and len(lines) >= 3, (stdout, stderr)
    assert "\x1b" not in stdout
    assert "plain  queued" in lines[0] and any("plain  running" in line for line in lines)
    assert "plain  completed" in lines[-1]


def test_watch_says_so_when_bkmd_goes_away(home):
    daemon = Bkmd(home).start()
    start_throttled(home, "away", size=2 * MIB, limit=64)
    watcher = in_background(home, "watch")
    wait_for_subscribers(home, 1)
    daemon.kill()
    _, stderr = finish(watcher, 20)
    assert watcher.returncode == 3 and "lost the connection to bkmd" in stderr


def run_two_jobs(home: str, data_dir: str) -> None:
    for name in ("alpha", "beta"):
        create(home, name, "rsync", data_dir + "/", os.path.join(home, name))
        assert bkm(home, "job", "start", name, "--wait").returncode == 0


def test_logs_per_job_merged_and_counted(bkmd, data_dir):
    run_two_jobs(bkmd.home, data_dir)
    alpha = bkm(bkmd.home, "logs", "alpha").stdout.splitlines()
    assert "run started: rsync" in alpha[0] and "run completed" in alpha[-1]
    assert all(not line.startswith("[") for line in alpha)
    assert len(bkm(bkmd.home, "logs", "alpha", "-n", "3").stdout.splitlines()) == 3
    merged = bkm(bkmd.home, "logs").stdout.splitlines()
    assert {line.split("]")[0] for line in merged} == {"[alpha", "[beta"}
    stamps = [line.split("] ", 1)[1][:20] for line in merged]
    assert stamps == sorted(stamps)
    assert merged[-1].startswith("[beta]") and "run completed" in merged[-1]


def test_logs_grep_keeps_only_matches_and_highlights_on_a_terminal(bkmd, data_dir):
    from helpers import run_in_terminal

    run_two_jobs(bkmd.home, data_dir)
    out = bkm(bkmd.home, "logs", "--grep", "RUN (started|COMPLETED)")
    lines = out.stdout.splitlines()
    assert len(lines) == 4 and all("run started" in x or "run completed" in x for x in lines)
    assert "\x1b" not in out.stdout  # no highlighting when not on a terminal
    _, screen = run_in_terminal(bkmd.home, ["logs", "alpha", "--grep", "completed"])
    assert "\x1b[1;31mcompleted\x1b[0m" in screen
    bad = bkm(bkmd.home, "logs", "--grep", "(unclosed")
    assert bad.returncode == 2 and "--grep" in bad.stderr and "Traceback" not in bad.stderr
    assert bkm(bkmd.home, "logs", "ghost").returncode == 4


def test_logs_export_writes_plain_text_and_says_how_many(bkmd, data_dir):
    run_two_jobs(bkmd.home, data_dir)
    target = os.path.join(bkmd.home, "export.txt")
    out = bkm(bkmd.home, "logs", "alpha", "-n", "5", "--export", target)
    assert out.returncode == 0 and "exported 5 lines to" in out.stderr and out.stdout == ""
    with open(target) as f:
        text = f.read()
    assert len(text.splitlines()) == 5 and "\x1b" not in text


def test_logs_follow_shows_a_later_run_across_a_rotation(bkmd, data_dir):
    bkm(bkmd.home, "settings", "set", "log_max_bytes", "4096")
    bkm(bkmd.home, "settings", "set", "log_backups", "1")
    create(bkmd.home, "f", "rsync", data_dir + "/", os.path.join(bkmd.home, "f"))
    follower = in_background(bkmd.home, "logs", "f", "-f")
    try:
        wait_for_subscribers(bkmd.home, 1)
        output = Lines(follower.stdout)
        for _ in range(5):  # about 6 KB of log: the file rotates while we follow
            assert bkm(bkmd.home, "job", "start", "f", "--wait").returncode == 0
        job = json.loads(bkm(bkmd.home, "job", "show", "f", "--json").stdout)
        assert os.path.exists(os.path.join(bkmd.home, "logs", job["id"] + ".log.1"))
        lines = output.wait(lambda got: sum("run completed" in x for x in got) >= 5, 20, what="5 runs followed")
        assert sum("run started" in x for x in lines) == 5
        assert sum("run completed" in x for x in lines) == 5
    finally:
        follower.terminate()
        follower.wait(10)


def test_logs_read_pages_back_through_rotated_files(bkmd, data_dir):
    bkm(bkmd.home, "settings", "set", "log_max_bytes", "4096")
    bkm(bkmd.home, "settings", "set", "log_backups", "3")
    create(bkmd.home, "pg", "rsync", data_dir + "/", os.path.join(bkmd.home, "pg"))
    for _ in range(6):
        bkm(bkmd.home, "job", "start", "pg", "--wait")
    everything = bkm(bkmd.home, "logs", "pg", "-n", "100000").stdout.splitlines()
    assert sum("run started" in x for x in everything) >= 4  # reaches into the rotated files
    stamps = [x[:20] for x in everything]
    assert stamps == sorted(stamps)
    assert bkm(bkmd.home, "logs", "pg", "-n", "7").stdout.splitlines() == everything[-7:]


def test_escape_sequences_never_reach_the_terminal_raw(bkmd):
    evil = "src\x1b[2J\x1b]0;pwned\x07"
    source = os.path.join(bkmd.home, evil)
    make_tree(source, {"file\x1b[31mred.txt": 100})
    bkm(bkmd.home, "settings", "set", "rclone_args", "-v")  # rclone then logs each file it copies
    create(bkmd.home, "esc", "rclone", source, os.path.join(bkmd.home, "esc-dst"))
    assert bkm(bkmd.home, "job", "start", "esc", "--wait").returncode == 0
    logged = bkm(bkmd.home, "logs", "esc")
    assert "red.txt" in logged.stdout and "Copied" in logged.stdout
    for args in (["job", "list"], ["job", "show", "esc"], ["logs", "esc"], ["logs"], ["status"], ["watch", "esc"]):
        out = bkm(bkmd.home, *args)
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout, args
    assert "\\x1b[2J" in bkm(bkmd.home, "job", "show", "esc").stdout


def test_status_dashboard_counts_active_and_recent_activity_survive_a_restart(home, data_dir):
    daemon = Bkmd(home).start()
    # Here the stop's pause is what the dashboard must remember, so no resume at the next start.
    assert bkm(home, "settings", "set", "resume_after_stop", "false").returncode == 0
    run_two_jobs(home, data_dir)
    start_throttled(home, "busy", size=2 * MIB, limit=64)  # 32 s: still running at the stop
    info = json.loads(bkm(home, "status", "--json").stdout)
    assert info["counts"]["completed"] == 2 and info["counts"]["running"] == 1
    assert [e["name"] for e in info["active"]] == ["busy"]
    assert [(e["name"], e["status"]) for e in info["recent"][:2]] == [("busy", "running"), ("beta", "completed")]
    human = bkm(home, "status").stdout
    assert "busy" in human and "[" in human and "recent activity:" in human
    assert daemon.stop() == 0  # pauses busy
    daemon = Bkmd(home).start()
    try:
        info = json.loads(bkm(home, "status", "--json").stdout)
        assert (info["recent"][0]["name"], info["recent"][0]["status"]) == ("busy", "paused")
        assert ("alpha", "completed") in [(e["name"], e["status"]) for e in info["recent"]]
        assert info["counts"]["paused"] == 1
    finally:
        daemon.stop()


def test_status_warns_about_interrupted_jobs_and_recover_fixes_them(home):
    daemon = Bkmd(home).start()
    start_throttled(home, "crash", size=2 * MIB, limit=64)
    daemon.kill()  # kill -9: no chance to pause
    daemon = Bkmd(home).start()
    try:
        out = bkm(home, "status")
        assert "interrupted when bkmd stopped: crash" in out.stdout and "bkm recover" in out.stdout
        assert json.loads(bkm(home, "status", "--json").stdout)["interrupted"] == ["crash"]
        recovered = bkm(home, "recover", "--json")
        assert [j["status"] for j in json.loads(recovered.stdout)] == ["paused"]
        assert "interrupted when" not in bkm(home, "status").stdout
    finally:
        daemon.stop()


def test_watch_follows_resizes_and_ctrl_c_restores_the_cursor(bkmd):
    start_throttled(bkmd.home, "resize", size=2 * MIB, limit=64)  # 32 s: running throughout
    pane = Tmux(bkmd.home, ["watch"], width=150)
    try:
        # A wide terminal gets a wide row (tmux may size the pane just after the first drawing).
        wait_for(
            lambda: "running" in pane.row("resize") and len(pane.row("resize")) > 100,
            20,
            interval=0.1,
            what="a wide row",
        )
        assert pane.value("cursor_flag") == "0"  # hidden while drawing
        pane.resize(70)
        wait_for(
            lambda: 0 < len(pane.row("resize")) <= 70 and "running" in pane.row("resize"),
            20,
            interval=0.1,
            what="a narrower row",
        )
        pane.keys("C-c")
        assert pane.exit_status(10) == "130"  # it ended by itself, quietly, not killed by the signal
        written = pane.written()
        # The cursor is shown again after the last drawing, and nothing was said about an error.
        assert written.rstrip(b"\r\n").endswith(b"\x1b[?25h")
        assert b"Traceback" not in written and b"error" not in written
    finally:
        pane.close()
        assert bkm(bkmd.home, "job", "pause", "resize").returncode == 0


def test_watch_with_a_wide_character_name_redraws_in_place_within_the_width(bkmd):
    from bkm.render import cells

    start_throttled(bkmd.home, "データ", size=2 * MIB, limit=128)  # 16 s: running throughout
    start_throttled(bkmd.home, "plain", size=2 * MIB, limit=128)
    pane = Tmux(bkmd.home, ["watch"], width=60)
    try:
        wait_for(lambda: "running" in pane.row("データ") and "running" in pane.row("plain"), 20, interval=0.1)
        wait_for(lambda: len(pane.written().split(b"\x1b[J")) > 4, 20, interval=0.1, what="several drawings")
        # The status column starts at the same cell in both rows on the screen.
        screen = [pane.row("データ"), pane.row("plain")]
        assert len({cells(line[: line.index("running")]) for line in screen}) == 1, screen
        pane.keys("C-c")
        assert pane.exit_status(10) == "130"
        drawings = [d.decode().replace("\r", "") for d in pane.written().split(b"\x1b[J")[1:-1]]
        for drawing in drawings[1:]:
            body, _, up = drawing.rpartition("\n")
            rows = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in body.split("\n")]
            # Each row within the terminal (no wrap), and the cursor goes back up exactly as many.
            assert all(cells(row) <= 59 for row in rows), rows
            assert up == f"\x1b[{len(rows)}F"
    finally:
        pane.close()
        assert bkm(bkmd.home, "job", "pause", "--all").returncode == 0
