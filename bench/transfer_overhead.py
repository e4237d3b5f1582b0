"""Budget: a local copy of 1 GiB in 8 files through `bkm job start --wait` at least 0.97x as
fast as bare `rsync -a` on the same files, measured side by side (each from a synced disk,
median of 9 rounds after a warm-up round). It runs on the disk the store is on (a folder under
/tmp, which is BKM_HOME too), as users' backups do: bkmd saves the store (with fsync) beside
the copy, and that cost is part of what is measured. bkm's cost includes its own start-up
(the CLI, the RPC, the events). ``--dir DIR`` puts the files and BKM_HOME there (/dev/shm takes
the disk out). --quick: 16 MiB, 2 rounds.

Each round copies four times, bare-bkm-bkm-bare or bkm-bare-bare-bkm (alternating): on the
virtual disks this was built on, consecutive 1 GiB copies alternate between fast and slow
(1.1-1.7 s, then 2.9-3.5 s) whichever tool copies, so a round of two copies hands one tool
all the slow turns of that parity. In four, each tool takes one turn of each."""

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
    daemon = Daemon(sys.argv[sys.argv.index("--dir") + 1] if "--dir" in sys.argv else None)
    try:
        source = os.path.join(daemon.home, "src")
        size = make_source(source)
        expected = listing(source)
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        bare, managed, inside = [], [], []
        for i in range(RUNS + 1):  # the first round warms the page cache and is not counted
            name = f"run{i}"
            # ABBA or BAAB (see above); each copy starts from a quiet disk (sync outside the
            # timing), so no copy pays for another's write-back.
            order = ["bare", "bkm", "bkm", "bare"] if i % 2 else ["bkm", "bare", "bare", "bkm"]
            for turn, which in enumerate(order):
                name = f"{which}{i}-{turn}"
                dest = os.path.join(daemon.home, name)
                if which == "bkm":
                    create = ["job", "create", name, "--type", "rsync", "--source", source + "/", "--dest", dest]
                    checked([tool("bkm"), *create], env=env, show=i == 0 and turn < 2)
                    command = [tool("bkm"), "job", "start", name, "--wait"]
                else:
                    command = ["rsync", "-a", source + "/", dest]
                subprocess.run(["sync"], check=True)
                if i == 0:  # the warm-up round proves each command works, and shows its output
                    checked(command, env=env, show=turn < 2)
                    seconds = None
                else:
                    seconds = timed(command, env)
                # Each copy is whole, and bkm's run is recorded as completed.
                if listing(dest) != expected:
                    raise SystemExit(f"benchmark stopped: the copy {name} is not the source")
                if which == "bkm":
                    shown = json.loads(checked([tool("bkm"), "job", "show", name, "--json"], env=env).stdout)
                    if shown["status"] != "completed":
                        raise SystemExit(f"benchmark stopped: job {name} is {shown['status']}")
                    if seconds is not None:
                        managed.append(seconds)
                        inside.append(shown["last_run"]["duration_seconds"])
                elif seconds is not None:
                    bare.append(seconds)
                shutil.rmtree(dest)
    finally:
        daemon.cleanup()
    b, m = statistics.median(bare), statistics.median(managed)
    ok = b / m >= SPEED
    print(
        f"local copy of {size / MIB:.0f} MiB on {os.path.dirname(daemon.home)}, median of {len(bare)}: "
        f"bare rsync -a {b:.3f} s; bkm job start --wait {m:.3f} s; speed ratio {b / m:.3f} "
        f"(budget >= {SPEED}) {verdict(ok)}"
    )
    turns = {name: " ".join(f"{x:.2f}" for x in values) for name, values in (("bare", bare), ("bkm", managed))}
    print(f"  each copy, in turn order: bare {turns['bare']}; bkm {turns['bkm']}")
    r = statistics.median(inside)
    print(
        f"  of which the run inside bkmd (spawn to exit handled) {r:.3f} s, ratio {r / b:.3f}; "
        f"the rest, {m - r:.3f} s, is bkm's own start-up, the RPCs and the saves"
    )
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
