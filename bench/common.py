"""Shared pieces of the benchmarks: timing with warm-up and medians, a private bkmd.

Every benchmark takes ``--quick``: small sizes and few runs, with this environment's bkm (no
install), to prove in a minute that it still works; its budgets are then printed, not judged.
Every timed command is first run once untimed and must succeed (its output is shown once);
a timed run that fails stops the benchmark: a failure is never timed as if it were the work.
"""

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

QUICK = "--quick" in sys.argv[1:]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_VENV = os.path.join(tempfile.gettempdir(), "bkm-bench-venv")
BIN = os.path.dirname(sys.executable)


def install() -> None:
    """Measure what users run: a regular (not editable) install of this checkout, in its own venv.

    An editable install adds an import hook to every start-up that a real install does not have.
    """
    global BIN
    if QUICK:
        print("quick mode: small sizes, few runs, this environment's bkm (not installed); budgets not judged")
        return
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


def listing(root: str) -> dict[str, int]:
    """Every file under ``root`` (rsync's partial-data folders left out) with its size: what a
    copy must match."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".rsync-partial"]
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = os.path.getsize(path)
    return found


def cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid`` itself, and of its children once reaped (bkmd's: the transfers)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime: fields 14-17
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def resident_kib(pid: int) -> int:
    """VmRSS of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"benchmark stopped: no VmRSS for pid {pid}")


def quick(normal, small):
    """``small`` in quick mode, else ``normal``."""
    return small if QUICK else normal


def verdict(ok: bool) -> str:
    return ("OK" if ok else "OVER BUDGET") + (" (quick mode: not judged)" if QUICK else "")


def exit_code(ok: bool) -> int:
    return 0 if ok or QUICK else 1


_SHOWN: set[tuple[str, ...]] = set()  # commands whose output was shown: once is enough


def _shown(text: str, limit: int = 8) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more lines)"]
    return "\n".join("    " + line for line in lines) if lines else "    (no output)"


def checked(
    argv: list[str], env: dict | None = None, accept: tuple[int, ...] = (0,), show: bool = True, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``argv`` once, untimed; stop the benchmark unless it succeeded (exit status in
    ``accept``); show what it printed (the first time, or with ``show=False`` only on failure)."""
    out = subprocess.run(argv, capture_output=True, text=True, env=env or environment(), **kwargs)
    if (show and tuple(argv) not in _SHOWN) or out.returncode not in accept:
        _SHOWN.add(tuple(argv))
        print(f"$ {' '.join(argv)}  (exit {out.returncode})\n{_shown(out.stdout + out.stderr)}")
    if out.returncode not in accept:
        raise SystemExit(f"benchmark stopped: {argv[0]} exited {out.returncode}, see above")
    return out


def time_command(
    argv: list[str],
    runs: int = 7,
    warmup: int = 2,
    env: dict | None = None,
    accept: tuple[int, ...] = (0,),
    **kwargs,
) -> float:
    """Median wall time of ``runs`` runs after ``warmup`` unmeasured ones, once a first run
    (shown) succeeded; every run must succeed (exit status in ``accept``)."""
    env = env or environment()
    checked(argv, env=env, accept=accept, **kwargs)
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **kwargs).returncode
        elapsed = time.perf_counter() - start
        if code not in accept:
            raise SystemExit(f"benchmark stopped: {' '.join(argv)} exited {code} on run {i + 1}")
        if i >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def report(label: str, value: float, reference: float, reference_label: str, budget: str, ok: bool) -> None:
    print(
        f"{label}: {value * 1000:.1f} ms; {reference_label}: {reference * 1000:.1f} ms; "
        f"ratio {value / reference:.2f} (budget {budget}) {verdict(ok)}"
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
        errors = open(os.path.join(self.home, "bkmd.err"), "wb")
        with errors:
            self.proc = subprocess.Popen([tool("bkmd"), "--home", self.home], stderr=errors, env=self.env)
        deadline = begin + 60
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                with open(os.path.join(self.home, "bkmd.err"), "rb") as f:
                    said = f.read().decode("utf-8", "replace")
                raise SystemExit(f"benchmark stopped: bkmd exited {self.proc.returncode}:\n{_shown(said, 20)}")
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

    def call(self, method: str, **params) -> dict:
        """One request; its result, or the benchmark stops with bkmd's error."""
        reply = self.batch([{"jsonrpc": "2.0", "method": method, "params": params, "id": 1}])[0]
        if "error" in reply:
            raise SystemExit(f"benchmark stopped: {method} failed: {reply['error']}")
        return reply["result"]

    def batch(self, requests: list[dict]) -> list[dict]:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(300)
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
            failed = [r for r in replies if "result" not in r]
            if failed:
                raise SystemExit(f"benchmark stopped: job.create failed: {failed[0]}")
        return count / (time.perf_counter() - begin)
