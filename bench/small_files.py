"""Budgets on trees of many small files, each against the bare tool measured in the same run:

- a first copy through `bkm job start --wait` at least 0.95x as fast as bare `rsync -a` on
  20,000 files of 4 KiB in 40 folders and on 100,000 files of 1 KiB in 200 folders, and
  at least 0.95x bare `rclone copy` on the 20,000 files;
- a re-run where nothing changed within 1.1x bare rsync's own no-op run;
- during the 100,000-file copy, watched by 5 subscribers, bkmd's own CPU at most 5 % of the
  transfer's CPU (the rsync processes, its reaped children) and its resident memory at most
  20 MiB over idle; the job log stays small (a summary, not a line per file).

Rounds alternate which tool goes first and start from a synced disk with an empty
destination; medians are reported. ``--dir DIR`` puts the trees and BKM_HOME there (default:
the temporary folder's disk, what users pay; /dev/shm takes the disk out). ``--only 20k``
or ``--only 100k`` runs one tree. --quick: 2,000 and 5,000 files, 2 rounds.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

from common import (
    Daemon,
    checked,
    cpu,
    environment,
    exit_code,
    install,
    listing,
    quick,
    resident_kib,
    tool,
    verdict,
)

ROUNDS = quick(6, 2)
SUBSCRIBERS = 5
TREES = {  # name: (files, bytes each, folders)
    "20k": (quick(20_000, 2_000), 4096, 40),
    "100k": (quick(100_000, 5_000), 1024, 200),
}


def argument(flag: str, default: str | None) -> str | None:
    args = sys.argv[1:]
    return args[args.index(flag) + 1] if flag in args else default


def make_tree(root: str, files: int, size: int, folders: int) -> None:
    for i in range(files):
        folder = os.path.join(root, f"d{i % folders:03d}")
        if i < folders:
            os.makedirs(folder)
        with open(os.path.join(folder, f"f{i:06d}"), "wb") as f:
            f.write(os.urandom(size))


def timed(argv: list[str], env: dict) -> float:
    subprocess.run(["sync"], check=True)  # outside the timing: neither pays the other's write-back
    begin = time.perf_counter()
    out = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - begin
    if out.returncode != 0:
        said = out.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"benchmark stopped: {' '.join(argv)} exited {out.returncode}: {said}")
    return elapsed


class Watchers:
    """``SUBSCRIBERS`` event subscribers reading everything bkmd pushes, and a sampler of
    bkmd's resident memory."""

    def __init__(self, daemon: Daemon) -> None:
        import socket

        self.daemon = daemon
        self.events = [0] * SUBSCRIBERS
        self.sockets = []
        self.peak_kib = 0
        self.sampling = threading.Event()
        for i in range(SUBSCRIBERS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(daemon.socket)
            sock.sendall(b'{"jsonrpc":"2.0","method":"events.subscribe","id":1}\n')
            self.sockets.append(sock)
            threading.Thread(target=self._read, args=(sock, i), daemon=True).start()
        deadline = time.monotonic() + 30
        while daemon.call("daemon.status")["subscribers"] < SUBSCRIBERS:
            if time.monotonic() > deadline:
                raise SystemExit("benchmark stopped: the subscribers did not subscribe within 30 s")
            time.sleep(0.05)

    def _read(self, sock, index: int) -> None:
        try:
            for line in sock.makefile("rb"):
                if b"job_update" in line:
                    self.events[index] += 1
        except OSError:
            pass

    def sample(self) -> None:
        self.sampling.set()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.sampling.is_set():
            self.peak_kib = max(self.peak_kib, resident_kib(self.daemon.proc.pid))
            time.sleep(0.02)

    def close(self) -> None:
        self.sampling.clear()
        for sock in self.sockets:
            sock.close()


def rsync_tree(daemon: Daemon, env: dict, name: str, files: int, size: int, folders: int) -> list[tuple]:
    """Each round: a new job's first copy against bare rsync into an empty folder, then both
    again with nothing changed (the nightly run), as a user's new job would see them."""
    source = os.path.join(daemon.home, f"src-{name}")
    make_tree(source, files, size, folders)
    expected = listing(source)
    bare_dest = os.path.join(daemon.home, "bare")
    bare = ["rsync", "-a", source + "/", bare_dest + "/"]

    def job(i: int) -> tuple[list[str], str]:
        """A new job (its first run is a first copy); the command that runs it, its dest."""
        job_name, dest = f"{name}-{i}", os.path.join(daemon.home, f"job-{name}-{i}")
        create = ["job", "create", job_name, "--type", "rsync", "--source", source + "/", "--dest", dest]
        checked([tool("bkm"), *create], env=env, show=i == 0)
        return [tool("bkm"), "job", "start", job_name, "--wait"], dest

    warm, warm_dest = job(0)
    checked(warm, env=env)  # proves the command once, shown; and warms the page cache
    checked(bare, env=env)
    shutil.rmtree(warm_dest)
    watchers = Watchers(daemon) if name == "100k" else None
    first = {"bare": [], "bkm": []}
    again = {"bare": [], "bkm": []}
    own_cpu, transfer_cpu, idle_kib = [], [], resident_kib(daemon.proc.pid)
    try:
        for i in range(1, ROUNDS + 1):
            shutil.rmtree(bare_dest)
            start, dest = job(i)
            commands = {"bare": bare, "bkm": start}
            order = ["bare", "bkm"] if i % 2 else ["bkm", "bare"]
            for which in order:
                if which == "bkm" and watchers:
                    watchers.sample()
                    before = cpu(daemon.proc.pid)
                first[which].append(timed(commands[which], env))
                if which == "bkm" and watchers:
                    after = cpu(daemon.proc.pid)
                    watchers.sampling.clear()
                    own_cpu.append(after[0] - before[0])
                    transfer_cpu.append(after[1] - before[1])
            for which in order:  # nothing changed since: the nightly run
                again[which].append(timed(commands[which], env))
            for copy in (bare_dest, dest):
                if listing(copy) != expected:
                    raise SystemExit(f"benchmark stopped: the copy {copy} is not the source")
            shown = json.loads(checked([*start[:2], "show", start[3], "--json"], env=env, show=False).stdout)
            if shown["status"] != "completed" or shown["progress"]["percent"] != 100:
                raise SystemExit(f"benchmark stopped: job {start[3]} is {shown['status']} at {shown['progress']}")
            shutil.rmtree(dest)
    finally:
        if watchers:
            watchers.close()
    label = f"{files:,} files of {size // 1024} KiB"
    rows = [
        (f"{label}, first copy: bkm vs bare rsync -a", first, ">= 0.95", lambda r: r >= 0.95),
        (f"{label}, nothing changed: bkm vs bare rsync -a", again, "time <= 1.1x", lambda r: 1 / r <= 1.1),
    ]
    results = [(t, statistics.median(s["bare"]), statistics.median(s["bkm"]), b, ok) for t, s, b, ok in rows]
    if watchers:
        own, transfer = sum(own_cpu), sum(transfer_cpu)
        grown = (watchers.peak_kib - idle_kib) / 1024
        log = os.path.join(daemon.home, "logs", f"{shown['id']}.log")
        log_size = os.path.getsize(log) if os.path.exists(log) else 0
        results.append(("extra", own, transfer, grown, log_size, min(watchers.events), ROUNDS))
    shutil.rmtree(source)
    shutil.rmtree(bare_dest)
    return results


def rclone_tree(daemon: Daemon, env: dict, files: int, size: int, folders: int) -> tuple:
    source = os.path.join(daemon.home, "src-rclone")
    make_tree(source, files, size, folders)
    expected = listing(source)
    bare_dest, job_dest = os.path.join(daemon.home, "rbare"), os.path.join(daemon.home, "job-rclone")
    argv = [tool("bkm"), "job", "create", "rc", "--type", "rclone", "--source", source, "--dest", job_dest]
    checked(argv, env=env)
    commands = {
        "bare": ["rclone", "copy", source, bare_dest],
        "bkm": [tool("bkm"), "job", "start", "rc", "--wait"],
    }
    checked(commands["bkm"], env=env)
    checked(commands["bare"], env=env)
    seconds = {"bare": [], "bkm": []}
    for i in range(ROUNDS):
        shutil.rmtree(bare_dest)
        shutil.rmtree(job_dest)
        for which in ["bare", "bkm"] if i % 2 else ["bkm", "bare"]:
            seconds[which].append(timed(commands[which], env))
        for copy in (bare_dest, job_dest):
            if listing(copy) != expected:
                raise SystemExit(f"benchmark stopped: the copy {copy} is not the source")
    shutil.rmtree(source)
    shutil.rmtree(bare_dest)
    shutil.rmtree(job_dest)
    bare, bkm = statistics.median(seconds["bare"]), statistics.median(seconds["bkm"])
    return f"{files:,} files of {size // 1024} KiB, first copy: bkm vs bare rclone copy", bare, bkm


def compared(title: str, bare: float, bkm: float, budget: str, ok: bool) -> None:
    print(f"{title}: bare {bare:.2f} s, bkm {bkm:.2f} s, speed ratio {bare / bkm:.2f} (budget {budget}) {verdict(ok)}")


def main() -> int:
    install()
    only = argument("--only", None)
    daemon = Daemon(argument("--dir", None))
    verdicts = []
    try:
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        print(f"trees and BKM_HOME in {os.path.dirname(daemon.home)}; median of {ROUNDS} rounds")
        for name, (files, size, folders) in TREES.items():
            if only and only != name:
                continue
            for row in rsync_tree(daemon, env, name, files, size, folders):
                if row[0] == "extra":
                    _, own, transfer, grown, log_size, events, rounds = row
                    share = 100 * own / transfer
                    ok = share <= 5
                    verdicts.append(ok)
                    print(
                        f"  bkmd CPU over {rounds} runs with {SUBSCRIBERS} subscribers ({events}+ events each): "
                        f"{own:.2f} s; the transfers' CPU {transfer:.2f} s; share {share:.1f} % "
                        f"(budget <= 5 %) {verdict(ok)}"
                    )
                    ok = grown <= 20
                    verdicts.append(ok)
                    print(f"  bkmd resident memory over idle, peak: {grown:+.1f} MiB (budget <= 20 MiB) {verdict(ok)}")
                    ok = log_size <= 64 * 1024
                    verdicts.append(ok)
                    print(f"  a job's log after its two runs: {log_size:,} bytes (budget <= 64 KiB) {verdict(ok)}")
                    continue
                title, bare, bkm, budget, judge = row
                ratio = bare / bkm
                ok = judge(ratio)
                verdicts.append(ok)
                compared(title, bare, bkm, budget, ok)
        if not only or only == "20k":
            files, size, folders = TREES["20k"]
            title, bare, bkm = rclone_tree(daemon, env, files, size, folders)
            ok = bare / bkm >= 0.95
            verdicts.append(ok)
            compared(title, bare, bkm, ">= 0.95", ok)
    finally:
        daemon.cleanup()
    return exit_code(all(verdicts))


if __name__ == "__main__":
    sys.exit(main())
