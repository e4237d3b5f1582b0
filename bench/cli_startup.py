"""Budget: `bkm job show` within 6x the wall time of `python3 -S -c pass`, in the same run.

Also printed: the same interpreter importing click (`python -c "import click"`, with site, as
the `bkm` script starts), which is most of any command's cost. bkm defers the standard modules
click imports but no command needs at start-up (inspect, platform: bkm/cli/__init__.py), so a
whole command can cost less than click's bare import.
"""

import sys

from common import Daemon, environment, exit_code, install, python, quick, report, time_command, tool

BUDGET = 6


def main() -> int:
    install()
    daemon = Daemon()
    try:
        daemon.start()
        daemon.create_jobs(1, prefix="show")
        env = dict(environment(), BKM_HOME=daemon.home)
        runs, warmup = quick((31, 3), (3, 1))
        reference = time_command([python(), "-S", "-c", "pass"], runs=runs, warmup=warmup)
        floor = time_command([python(), "-c", "import click"], runs=runs, warmup=warmup)
        show = time_command([tool("bkm"), "job", "show", "show-00000"], runs=runs, warmup=warmup, env=env)
        helped = time_command([tool("bkm"), "--help"], runs=runs, warmup=warmup, env=env)
    finally:
        daemon.cleanup()
    ok = show <= BUDGET * reference
    report("bkm job show", show, reference, "python3 -S -c pass", f"<= {BUDGET}", ok)
    report("python -c 'import click'", floor, reference, "python3 -S -c pass", "info", True)
    print(f"bkm job show against click's bare import: {(show - floor) * 1000:+.1f} ms")
    report("bkm --help", helped, reference, "python3 -S -c pass", "info", True)
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
