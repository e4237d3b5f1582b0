"""Budget: an event reaches a watcher within 250 ms of the status change that caused it.

The change is a job.start or job.pause sent on one connection; the watcher is another
connection subscribed to events. Latency = event received - request sent: the status changes
while the request is handled, so this is an upper bound of the true delay. (A pause includes
stopping the transfer: rsync's exit after SIGTERM.)"""

import json
import os
import socket
import statistics
import sys
import time

from common import Daemon, exit_code, install, quick, verdict

MIB = 1024 * 1024


class Line:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.shown: set[str] = set()

    def call(self, method: str, **params) -> dict:
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode() + b"\n")
        while True:
            message = json.loads(self.file.readline())
            if message.get("id") == 1:
                break
        if "error" in message:
            raise SystemExit(f"benchmark stopped: {method} failed: {message['error']}")
        if method not in self.shown:  # what each kind of request answered, once
            self.shown.add(method)
            print(f"{method}: {json.dumps(message['result'])[:200]}")
        return message

    def event(self, status: str) -> float:
        while True:
            message = json.loads(self.file.readline())
            if message.get("method") == "job_update" and message["params"]["status"] == status:
                return time.perf_counter()


def main() -> int:
    install()
    daemon = Daemon()
    latencies = []
    try:
        daemon.start()
        source = os.path.join(daemon.home, "src")
        os.makedirs(source)
        with open(os.path.join(source, "data.bin"), "wb") as f:
            f.write(os.urandom(8 * MIB))
        control = Line(daemon.socket)
        control.call(
            "job.create",
            name="lat",
            type="rsync",
            source=source + "/",
            dest=os.path.join(daemon.home, "dst"),
            bwlimit=256,
        )
        watcher = Line(daemon.socket)
        watcher.call("events.subscribe", jobs=["lat"])
        # Round 0 is not measured: it proves start and pause work and shows their answers once.
        for round_ in range(quick(10, 2) + 1):
            for method, status in (("job.start", "running"), ("job.pause", "paused")):
                sent = time.perf_counter()
                control.call(method, job="lat")
                latency = watcher.event(status) - sent
                if round_:
                    latencies.append(latency)
    finally:
        daemon.cleanup()
    worst = max(latencies)
    ok = worst <= 0.25
    print(
        f"event latency over {len(latencies)} status changes: median {statistics.median(latencies) * 1000:.2f} ms, "
        f"worst {worst * 1000:.2f} ms (budget <= 250 ms) {verdict(ok)}"
    )
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
