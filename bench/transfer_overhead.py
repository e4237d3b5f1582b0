"""Budget: a local copy of 1 GiB in 8 files through `bkm job start --wait` at least 0.97x as
fast as bare `rsync -a` on the same files, measured side by side (alternating which goes
first, each from a synced disk, median of 9 after a warm-up round). It runs on the disk the
store is on (a folder under /tmp, which is BKM_HOME too), as users' backups do: bkmd saves the
store (with fsync) beside the copy, and that cost is part of what is measured. bkm's cost
includes its own start-up (the CLI, the RPC, the events). --quick: 16 MiB, 2 rounds."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import Daemon, checked, environment, exit_code, install, listing, quick, tool, verdict

MIB = 1024 * 1024
RUNS = quick(9, 2)
BIG = quick((8, 128), (2, 8))  # (files, MiB each)
SPEED = 0.97  # bkm's speed at least this fraction of bare rsync's


def make_source(root: str) -> int:
    """1 GiB in 8 files (16 MiB in 2 in quick mode)."""
    size = 0
    os.makedirs(root)
    count, mib = BIG
    for i in range(count):
        with open(os.path.join(root, f"big{i}.bin"), "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MIB))
        size += mib * MIB
    return size


def timed(argv: list[str], env: dict) -> float:
    begin = time.perf_counter()
    code = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - begin
    if code != 0:
        raise SystemExit(f"benchmark stopped: {' '.join(argv)} exited {code}")
    return elapsed


def main() -> int:
    install()
    # The store's own disk, not a memory file system: what a user's backup pays.
    daemon = Daemon()
    try:
        source = os.path.join(daemon.home, "src")
        size = make_source(source)
        expected = listing(source)
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        bare, managed, inside = [], [], []
        for i in range(RUNS + 1):  # the first round warms the page cache and is not counted
            name = f"run{i}"
            create = ["job", "create", name, "--type", "rsync", "--source", source + "/"]
            checked([tool("bkm"), *create, "--dest", os.path.join(daemon.home, name)], env=env, show=i == 0)
            commands = {
                "bare": ["rsync", "-a", source + "/", os.path.join(daemon.home, f"bare{i}")],
                "bkm": [tool("bkm"), "job", "start", name, "--wait"],
            }
            # Alternate which goes first, and start each from a quiet disk (sync outside the
            # timing), so neither pays for the other's write-back.
            order = ["bare", "bkm"] if i % 2 else ["bkm", "bare"]
            seconds = {}
            for which in order:
                subprocess.run(["sync"], check=True)
                if i == 0:  # the warm-up round proves each command works, and shows its output
                    checked(commands[which], env=env)
                else:
                    seconds[which] = timed(commands[which], env)
            # Each copy is whole, and bkm's run is recorded as completed.
            for copy in (f"bare{i}", name):
                if listing(os.path.join(daemon.home, copy)) != expected:
                    raise SystemExit(f"benchmark stopped: the copy {copy} is not the source")
            shown = json.loads(checked([tool("bkm"), "job", "show", name, "--json"], env=env, show=i == 0).stdout)
            if shown["status"] != "completed":
                raise SystemExit(f"benchmark stopped: job {name} is {shown['status']}")
            shutil.rmtree(os.path.join(daemon.home, f"bare{i}"))
            shutil.rmtree(os.path.join(daemon.home, name))
            if i:
                bare.append(seconds["bare"])
                managed.append(seconds["bkm"])
                inside.append(shown["last_run"]["duration_seconds"])
    finally:
        daemon.cleanup()
    b, m = statistics.median(bare), statistics.median(managed)
    ok = b / m >= SPEED
    print(
        f"local copy of {size / MIB:.0f} MiB on {os.path.dirname(daemon.home)}, median of {RUNS}: "
        f"bare rsync -a {b:.3f} s; bkm job start --wait {m:.3f} s; speed ratio {b / m:.3f} "
        f"(budget >= {SPEED}) {verdict(ok)}"
    )
    r = statistics.median(inside)
    print(
        f"  of which the run inside bkmd (spawn to exit handled) {r:.3f} s, ratio {r / b:.3f}; "
        f"the rest, {m - r:.3f} s, is bkm's own start-up, the RPCs and the saves"
    )
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
