"""Budget: `bkm logs JOB -n 500` on a 100 MB log within 3x its time on a 100 KB log, side by side."""

import json
import os
import subprocess
import sys

from common import Daemon, environment, install, time_command, tool


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
        for name in ("small", "large"):
            out = subprocess.run(
                [
                    tool("bkm"),
                    "job",
                    "create",
                    name,
                    "--type",
                    "rsync",
                    "--source",
                    daemon.home,
                    "--dest",
                    os.path.join(daemon.home, name),
                    "--json",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            ids[name] = json.loads(out.stdout)["id"]
        os.makedirs(os.path.join(daemon.home, "logs"), exist_ok=True)
        fill(os.path.join(daemon.home, "logs", ids["small"] + ".log"), 100 * 1000)
        fill(os.path.join(daemon.home, "logs", ids["large"] + ".log"), 100 * 1000 * 1000)
        small = time_command([tool("bkm"), "logs", "small", "-n", "500"], runs=9, env=env)
        large = time_command([tool("bkm"), "logs", "large", "-n", "500"], runs=9, env=env)
    finally:
        daemon.cleanup()
    ok = large <= 3 * small
    print(
        f"bkm logs JOB -n 500: 100 MB log {large * 1000:.1f} ms; 100 KB log {small * 1000:.1f} ms; "
        f"ratio {large / small:.2f} (budget <= 3) {'OK' if ok else 'OVER BUDGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
