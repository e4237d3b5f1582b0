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

from common import Daemon, install

MIB = 1024 * 1024


class Line:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def call(self, method: str, **params) -> dict:
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode() + b"\n")
        while True:
            message = json.loads(self.file.readline())
            if message.get("id") == 1:
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
        for _ in range(10):
            for method, status in (("job.start", "running"), ("job.pause", "paused")):
                sent = time.perf_counter()
                control.call(method, job="lat")
                latencies.append(watcher.event(status) - sent)
    finally:
        daemon.cleanup()
    worst = max(latencies)
    ok = worst <= 0.25
    print(
        f"event latency over {len(latencies)} status changes: median {statistics.median(latencies) * 1000:.2f} ms, "
        f"worst {worst * 1000:.2f} ms (budget <= 250 ms) {'OK' if ok else 'OVER BUDGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
