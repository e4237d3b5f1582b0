"""Telling people: healthchecks pings and Apprise notifications, fed by run outcomes.

Everything here happens off bkmd's loop (a worker thread per delivery) and after the outcome
is saved: a slow or dead server never delays or fails a run. Deliveries for one job go out one
after another, so the pings of a run reach the server in order even when the run is shorter
than the start ping's round trip. What could not be sent is written to the job log (URLs
masked) and counted for `bkm status`. Apprise is imported only when a notification is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bkm import __version__, model
from bkm.masking import mask_text, mask_url

log = logging.getLogger("bkmd.notify")
PING_TIMEOUT = 10.0
PING_BACKOFF = (1.0, 2.0, 4.0)  # waits before the 3 retries of a ping
BODY_BYTES = 10_000  # of the job log, sent with a ping or a notification


class Notifier:
    def __init__(self, logs, settings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.logs = logs
        self.settings = settings
        self.sleep = sleep
        self.chains: dict[str, asyncio.Task] = {}  # job id: its last delivery
        self.failed = 0  # pings and notifications that could not be sent since bkmd started

    # -- what happened ------------------------------------------------------------------------

    def run_started(self, job, record: dict) -> None:
        """A start ping with the run's id, except for a retry that goes on with the id of the
        attempt before it (one check run from the first attempt to the final outcome)."""
        if not job.healthcheck or not record.get("rid"):
            return
        earlier = job.runs[-1] if job.runs else {}
        if record.get("trigger") == model.RETRY and earlier.get("rid") == record["rid"]:
            return
        self._ping(job, "start", record["rid"], None)

    def run_ended(self, job, record: dict, log_tail: str) -> None:
        """The final outcome of a run: success or fail ping; a notification for a failure (and
        for a success with notify_on always). A paused run sends neither."""
        outcome = record.get("outcome")
        if outcome not in (model.COMPLETED, model.FAILED):
            return
        if job.healthcheck:
            self._ping(job, "" if outcome == model.COMPLETED else "fail", record.get("rid"), log_tail)
        if outcome == model.FAILED:
            self.notify(job, f"bkm: job {job.name} failed", f"{record.get('error') or 'failed'}\n\n{log_tail}")
        elif self.settings["notify_on"] == "always":
            self.notify(job, f"bkm: job {job.name} completed", log_tail)

    def interrupted(self, job, log_tail: str) -> None:
        """A run found interrupted when bkmd started: its check fails, people are told."""
        run = job.last_run or {}
        if job.healthcheck:
            self._ping(job, "fail", run.get("rid"), log_tail)
        self.notify(job, f"bkm: job {job.name} was interrupted", f"bkmd stopped during its run.\n\n{log_tail}")

    def stale(self, job, since: str | None) -> None:
        last = f"its last success was at {since}" if since else "it has never completed"
        self.notify(job, f"bkm: job {job.name} is stale", f"Job {job.name} is stale: {last}.")

    # -- deliveries ---------------------------------------------------------------------------

    def urls(self, job) -> list[str]:
        return list(dict.fromkeys([*(job.notify if job is not None else []), *self.settings["notify_urls"]]))

    def notify(self, job, title: str, body: str) -> None:
        urls = self.urls(job)
        if urls:
            self._queue(job.id, lambda: _problems(send(urls, title, body)), urls)

    def _ping(self, job, kind: str, rid: str | None, body: str | None) -> None:
        url = job.healthcheck + (f"/{kind}" if kind else "") + (f"?rid={rid}" if rid else "")
        data = body.encode("utf-8", "replace")[-BODY_BYTES:] if body else b""
        what = f"healthcheck ping {kind or 'success'}"
        self._queue(job.id, lambda: ping(url, data, what, self.sleep), [url])

    def _queue(self, job_id: str, work: Callable[[], str | None], secrets: list[str]) -> None:
        """``work`` in a worker thread after this job's earlier deliveries; the problem it
        returns (None: none) goes to the job log. ``secrets``: the URLs it uses."""
        earlier = self.chains.get(job_id)

        async def deliver() -> None:
            if earlier is not None:
                await asyncio.wait([earlier])
            try:
                problem = await asyncio.to_thread(work)
            except Exception as e:  # a bug here must not reach the run; its text may quote a URL
                problem = mask_text(f"a notification failed: {type(e).__name__}: {e}", secrets)
                log.error("job %s: %s", job_id, problem)
            if problem:
                self.failed += 1
                self.logs.write(job_id, problem, "warning")

        task = asyncio.get_running_loop().create_task(deliver())
        self.chains[job_id] = task
        task.add_done_callback(lambda done: self.chains.pop(job_id, None) if self.chains.get(job_id) is done else None)

    async def drain(self, timeout: float) -> None:
        """Let deliveries under way finish (bkmd is stopping), for at most ``timeout`` seconds."""
        if self.chains:
            await asyncio.wait(list(self.chains.values()), timeout=timeout)


def ping(url: str, data: bytes, what: str, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """POST a ping: 10 s timeout, 3 retries with backoff. None when sent, else what went wrong."""
    import http.client  # here: an idle bkmd does not pay for the HTTP client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data, method="POST", headers={"User-Agent": f"bkm/{__version__}"})
    problem = None
    for wait in (0.0, *PING_BACKOFF):
        if wait:
            sleep(wait)
        try:
            with urllib.request.urlopen(request, timeout=PING_TIMEOUT) as answer:
                answer.read(1024)
            return None
        except urllib.error.HTTPError as e:
            problem = f"HTTP {e.code} {e.reason}"
            if 400 <= e.code < 500 and e.code != 429:
                break  # a wrong URL does not get better
        except (OSError, ValueError, http.client.HTTPException) as e:
            problem = str(getattr(e, "reason", None) or e) or type(e).__name__
    return mask_text(f"{what} to {mask_url(url)} not sent: {problem}", [url])


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def send(urls: list[str], title: str, body: str) -> list[dict]:
    """Send to each URL with Apprise; each URL's result: {"url" (masked), "ok", "error"}."""
    import apprise

    # Apprise's own log lines may quote a URL whole: they are kept from bkmd's log, and what
    # they say is reported (masked) with the URL's result.
    apprise_log = logging.getLogger("apprise")
    apprise_log.propagate = False
    results = []
    for url in urls:
        captured = _Captured()
        apprise_log.addHandler(captured)
        try:
            sender = apprise.Apprise()
            if not sender.add(url):
                ok, error = False, "not a URL Apprise knows"
            else:
                ok = bool(sender.notify(title=title, body=body or title))
                error = None if ok else (captured.messages[-1] if captured.messages else "not delivered")
        except Exception as e:  # a plugin's bug must not end bkmd
            ok, error = False, str(e) or type(e).__name__
        finally:
            apprise_log.removeHandler(captured)
        results.append({"url": mask_url(url), "ok": ok, "error": mask_text(error, [url]) if error else None})
    return results


def _problems(results: list[dict]) -> str | None:
    failed = [f"{r['url']}: {r['error']}" for r in results if not r["ok"]]
    return f"notification not sent to {'; '.join(failed)}" if failed else None
