"""Budget: `bkm job show` within 8x the wall time of `python3 -S -c pass`, in the same run."""

import sys

from common import Daemon, environment, install, python, report, time_command, tool


def main() -> int:
    install()
    daemon = Daemon()
    try:
        daemon.start()
        daemon.create_jobs(1, prefix="show")
        env = dict(environment(), BKM_HOME=daemon.home)
        reference = time_command([python(), "-S", "-c", "pass"], runs=31, warmup=3)
        show = time_command([tool("bkm"), "job", "show", "show-00000"], runs=31, warmup=3, env=env)
        helped = time_command([tool("bkm"), "--help"], runs=31, warmup=3, env=env)
    finally:
        daemon.cleanup()
    report("bkm job show", show, reference, "python3 -S -c pass", "<= 8", show <= 8 * reference)
    report("bkm --help", helped, reference, "python3 -S -c pass", "info", True)
    return 0 if show <= 8 * reference else 1


if __name__ == "__main__":
    sys.exit(main())
