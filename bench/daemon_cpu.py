"""Budgets: bkmd uses at most 2 % of one core during a throttled transfer watched by 5
subscribers (the transfer's own rsync processes, measured in the same run, are the reference);
and the rate that run achieves, what it sent over its duration, is within 5 % of its --bwlimit
over about 20 s."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

from common import Daemon, checked, cpu, environment, exit_code, install, quick, tool, verdict

MIB = 1024 * 1024
SUBSCRIBERS = 5
LIMIT_KIB = 2048
SIZE = quick(40, 4) * MIB  # about 20 s at the limit (2 s in quick mode)


sockets: list[socket.socket] = []


def subscriber(path: str, counts: list, index: int) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(120)  # events come every second while the job runs
    sock.connect(path)
    sock.sendall(b'{"jsonrpc":"2.0","method":"events.subscribe","id":1}\n')
    reader = sock.makefile("rb")
    sockets.append(sock)
    try:
        for line in reader:  # until main() shuts the socket down
            if b"job_update" in line:
                counts[index] += 1
    except OSError:
        pass
    sock.close()


def create(env: dict, name: str, source: str, dest: str) -> None:
    argv = ["job", "create", name, "--type", "rsync", "--source", source + "/", "--dest", dest]
    checked([tool("bkm"), *argv, "--bwlimit", str(LIMIT_KIB)], env=env)


def main() -> int:
    install()
    daemon = Daemon()
    try:
        source = os.path.join(daemon.home, "src")
        os.makedirs(source)
        with open(os.path.join(source, "data.bin"), "wb") as f:
            f.write(os.urandom(SIZE))
        daemon.start()
        env = dict(environment(), BKM_HOME=daemon.home)
        # The measured command, proven first on a small copy of its own (shown once).
        small = os.path.join(daemon.home, "small")
        os.makedirs(small)
        with open(os.path.join(small, "data.bin"), "wb") as f:
            f.write(os.urandom(MIB // 4))
        create(env, "preflight", small, os.path.join(daemon.home, "preflight"))
        checked([tool("bkm"), "job", "start", "preflight", "--wait"], env=env)
        create(env, "cpu", source, os.path.join(daemon.home, "dst"))
        counts = [0] * SUBSCRIBERS
        threads = [
            threading.Thread(target=subscriber, args=(daemon.socket, counts, i), daemon=True)
            for i in range(SUBSCRIBERS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while daemon.call("daemon.status")["subscribers"] < SUBSCRIBERS:
            if time.monotonic() > deadline:
                raise SystemExit("benchmark stopped: the subscribers did not subscribe within 30 s")
            time.sleep(0.05)
        pid = daemon.proc.pid
        own_before, children_before = cpu(pid)
        began = time.perf_counter()
        waited = subprocess.run([tool("bkm"), "job", "start", "cpu", "--wait"], env=env)
        wall = time.perf_counter() - began
        own_after, children_after = cpu(pid)
        own, children = own_after - own_before, children_after - children_before
        for sock in sockets:
            sock.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        job = json.loads(checked([tool("bkm"), "job", "show", "cpu", "--json"], env=env).stdout)
        if waited.returncode != 0 or job["status"] != "completed":
            raise SystemExit(f"benchmark stopped: the measured run ended {job['status']} (exit {waited.returncode})")
    finally:
        daemon.cleanup()
    share = 100 * own / wall
    ok = share <= 2.0
    limit = LIMIT_KIB * 1024
    rate = job["last_run"]["bytes"] / job["last_run"]["duration_seconds"]
    rate_ok = abs(rate / limit - 1) <= 0.05
    print(
        f"throttled transfer ({SIZE // MIB} MiB at {LIMIT_KIB} KiB/s, {wall:.1f} s, status {job['status']}), "
        f"{SUBSCRIBERS} subscribers received {min(counts)}-{max(counts)} events each"
    )
    print(
        f"bkmd: {own:.2f} s CPU = {share:.2f} % of one core (budget <= 2 %) {verdict(ok)}; "
        f"reference, the rsync processes: {children:.2f} s = {100 * children / wall:.2f} %; "
        f"ratio bkmd/rsync {own / children if children else float('nan'):.2f}"
    )
    print(
        f"achieved rate: {job['last_run']['bytes']:,} bytes sent in {job['last_run']['duration_seconds']:.2f} s "
        f"= {rate / 1024:.0f} KiB/s against --bwlimit {LIMIT_KIB} KiB/s: {100 * (rate / limit - 1):+.1f} % "
        f"(budget within 5 %) {verdict(rate_ok)}"
    )
    return exit_code(ok and rate_ok)


if __name__ == "__main__":
    sys.exit(main())
