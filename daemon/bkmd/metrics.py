"""Prometheus metrics: the exposition text (`bkm metrics`, for node_exporter's textfile
collector) and, when the setting metrics_listen names HOST:PORT, a listener that serves it at
/metrics and answers 404 to every other path. prometheus_client is imported on first use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from bkm import __version__, model
from bkm.schedules import parse_time
from bkmd.job import Job

log = logging.getLogger("bkmd.metrics")
OUTCOMES = (model.COMPLETED, model.FAILED, model.PAUSED)
REQUEST_BYTES = 8192
REQUEST_SECONDS = 5.0
MAX_CONNECTIONS = 16


def _seconds(stamp: str | None) -> float:
    """A stored time as epoch seconds; 0 for none (an alert on age then fires, as it should)."""
    try:
        return parse_time(stamp) if stamp else 0.0
    except ValueError:
        return 0.0


def text(jobs: Iterable[Job], started_at: str) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    jobs = list(jobs)

    class Collector:
        def collect(self):
            def per_job(name: str, doc: str, value: Callable[[Job], float | None]) -> GaugeMetricFamily:
                family = GaugeMetricFamily(name, doc, labels=["job"])
                for job in jobs:
                    number = value(job)
                    if number is not None:
                        family.add_metric([job.name], number)
                return family

            def last(job: Job) -> dict:
                return job.last_run or {}

            yield per_job(
                "bkm_job_last_success_timestamp_seconds",
                "When a run of the job last completed (0: never).",
                lambda job: _seconds(job.last_success_at),
            )
            yield per_job(
                "bkm_job_last_run_timestamp_seconds",
                "When the job's last run ended, or began while it runs (0: never).",
                lambda job: _seconds(last(job).get("finished_at") or last(job).get("started_at")),
            )
            yield per_job(
                "bkm_job_last_run_duration_seconds",
                "How long the job's last finished run took.",
                lambda job: float(last(job).get("duration_seconds") or 0),
            )
            yield per_job(
                "bkm_job_last_run_bytes",
                "Bytes the job's last run sent.",
                lambda job: float(last(job).get("bytes") or 0),
            )
            yield per_job("bkm_job_running", "1 while the job runs.", lambda job: float(job.status == model.RUNNING))
            yield per_job(
                "bkm_job_stale", "1 when the job's last success is older than its max age.", lambda j: float(j.stale())
            )
            yield per_job(
                "bkm_job_next_run_timestamp_seconds",
                "When the job's schedule runs it next (only jobs with one planned).",
                lambda job: _seconds(job.next_run_at) if job.next_run_at else None,
            )
            runs = CounterMetricFamily(
                "bkm_job_runs", "Runs of the job by outcome, since it was created.", labels=["job", "outcome"]
            )
            for job in jobs:
                for outcome in OUTCOMES:
                    runs.add_metric([job.name, outcome], float(job.run_counts.get(outcome, 0)))
            yield runs
            statuses = GaugeMetricFamily("bkm_jobs", "Jobs by status.", labels=["status"])
            for status in model.STATUSES:
                statuses.add_metric([status], float(sum(job.status == status for job in jobs)))
            yield statuses
            yield GaugeMetricFamily("bkmd_start_time_seconds", "When bkmd started.", value=_seconds(started_at))
            yield InfoMetricFamily("bkmd", "bkmd's version.", value={"version": __version__})

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)


class Listener:
    """The HTTP listener of metrics_listen: GET (or HEAD) /metrics, 404 for anything else."""

    def __init__(self, body: Callable[[], bytes]) -> None:
        self.body = body
        self.server: asyncio.AbstractServer | None = None
        self.where = ""
        self.handlers: set[asyncio.Task] = set()
        self.lock = asyncio.Lock()  # one change of address at a time

    async def apply(self, where: str) -> None:
        """Listen on ``where`` (HOST:PORT), or nowhere for ""; a change closes the old one."""
        async with self.lock:
            if where == self.where and (self.server is not None or not where):
                return
            await self._close()
            self.where = where
            if not where:
                return
            host, port = split(where)
            try:
                self.server = await asyncio.start_server(self._serve, host, port)
            except OSError as e:
                log.error("metrics: cannot listen on %s: %s", where, e.strerror or e)
                return
            log.info("metrics at http://%s/metrics", where)

    async def close(self) -> None:
        async with self.lock:
            await self._close()

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.handlers):
                task.cancel()
            await asyncio.gather(*self.handlers, return_exceptions=True)
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self.handlers) >= MAX_CONNECTIONS or task is None:
            writer.close()  # a flood of connections must not take bkmd's file descriptors
            return
        self.handlers.add(task)
        try:
            await asyncio.wait_for(self._answer(reader, writer), REQUEST_SECONDS)
        except (asyncio.TimeoutError, asyncio.CancelledError):  # noqa: UP041
            pass
        finally:
            self.handlers.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""]
            if method in ("GET", "HEAD") and path.split("?", 1)[0] == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                body, status, kind = self.body(), "200 OK", CONTENT_TYPE_LATEST
            else:
                body, status, kind = b"404 page not found\n", "404 Not Found", "text/plain; charset=utf-8"
            header = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(header.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:
            log.exception("metrics request failed")


def split(where: str) -> tuple[str, int]:
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port)


def bind_problem(where: str) -> str | None:
    """Whether ``where`` can be listened on now (asked before the setting is saved)."""
    import socket

    host, port = split(where)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except (OSError, IndexError) as e:
        return f"cannot listen on {where}: {getattr(e, 'strerror', None) or e}"
    return None
