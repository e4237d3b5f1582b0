"""Budget: a local copy of a few hundred MiB through `bkm job start --wait` takes at most
1/0.95 of the wall time of bare `rsync -a` on the same files, measured side by side
(alternating which goes first, each from a synced disk, median of 9 after a warm-up round,
on /dev/shm where it exists). bkm's cost includes its own start-up
(the CLI, the RPC, the events), so a larger copy dilutes it."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import Daemon, environment, install, tool

MIB = 1024 * 1024
RUNS = 9


def make_source(root: str) -> int:
    """Four 100 MiB files and 2,000 files of 100 KiB: about 600 MiB."""
    size = 0
    os.makedirs(os.path.join(root, "small"))
    for i in range(4):
        with open(os.path.join(root, f"big{i}.bin"), "wb") as f:
            for _ in range(100):
                f.write(os.urandom(MIB))
        size += 100 * MIB
    for i in range(2000):
        with open(os.path.join(root, "small", f"f{i:04d}.bin"), "wb") as f:
            f.write(os.urandom(100 * 1024))
        size += 100 * 1024
    return size


def timed(argv: list[str], env: dict) -> float:
    begin = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def main() -> int:
    install()
    # On a memory file system when there is one: what bkm adds is CPU and latency, and the
    # disk's own variance here (+-20 % from run to run) would drown it.
    daemon = Daemon(base="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        source = os.path.join(daemon.home, "src")
        size = make_source(source)
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        bare, managed, inside = [], [], []
        for i in range(RUNS + 1):  # the first round warms the page cache and is not counted
            name = f"run{i}"
            subprocess.run(
                [
                    tool("bkm"),
                    "job",
                    "create",
                    name,
                    "--type",
                    "rsync",
                    "--source",
                    source + "/",
                    "--dest",
                    os.path.join(daemon.home, name),
                ],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
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
                seconds[which] = timed(commands[which], env)
            shutil.rmtree(os.path.join(daemon.home, f"bare{i}"))
            shutil.rmtree(os.path.join(daemon.home, name))
            if i:
                bare.append(seconds["bare"])
                managed.append(seconds["bkm"])
                shown = subprocess.run(
                    [tool("bkm"), "job", "show", name, "--json"], env=env, check=True, capture_output=True
                ).stdout
                inside.append(json.loads(shown)["last_run"]["duration_seconds"])
    finally:
        daemon.cleanup()
    b, m = statistics.median(bare), statistics.median(managed)
    ok = m <= b / 0.95
    print(
        f"local copy of {size / MIB:.0f} MiB, median of {RUNS}: bare rsync -a {b:.3f} s; "
        f"bkm job start --wait {m:.3f} s; ratio {m / b:.3f} (budget <= {1 / 0.95:.3f}) "
        f"{'OK' if ok else 'OVER BUDGET'}"
    )
    r = statistics.median(inside)
    print(
        f"  of which the run inside bkmd (spawn to exit handled) {r:.3f} s, ratio {r / b:.3f}; "
        f"the rest, {m - r:.3f} s, is bkm's own start-up, the RPCs and the saves"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
