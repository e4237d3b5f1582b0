"""Budget: `bkm logs JOB -n 500` on a 100 MB log within 3x its time on a 100 KB log, side by side."""

import json
import os
import sys

from common import Daemon, checked, environment, exit_code, install, quick, time_command, tool, verdict

LARGE = quick(100 * 1000 * 1000, 10 * 1000 * 1000)


def fill(path: str, size: int) -> None:
    line = "2026-11-28T17:52:13Z output " + "x" * 70 + "\n"
    with open(path, "w") as f:
        f.write(line * (size // len(line)))


def main() -> int:
    install()
    daemon = Daemon()
    try:
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        ids = {}
        source = os.path.join(daemon.home, "src")
        os.makedirs(source)
        for name in ("small", "large"):
            dest = os.path.join(daemon.home, name)
            argv = ["job", "create", name, "--type", "rsync", "--source", source, "--dest", dest, "--json"]
            ids[name] = json.loads(checked([tool("bkm"), *argv], env=env).stdout)["id"]
        os.makedirs(os.path.join(daemon.home, "logs"), exist_ok=True)
        fill(os.path.join(daemon.home, "logs", ids["small"] + ".log"), 100 * 1000)
        fill(os.path.join(daemon.home, "logs", ids["large"] + ".log"), LARGE)
        for name in ("small", "large"):
            lines = checked([tool("bkm"), "logs", name, "-n", "500"], env=env).stdout.splitlines()
            if len(lines) != 500:
                raise SystemExit(f"benchmark stopped: bkm logs {name} -n 500 printed {len(lines)} lines")
        runs = quick(9, 3)
        small = time_command([tool("bkm"), "logs", "small", "-n", "500"], runs=runs, env=env)
        large = time_command([tool("bkm"), "logs", "large", "-n", "500"], runs=runs, env=env)
    finally:
        daemon.cleanup()
    ok = large <= 3 * small
    print(
        f"bkm logs JOB -n 500: {LARGE // 1000**2} MB log {large * 1000:.1f} ms; 100 KB log {small * 1000:.1f} ms; "
        f"ratio {large / small:.2f} (budget <= 3) {verdict(ok)}"
    )
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
