"""bkm watch, bkm logs and the bkm status dashboard, against a real bkmd and real transfers."""

import json
import os
import shlex
import shutil
import subprocess
import time

import pytest
from helpers import MIB, Bkmd, bkm, create, make_tree, program, wait_for


def wait_for_subscribers(home: str, count: int) -> None:
    """Until that many connections listen for events (a watch or a follow has subscribed)."""
    wait_for(
        lambda: json.loads(bkm(home, "status", "--json").stdout)["subscribers"] >= count,
        20,
        interval=0.05,
        what=f"{count} subscriber(s)",
    )


def start_throttled(home: str, name: str, size: int = 3 * MIB, limit: int = 1024) -> None:
    source = os.path.join(home, name + "-src")
    make_tree(source, {"data.bin": size})
    create(home, name, "rsync", source + "/", os.path.join(home, name + "-dst"), "--bwlimit", str(limit))
    assert bkm(home, "job", "start", name).returncode == 0


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
    start_throttled(bkmd.home, "tv", size=4 * MIB)
    pane = Tmux(bkmd.home, ["watch", "tv"], width=120)
    try:
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
        assert "completed" in last and "100.0%" in last
    finally:
        pane.close()


def test_watch_json_streams_events_to_the_final_status(bkmd):
    start_throttled(bkmd.home, "wj", size=2 * MIB)
    out = bkm(bkmd.home, "watch", "wj", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(e["event"] == "job_update" and e["name"] == "wj" for e in events)
    assert set(events[0]) == {
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
    assert events[-1]["status"] == "completed" and events[-1]["percent"] == 100.0
    assert len(events) >= 2


def test_watch_exit_codes(bkmd, data_dir):
    create(bkmd.home, "done", "rsync", data_dir + "/", os.path.join(bkmd.home, "d1"))
    assert bkm(bkmd.home, "job", "start", "done", "--wait").returncode == 0
    assert bkm(bkmd.home, "watch", "done").returncode == 0  # nothing running: ends at once
    create(bkmd.home, "broken", "rsync", data_dir + "/", os.path.join(bkmd.home, "d2"))
    os.rename(data_dir, data_dir + ".gone")
    bkm(bkmd.home, "job", "start", "broken", "--wait")
    assert bkm(bkmd.home, "watch", "broken").returncode == 1
    assert bkm(bkmd.home, "watch", "ghost").returncode == 4
    start_throttled(bkmd.home, "p", size=4 * MIB, limit=512)
    waiter = subprocess.Popen(
        ["env", f"BKM_HOME={bkmd.home}", *program("bkm"), "watch", "p"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_subscribers(bkmd.home, 1)  # the pause below is what it must see
    assert bkm(bkmd.home, "job", "pause", "p").returncode == 0
    assert waiter.wait(20) == 5


def test_watch_on_a_non_terminal_prints_one_line_per_event(bkmd):
    start_throttled(bkmd.home, "plain", size=2 * MIB)
    out = bkm(bkmd.home, "watch", "plain")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) >= 2
    assert "\x1b" not in out.stdout
    assert "plain  completed" in lines[-1]


def test_watch_says_so_when_bkmd_goes_away(home):
    daemon = Bkmd(home).start()
    start_throttled(home, "away", size=4 * MIB, limit=256)
    watcher = subprocess.Popen(
        ["env", f"BKM_HOME={home}", *program("bkm"), "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_subscribers(home, 1)
    daemon.kill()
    _, stderr = watcher.communicate(timeout=20)
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
    follower = subprocess.Popen(
        ["env", f"BKM_HOME={bkmd.home}", *program("bkm"), "logs", "f", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_subscribers(bkmd.home, 1)
        for _ in range(5):  # about 6 KB of log: the file rotates while we follow
            assert bkm(bkmd.home, "job", "start", "f", "--wait").returncode == 0
        job = json.loads(bkm(bkmd.home, "job", "show", "f", "--json").stdout)
        assert os.path.exists(os.path.join(bkmd.home, "logs", job["id"] + ".log.1"))
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while sum("run completed" in x for x in lines) < 5 and time.monotonic() < deadline:
            lines.append(follower.stdout.readline())
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
    run_two_jobs(home, data_dir)
    start_throttled(home, "busy", size=4 * MIB, limit=256)
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
    start_throttled(home, "crash", size=4 * MIB, limit=256)
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
    start_throttled(bkmd.home, "resize", size=8 * MIB, limit=512)
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
        bkm(bkmd.home, "job", "pause", "resize")
