"""Shared pieces of the benchmarks: timing with warm-up and medians, a private bkmd."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_VENV = os.path.join(tempfile.gettempdir(), "bkm-bench-venv")
BIN = os.path.dirname(sys.executable)


def install() -> None:
    """Measure what users run: a regular (not editable) install of this checkout, in its own venv.

    An editable install adds an import hook to every start-up that a real install does not have.
    """
    global BIN
    python = os.path.join(BENCH_VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", BENCH_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", ROOT + "[bench]"], check=True)
    else:
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", ROOT], check=True)
    BIN = os.path.dirname(python)


def tool(name: str) -> str:
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name) or name


def python() -> str:
    return os.path.join(BIN, "python")


def environment() -> dict:
    env = dict(os.environ)
    # Installed packages carry compiled bytecode; let an editable checkout cache it too,
    # or every run would pay for compiling bkm's sources (PYTHONDONTWRITEBYTECODE=1 here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_command(argv: list[str], runs: int = 7, warmup: int = 2, env: dict | None = None, **kwargs) -> float:
    """Median wall time of ``runs`` runs after ``warmup`` unmeasured ones."""
    env = env or environment()
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **kwargs)
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def report(label: str, value: float, reference: float, reference_label: str, budget: str, ok: bool) -> None:
    print(
        f"{label}: {value * 1000:.1f} ms; {reference_label}: {reference * 1000:.1f} ms; "
        f"ratio {value / reference:.2f} (budget {budget}) {'OK' if ok else 'OVER BUDGET'}"
    )


class Daemon:
    def __init__(self, base: str | None = None) -> None:
        self.home = tempfile.mkdtemp(prefix="bkm-bench-", dir=base or "/tmp")
        self.socket = os.path.join(self.home, "bkmd.sock")
        self.proc: subprocess.Popen | None = None
        self.env = dict(environment(), BKM_HOME=self.home)

    def start(self) -> float:
        """Start bkmd; return the seconds until its socket accepted a connection."""
        begin = time.perf_counter()
        self.proc = subprocess.Popen([tool("bkmd"), "--home", self.home], stderr=subprocess.DEVNULL, env=self.env)
        deadline = begin + 60
        while time.perf_counter() < deadline:
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(self.socket)
                return time.perf_counter() - begin
            except OSError:
                time.sleep(0.005)
            finally:
                sock.close()
        raise RuntimeError("bkmd did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def batch(self, requests: list[dict]) -> list[dict]:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(self.socket)
        with sock, sock.makefile("rb") as f:
            sock.sendall(json.dumps(requests).encode() + b"\n")
            return json.loads(f.readline())

    def create_jobs(self, count: int, batch_size: int = 500, prefix: str = "job") -> float:
        """Create ``count`` jobs in batches; return jobs per second."""
        source = os.path.join(self.home, "src")
        os.makedirs(source, exist_ok=True)
        begin = time.perf_counter()
        for start in range(0, count, batch_size):
            requests = [
                {
                    "jsonrpc": "2.0",
                    "method": "job.create",
                    "id": i,
                    "params": {
                        "name": f"{prefix}-{i:05d}",
                        "type": "rsync",
                        "source": source + "/",
                        "dest": os.path.join(self.home, f"dst-{i}"),
                    },
                }
                for i in range(start, min(start + batch_size, count))
            ]
            replies = self.batch(requests)
            assert all("result" in r for r in replies), replies[:1]
        return count / (time.perf_counter() - begin)
