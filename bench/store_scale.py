"""Budgets with 10,000 jobs: >= 500 creates/s over batched RPC, bkmd ready within 1.5 s,
`bkm job list --json` and `bkm job list` (the table) within 1 s each, one `bkm job create` (not
batched) within 100 ms, bkmd's resident memory under 100 MiB. Reference in the same run:
`python3 -c pass` start-up."""

import json
import os
import statistics
import sys
import time

from common import (
    Daemon,
    checked,
    environment,
    exit_code,
    install,
    python,
    quick,
    resident_kib,
    time_command,
    tool,
    verdict,
)

JOBS = quick(10_000, 500)


def main() -> int:
    install()
    daemon = Daemon()
    try:
        daemon.start()
        rate = daemon.create_jobs(JOBS, batch_size=500)
        daemon.stop()
        ready = []
        for i in range(6):  # the first is the warm-up
            seconds = daemon.start()
            if i:
                ready.append(seconds)
            daemon.stop()
        ready_median = statistics.median(ready)
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        listed = json.loads(checked([tool("bkm"), "job", "list", "--json"], env=env).stdout)
        if len(listed) != JOBS:
            raise SystemExit(f"benchmark stopped: job list shows {len(listed)} jobs, not {JOBS}")
        listing = time_command([tool("bkm"), "job", "list", "--json"], runs=5, warmup=1, env=env)
        table = checked([tool("bkm"), "job", "list"], env=env, show=False).stdout
        if len(table.splitlines()) != JOBS + 1:
            raise SystemExit(f"benchmark stopped: the table has {len(table.splitlines())} lines, not {JOBS + 1}")
        table_time = time_command([tool("bkm"), "job", "list"], runs=5, warmup=1, env=env)
        creates = []
        source = os.path.join(daemon.home, "src")
        for i in range(7):
            argv = [tool("bkm"), "job", "create", f"one-{i}", "--type", "rsync", "--source", source + "/"]
            argv += ["--dest", os.path.join(daemon.home, f"one-{i}")]
            begin = time.perf_counter()
            checked(argv, env=env, show=i == 0)
            creates.append(time.perf_counter() - begin)
        create_time = statistics.median(creates[1:])
        rss = resident_kib(daemon.proc.pid) / 1024
        reference = time_command([python(), "-c", "pass"], runs=5, warmup=1)
    finally:
        daemon.cleanup()
    checks = [
        (f"creates over batched RPC (batches of 500, to {JOBS} jobs)", f"{rate:.0f}/s", ">= 500/s", rate >= 500),
        (f"bkmd ready with {JOBS} jobs", f"{ready_median:.3f} s", "<= 1.5 s", ready_median <= 1.5),
        (f"bkm job list --json with {JOBS} jobs", f"{listing:.3f} s", "<= 1 s", listing <= 1.0),
        (f"bkm job list (table) with {JOBS} jobs", f"{table_time:.3f} s", "<= 1 s", table_time <= 1.0),
        (f"one bkm job create with {JOBS} jobs", f"{create_time * 1000:.0f} ms", "<= 100 ms", create_time <= 0.1),
        (f"bkmd resident memory with {JOBS} jobs", f"{rss:.0f} MiB", "< 100 MiB", rss < 100),
    ]
    for label, value, budget, ok in checks:
        print(f"{label}: {value} (budget {budget}) {verdict(ok)}")
    print(
        f"reference: python3 -c pass {reference * 1000:.1f} ms; "
        f"list --json is {listing / reference:.1f}x a bare interpreter start"
    )
    return exit_code(all(ok for *_, ok in checks))


if __name__ == "__main__":
    sys.exit(main())
