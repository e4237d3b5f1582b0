"""Hooks, healthchecks pings, notifications and stale backups, with a real bkmd, real rsync and
a real HTTP server (the standard library's) standing in for healthchecks and a json:// target."""

import http.server
import json
import os
import socket
import threading
import time

import pytest
from helpers import Bkmd, bkm, create, slow_tree, wait_for

SECRET = "s3cr3t-Tok3n-0123456789abcdef"


class Recorder(http.server.ThreadingHTTPServer):
    """Every request: (method, path, body, time)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes, float]] = []

        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _take(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.command, self.path, body, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _take  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def paths(self, prefix: str = "") -> list[str]:
        return [path for _, path, _, _ in self.requests if path.startswith(prefix)]


@pytest.fixture
def server():
    recorder = Recorder()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def show(home: str, name: str) -> dict:
    out = bkm(home, "job", "show", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def log_text(home: str, name: str) -> str:
    return bkm(home, "logs", name, "-n", "1000").stdout


def test_pings_of_a_completed_and_a_failed_run_in_order_with_one_rid(bkmd, data_dir, server):
    hc = f"{server.url}/ping/{SECRET}"
    create(bkmd.home, "good", "rsync", data_dir + "/", os.path.join(bkmd.home, "d1"), "--healthcheck", hc)
    assert bkm(bkmd.home, "job", "start", "good", "--wait").returncode == 0
    wait_for(lambda: len(server.requests) >= 2, 10, what="two pings")
    (m1, start, _, _), (m2, success, body, _) = server.requests[:2]
    assert (m1, m2) == ("POST", "POST")
    rid = start.rsplit("rid=", 1)[1]
    assert start == f"/ping/{SECRET}/start?rid={rid}" and success == f"/ping/{SECRET}?rid={rid}"
    assert b"run completed: exit code 0" in body
    assert show(bkmd.home, "good")["last_run"]["rid"] == rid
    # A failed run: the source is gone.
    source = os.path.join(bkmd.home, "gone")
    os.makedirs(source)
    create(bkmd.home, "bad", "rsync", source + "/", os.path.join(bkmd.home, "d2"), "--healthcheck", hc + "x")
    os.rmdir(source)
    assert bkm(bkmd.home, "job", "start", "bad", "--wait").returncode == 1
    wait_for(lambda: len(server.paths(f"/ping/{SECRET}x")) >= 2, 10, what="the failed run's pings")
    bad = [(p, b) for _, p, b, _ in server.requests if p.startswith(f"/ping/{SECRET}x")]
    assert bad[0][0].startswith(f"/ping/{SECRET}x/start?rid=") and bad[1][0].startswith(f"/ping/{SECRET}x/fail?rid=")
    assert b"No such file or directory" in bad[1][1] or b"does not exist" in bad[1][1]


def test_a_paused_run_sends_no_success(bkmd, server):
    source = os.path.join(bkmd.home, "src")
    slow_tree(source)
    hc = f"{server.url}/p/{SECRET}"
    create(
        bkmd.home, "slow", "rsync", source + "/", os.path.join(bkmd.home, "d"), "--bwlimit", "512", "--healthcheck", hc
    )
    assert bkm(bkmd.home, "job", "start", "slow").returncode == 0
    wait_for(lambda: server.paths(f"/p/{SECRET}/start"), 10, what="the start ping")
    assert bkm(bkmd.home, "job", "pause", "slow").returncode == 0
    # What a success would have followed: the log's pause line; then nothing more arrives.
    wait_for(lambda: "paused" in show(bkmd.home, "slow")["status"], 10, what="paused")
    deadline = time.monotonic() + 1.5
    wait_for(lambda: time.monotonic() > deadline, 3, what="a moment for a stray ping")
    assert server.paths(f"/p/{SECRET}") == [p for p in server.paths(f"/p/{SECRET}/start")]


def test_a_dead_server_delays_no_run_and_is_logged(bkmd, data_dir):
    dead = f"http://127.0.0.1:{free_port()}/ping/{SECRET}"
    create(bkmd.home, "j", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"), "--healthcheck", dead)
    began = time.monotonic()
    assert bkm(bkmd.home, "job", "start", "j", "--wait").returncode == 0
    assert time.monotonic() - began < 3  # the run itself takes well under a second; pings wait for nothing
    run = show(bkmd.home, "j")["last_run"]
    assert run["duration_seconds"] < 1.0
    # The start ping gives up after its retries (1 + 2 + 4 s of backoff), then says so.
    wait_for(lambda: "healthcheck ping start to" in log_text(bkmd.home, "j"), 20, what="the failed ping's line")
    text = log_text(bkmd.home, "j")
    assert "not sent" in text and SECRET not in text
    status = bkm(bkmd.home, "status", "--json")
    wait_for(lambda: json.loads(bkm(bkmd.home, "status", "--json").stdout)["notifications_failed"] >= 1, 20)
    assert status.returncode == 0


# Written whole, then renamed: whoever sees the file sees all of it.
HOOK = 'env | grep ^BKM_ | sort > "$OUT/{name}.tmp" && mv "$OUT/{name}.tmp" "$OUT/{name}.env"'


def hook_env(folder: str, name: str) -> dict[str, str]:
    with open(os.path.join(folder, f"{name}.env")) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def test_hooks_get_the_runs_outcome_in_their_environment(home, data_dir):
    out = os.path.join(home, "out")
    os.makedirs(out)
    daemon = Bkmd(home, env={"OUT": out}).start()
    hooks = ["--after", HOOK.format(name="after"), "--on-success", HOOK.format(name="success"),
             "--on-failure", HOOK.format(name="failure"), "--before", HOOK.format(name="before")]  # fmt: skip
    created = create(home, "h", "rsync", data_dir + "/", os.path.join(home, "d"), *hooks)
    assert created["hooks"]["before"] == [HOOK.format(name="before")]
    assert bkm(home, "job", "start", "h", "--wait").returncode == 0
    wait_for(lambda: os.path.exists(os.path.join(out, "after.env")), 10, what="the after hook")
    run = show(home, "h")["last_run"]
    after = hook_env(out, "after")
    assert after == {
        "BKM_JOB": "h",
        "BKM_JOB_ID": created["id"],
        "BKM_STATUS": "completed",
        "BKM_EXIT_CODE": "0",
        "BKM_ERROR": "",
        "BKM_BYTES": str(run["bytes"]),
        "BKM_DURATION": f"{run['duration_seconds']:g}",
        "BKM_TRIGGER": "manual",
        "BKM_ATTEMPT": "1",
    }
    assert hook_env(out, "success") == after and not os.path.exists(os.path.join(out, "failure.env"))
    assert hook_env(out, "before")["BKM_STATUS"] == "running"
    # A failed run: on-failure and after get its status and error; on-success does not run.
    for name in ("after", "success"):
        os.remove(os.path.join(out, f"{name}.env"))
    os.rename(data_dir, data_dir + ".moved")
    assert bkm(home, "job", "start", "h", "--wait").returncode == 1
    wait_for(lambda: os.path.exists(os.path.join(out, "after.env")), 10, what="the after hook")
    failure = hook_env(out, "failure")
    run = show(home, "h")["last_run"]
    assert failure["BKM_STATUS"] == "failed" and failure["BKM_ERROR"] == run["error"] and failure["BKM_ERROR"]
    assert failure["BKM_EXIT_CODE"] == str(run["exit_code"])
    assert hook_env(out, "after")["BKM_STATUS"] == "failed" and not os.path.exists(os.path.join(out, "success.env"))
    assert daemon.stop() == 0


def test_hooks_of_a_paused_run(home):
    out = os.path.join(home, "out")
    os.makedirs(out)
    daemon = Bkmd(home, env={"OUT": out}).start()
    source = os.path.join(home, "src")
    slow_tree(source)
    create(home, "p", "rsync", source + "/", os.path.join(home, "d"), "--bwlimit", "512",
           "--after", HOOK.format(name="after"), "--on-failure", HOOK.format(name="failure"))  # fmt: skip
    assert bkm(home, "job", "start", "p").returncode == 0
    wait_for(lambda: show(home, "p")["progress"]["bytes_transferred"] > 0, 10, what="bytes moving")
    assert bkm(home, "job", "pause", "p").returncode == 0
    wait_for(lambda: os.path.exists(os.path.join(out, "after.env")), 10, what="the after hook")
    after = hook_env(out, "after")
    assert after["BKM_STATUS"] == "paused" and after["BKM_EXIT_CODE"] == "" and after["BKM_ERROR"] == ""
    assert not os.path.exists(os.path.join(out, "failure.env"))
    assert daemon.stop() == 0


def test_a_failing_before_hook_fails_the_run_and_starts_no_transfer(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "d")
    create(bkmd.home, "b", "rsync", data_dir + "/", dest, "--before", "echo checking the disk; exit 3")
    out = bkm(bkmd.home, "job", "start", "b", "--wait")
    assert out.returncode == 1
    assert "before hook failed (exit 3)" in out.stderr
    run = show(bkmd.home, "b")["last_run"]
    assert run["outcome"] == "failed" and run["error"] == "before hook failed (exit 3)"
    assert not os.path.exists(dest)
    text = log_text(bkmd.home, "b")
    assert "before hook: checking the disk" in text


def test_a_hook_past_its_timeout_is_killed_with_its_group(bkmd, data_dir):
    assert bkm(bkmd.home, "settings", "set", "hook_timeout", "1").returncode == 0
    marker = os.path.join(bkmd.home, "child.pid")
    # The hook's own child (a sleep in the background) belongs to its group: it goes too.
    hook = f"sleep 30 & echo $! > {marker}; wait"
    create(bkmd.home, "t", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"), "--before", hook)
    began = time.monotonic()
    out = bkm(bkmd.home, "job", "start", "t", "--wait")
    assert out.returncode == 1 and time.monotonic() - began < 10
    assert show(bkmd.home, "t")["last_run"]["error"] == "before hook failed (timed out after 1 s, stopped)"
    with open(marker) as f:
        child = int(f.read())
    wait_for(lambda: not os.path.exists(f"/proc/{child}"), 10, what="the hook's child gone")


def test_stale_once_per_episode_then_fresh_again(bkmd, data_dir, server):
    target = f"json://127.0.0.1:{server.server_address[1]}/notify"
    create(bkmd.home, "s", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"), "--max-age", "2s", "--notify", target)
    assert bkm(bkmd.home, "job", "start", "s", "--wait").returncode == 0
    assert show(bkmd.home, "s")["stale"] is False
    wait_for(lambda: show(bkmd.home, "s")["stale"], 10, what="stale")
    wait_for(lambda: server.paths("/notify"), 10, what="the stale notification")
    listed = bkm(bkmd.home, "job", "list").stdout
    assert "(stale)" in listed
    assert "s" in json.loads(bkm(bkmd.home, "status", "--json").stdout)["stale"]
    deadline = time.monotonic() + 3
    wait_for(lambda: time.monotonic() > deadline, 5, what="a while longer stale")
    notices = [json.loads(body) for _, path, body, _ in server.requests if path == "/notify"]
    assert len(notices) == 1 and "stale" in notices[0]["title"]
    assert bkm(bkmd.home, "job", "start", "s", "--wait").returncode == 0
    job = show(bkmd.home, "s")
    assert job["stale"] is False and job["last_success_at"] == job["last_run"]["finished_at"]


def test_notify_test_and_secrets_stay_masked(bkmd, data_dir, server):
    target = f"json://bkmuser:{SECRET}@127.0.0.1:{server.server_address[1]}/notify"
    hc = f"{server.url}/ping/{SECRET}"
    create(
        bkmd.home, "m", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"), "--notify", target, "--healthcheck", hc
    )
    out = bkm(bkmd.home, "notify", "test", "m")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"json://bkmuser:****@127.0.0.1:{server.server_address[1]}/notify: sent"
    assert len(server.paths("/notify")) == 1
    assert bkm(bkmd.home, "job", "start", "m", "--wait").returncode == 0
    wait_for(lambda: len(server.paths("/ping")) >= 2, 10, what="the pings")
    assert bkm(bkmd.home, "settings", "set", "notify_urls", f'["{target}"]').returncode == 0
    outputs = [
        bkm(bkmd.home, "job", "show", "m").stdout,
        bkm(bkmd.home, "job", "show", "m", "--json").stdout,
        bkm(bkmd.home, "job", "list", "--json").stdout,
        bkm(bkmd.home, "logs", "m").stdout,
        bkm(bkmd.home, "status", "--json").stdout,
        bkm(bkmd.home, "settings", "show").stdout,
        bkm(bkmd.home, "settings", "show", "--json").stdout,
    ]
    for text in outputs:
        assert SECRET not in text
    assert "****" in outputs[0]
    # The one who may change settings, asking for that key by name, gets it whole.
    assert SECRET in bkm(bkmd.home, "settings", "get", "notify_urls").stdout
    # A URL that does not work: exit 1 and the URL's own line.
    bad = f"json://127.0.0.1:{free_port()}/x"
    assert bkm(bkmd.home, "job", "edit", "m", "--notify", bad).returncode == 0
    out = bkm(bkmd.home, "notify", "test", "m")
    assert out.returncode == 1 and "FAILED" in out.stdout
    assert bkm(bkmd.home, "daemon", "stop").returncode == 0
    with open(bkmd.stderr_path) as f:
        assert SECRET not in f.read()


def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family, **labels) -> float:
    (found,) = [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return found


def test_metrics_match_the_jobs_and_the_listener_serves_only_metrics(bkmd, data_dir):
    import urllib.error
    import urllib.request

    create(bkmd.home, "ok", "rsync", data_dir + "/", os.path.join(bkmd.home, "d1"), "--schedule", "@daily")
    create(bkmd.home, "bad", "rsync", data_dir + "/", os.path.join(bkmd.home, "d2"))  # never run
    assert bkm(bkmd.home, "job", "start", "ok", "--wait").returncode == 0
    out = bkm(bkmd.home, "metrics")
    assert out.returncode == 0, out.stderr
    found = families(out.stdout)
    job = show(bkmd.home, "ok")
    run = job["last_run"]
    from bkm.render import parse_time

    assert value(found["bkm_job_last_success_timestamp_seconds"], job="ok") == parse_time(job["last_success_at"])
    assert value(found["bkm_job_last_success_timestamp_seconds"], job="bad") == 0
    assert value(found["bkm_job_last_run_duration_seconds"], job="ok") == run["duration_seconds"]
    assert value(found["bkm_job_last_run_bytes"], job="ok") == run["bytes"]
    assert value(found["bkm_job_running"], job="ok") == 0
    assert value(found["bkm_job_stale"], job="ok") == 0
    assert value(found["bkm_job_next_run_timestamp_seconds"], job="ok") == parse_time(job["next_run_at"])
    assert value(found["bkm_job_runs"], job="ok", outcome="completed") == 1
    assert value(found["bkm_job_runs"], job="ok", outcome="failed") == 0
    assert value(found["bkm_jobs"], status="completed") == 1 and value(found["bkm_jobs"], status="pending") == 1
    assert found["bkmd_info"].samples[0].labels["version"]
    assert value(found["bkmd_start_time_seconds"]) > 0
    for name in ("bkm_job_runs", "bkm_jobs", "bkm_job_stale"):
        assert f"# HELP {name}" in out.stdout and f"# TYPE {name}" in out.stdout
    # The listener: off by default; on, /metrics gives the same families and anything else 404.
    port = free_port()
    assert bkm(bkmd.home, "settings", "set", "metrics_listen", f"127.0.0.1:{port}").returncode == 0

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    wait_for(lambda: _answers(port), 10, what="the metrics listener")
    status, body = get("/metrics")
    assert status == 200 and set(families(body)) == set(found)
    for path in ("/", "/metrics/x", "/admin", "/../etc/passwd"):
        assert get(path)[0] == 404
    assert bkm(bkmd.home, "settings", "set", "metrics_listen", "").returncode == 0
    wait_for(lambda: not _answers(port), 10, what="the listener closed")


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_flooding_hook_is_cut_and_bkmd_keeps_answering(bkmd, data_dir):
    create(bkmd.home, "f", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"), "--before", "timeout 3 yes")
    assert bkm(bkmd.home, "job", "start", "f").returncode == 0
    began = time.monotonic()
    assert bkm(bkmd.home, "job", "list").returncode == 0
    assert time.monotonic() - began < 3
    wait_for(lambda: show(bkmd.home, "f")["status"] != "running", 15, what="the run's end")
    text = log_text(bkmd.home, "f")
    assert "(output cut:" in text
    assert text.count("before hook: y") <= 500
    assert os.path.getsize(os.path.join(bkmd.home, "logs", show(bkmd.home, "f")["id"] + ".log")) < 200_000


def test_pausing_a_run_in_its_before_hook_stops_the_hook_and_starts_no_transfer(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "d")
    create(bkmd.home, "w", "rsync", data_dir + "/", dest, "--before", "sleep 30")
    assert bkm(bkmd.home, "job", "start", "w").returncode == 0
    wait_for(lambda: bkmd.transfers(("sleep",)), 10, what="the before hook")
    began = time.monotonic()
    assert bkm(bkmd.home, "job", "pause", "w").returncode == 0
    assert time.monotonic() - began < 8
    assert show(bkmd.home, "w")["status"] == "paused" and not os.path.exists(dest)
    wait_for(lambda: not bkmd.transfers(("sleep",)), 10, what="the hook gone")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_hook_left_by_a_killed_bkmd_is_ended_at_the_next_start(home, data_dir, server):
    marker = os.path.join(home, "hook.pid")
    daemon = Bkmd(home).start()
    hc = f"{server.url}/k/{SECRET}"
    # The shell (the group's leader) dies with bkmd (PR_SET_PDEATHSIG); its sleep, in the
    # background, has no such signal and keeps the hook's process group alive.
    create(home, "k", "rsync", data_dir + "/", os.path.join(home, "d"), "--before",
           f"echo $$ > {marker}; sleep 123 & wait", "--healthcheck", hc)  # fmt: skip
    assert bkm(home, "job", "start", "k").returncode == 0
    wait_for(lambda: os.path.exists(marker) and open(marker).read().strip(), 10, what="the hook's pid")
    with open(marker) as f:
        shell = int(f.read())
    wait_for(lambda: server.paths(f"/k/{SECRET}/start"), 10, what="the start ping")
    daemon.kill()  # SIGKILL: no stop, no cleanup
    assert group_alive(shell)  # the hook outlived it (its sleep keeps the group)
    daemon = Bkmd(home).start()
    wait_for(lambda: not group_alive(shell), 10, what="the hook ended by the new bkmd")
    assert "ended the hook" in log_text(home, "k")
    assert show(home, "k")["status"] == "interrupted"
    # Its check fails with the run's own id.
    wait_for(lambda: server.paths(f"/k/{SECRET}/fail"), 10, what="the fail ping")
    (start,) = server.paths(f"/k/{SECRET}/start")
    (fail,) = server.paths(f"/k/{SECRET}/fail")
    assert start.split("rid=")[1] == fail.split("rid=")[1] == show(home, "k")["last_run"]["rid"]
    assert daemon.stop() == 0


def test_secrets_never_echo_in_errors_or_logs(bkmd, data_dir):
    dest = os.path.join(bkmd.home, "d")
    out = bkm(bkmd.home, "job", "create", "e", "--type", "rsync", "--source", data_dir, "--dest", dest,
              "--healthcheck", f"ftp://user:{SECRET}@host/x")  # fmt: skip
    assert out.returncode == 2 and SECRET not in out.stderr and "****" in out.stderr
    out = bkm(bkmd.home, "settings", "set", "notify_urls", f'["ntfy//u:{SECRET}@h/t"]')
    assert out.returncode == 2 and SECRET not in out.stderr
    for hc in (f"http://user:{SECRET}@127.0.0.1:{free_port()}/ping", f"https://user:{SECRET}@hc.example/ping/abc"):
        name = f"e{hc.count('.')}"
        create(bkmd.home, name, "rsync", data_dir + "/", dest, "--healthcheck", hc)
        assert bkm(bkmd.home, "job", "start", name, "--wait").returncode == 0
        wait_for(lambda name=name: "not sent" in log_text(bkmd.home, name), 30, what="the failed ping's line")
        assert SECRET not in log_text(bkmd.home, name)
    with open(bkmd.stderr_path) as f:
        assert SECRET not in f.read()


def test_a_second_stale_episode_is_told_again(bkmd, data_dir, server):
    target = f"json://127.0.0.1:{server.server_address[1]}/again"
    dest = os.path.join(bkmd.home, "d")
    create(bkmd.home, "s2", "rsync", data_dir + "/", dest, "--max-age", "2s", "--notify", target)
    for episode in (1, 2):
        assert bkm(bkmd.home, "job", "start", "s2", "--wait").returncode == 0
        wait_for(lambda episode=episode: len(server.paths("/again")) == episode, 15, what=f"notice {episode}")


def test_deleting_a_job_while_its_after_hook_runs_leaves_no_log(bkmd, data_dir):
    created = create(bkmd.home, "gone", "rsync", data_dir + "/", os.path.join(bkmd.home, "d"),
                     "--after", "sleep 1; echo still here")  # fmt: skip
    assert bkm(bkmd.home, "job", "start", "gone", "--wait").returncode == 0
    assert bkm(bkmd.home, "job", "delete", "gone", "--yes").returncode == 0
    wait_for(lambda: not bkmd.transfers(("sleep",)), 10, what="the after hook's end")
    log = os.path.join(bkmd.home, "logs", created["id"] + ".log")
    assert not os.path.exists(log)


def test_the_metrics_listener_survives_a_flood_and_refuses_a_bad_address(bkmd):
    assert bkm(bkmd.home, "settings", "set", "metrics_listen", "999.1.1.1:80").returncode == 2
    port = free_port()
    assert bkm(bkmd.home, "settings", "set", "metrics_listen", f"127.0.0.1:{port}").returncode == 0
    wait_for(lambda: _answers(port), 10, what="the listener")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    try:
        assert bkm(bkmd.home, "job", "list").returncode == 0
    finally:
        for s in idle:
            s.close()
    import urllib.request

    def scraped() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    wait_for(scraped, 10, what="a scrape after the flood")
