"""Budget: `bkm job list` over 1,000 jobs within a quarter of `supervisorctl status` over 1,000
programs, measured side by side (supervisor from PyPI: pip install -e '.[bench]')."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import Daemon, checked, environment, exit_code, install, quick, report, time_command, tool

PROGRAMS = quick(1000, 50)
# supervisorctl status exits 3 when a program is not running, and none of these is (by design).
NOT_ALL_RUNNING = 3


def supervisor_config(folder: str) -> str:
    sock = os.path.join(folder, "supervisor.sock")
    lines = [
        "[unix_http_server]",
        f"file={sock}",
        "[supervisord]",
        f"logfile={folder}/supervisord.log",
        f"pidfile={folder}/supervisord.pid",
        f"childlogdir={folder}",
        "nodaemon=false",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
    ]
    for i in range(PROGRAMS):
        # Not started: supervisorctl still reports every one, as bkm lists jobs that are not running.
        lines += [f"[program:job-{i:05d}]", "command=/bin/true", "autostart=false", "autorestart=false"]
    path = os.path.join(folder, "supervisord.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main() -> int:
    install()
    if not shutil.which(tool("supervisord")):
        print("supervisor is not installed: pip install -e '.[bench]'")
        return 2
    folder = tempfile.mkdtemp(prefix="sv-", dir="/tmp")
    daemon = Daemon()
    config = supervisor_config(folder)
    try:
        subprocess.run([tool("supervisord"), "-c", config], check=True, env=environment())
        deadline = time.monotonic() + 60
        while subprocess.run([tool("supervisorctl"), "-c", config, "pid"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("supervisord did not start")
            time.sleep(0.1)
        daemon.start()
        daemon.create_jobs(PROGRAMS)
        env = dict(environment(), BKM_HOME=daemon.home)
        status = [tool("supervisorctl"), "-c", config, "status"]
        listed = checked(status, accept=(0, NOT_ALL_RUNNING)).stdout.splitlines()
        if len(listed) != PROGRAMS:
            raise SystemExit(f"benchmark stopped: supervisorctl status listed {len(listed)} programs")
        if len(checked([tool("bkm"), "job", "list"], env=env).stdout.splitlines()) < PROGRAMS:
            raise SystemExit("benchmark stopped: bkm job list did not list every job")
        runs = quick(7, 3)
        supervisor = time_command(status, runs=runs, accept=(0, NOT_ALL_RUNNING))
        bkm_list = time_command([tool("bkm"), "job", "list"], runs=runs, env=env)
        bkm_json = time_command([tool("bkm"), "job", "list", "--json"], runs=runs, env=env)
    finally:
        subprocess.run([tool("supervisorctl"), "-c", config, "shutdown"], capture_output=True)
        daemon.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    ok = bkm_list <= supervisor / 4
    report(
        f"bkm job list ({PROGRAMS} jobs)",
        bkm_list,
        supervisor,
        f"supervisorctl status ({PROGRAMS} programs)",
        "<= 0.25",
        ok,
    )
    report(f"bkm job list --json ({PROGRAMS} jobs)", bkm_json, supervisor, "supervisorctl status", "info", True)
    return exit_code(ok)


if __name__ == "__main__":
    sys.exit(main())
