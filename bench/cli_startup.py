"""Budget: `bkm job show` within 8x the wall time of `python3 -S -c pass`, in the same run."""

import sys

from common import Daemon, environment, exit_code, install, python, quick, report, time_command, tool


def main() -> int:
    install()
    daemon = Daemon()
    try:
        daemon.start()
        daemon.create_jobs(1, prefix="show")
        env = dict(environment(), BKM_HOME=daemon.home)
        runs, warmup = quick((31, 3), (3, 1))
        reference = time_command([python(), "-S", "-c", "pass"], runs=runs, warmup=warmup)
        show = time_command([tool("bkm"), "job", "show", "show-00000"], runs=runs, warmup=warmup, env=env)
        helped = time_command([tool("bkm"), "--help"], runs=runs, warmup=warmup, env=env)
    finally:
        daemon.cleanup()
    report("bkm job show", show, reference, "python3 -S -c pass", "<= 8", show <= 8 * reference)
    report("bkm --help", helped, reference, "python3 -S -c pass", "info", True)
    return exit_code(show <= 8 * reference)


if __name__ == "__main__":
    sys.exit(main())
