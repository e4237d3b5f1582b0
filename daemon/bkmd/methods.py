"""The RPC methods: one thin function each, checking params and asking jobs or settings."""

from __future__ import annotations

import time
from typing import Any

from bkm import __version__, model, protocol
from bkm import settings as schema
from bkmd import validate
from bkmd.app import Daemon
from bkmd.change import Change, Later
from bkmd.errors import InvalidParams, ValidationFailed
from bkmd.job import event
from bkmd.rpc import Registry


def _statuses(status: Any) -> set[str] | None:
    if status is None:
        return None
    values = [status] if isinstance(status, str) else status
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidParams("Invalid params: 'status' must be a status or a list of them")
    unknown = [v for v in values if v not in model.STATUSES]
    if unknown:
        choices = ", ".join(model.STATUSES)
        raise ValidationFailed({"status": f"unknown status {model.brief(unknown[0])}; one of {choices}"})
    return set(values)


def _valid_cursor(cursor: Any) -> bool:
    return (
        isinstance(cursor, list)
        and len(cursor) == 2
        and isinstance(cursor[0], int)
        and not isinstance(cursor[0], bool)
        and cursor[0] >= 0
        and (cursor[1] is None or (isinstance(cursor[1], int) and cursor[1] >= 0))
    )


def _fields(given: dict, allowed: tuple[str, ...]) -> dict:
    """The job fields a request names; any other name is a malformed request."""
    unknown = [key for key in given if key not in allowed]
    if unknown:
        raise InvalidParams(f"Invalid params: unexpected {', '.join(map(repr, unknown))}; fields: {', '.join(allowed)}")
    return given


def build(daemon: Daemon) -> Registry:
    jobs, settings, runs, recovery = daemon.jobs, daemon.settings, daemon.runs, daemon.recovery
    registry = Registry()

    def daemon_status() -> dict:
        return {
            "pid": daemon.pid,
            "version": __version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "started_at": daemon.started_at,
            "uptime_seconds": round(time.monotonic() - daemon.started_monotonic, 3),
            "socket": daemon.paths.socket,
            "store": daemon.paths.store,
            "settings": daemon.paths.settings,
            "logs": daemon.paths.logs,
            "system": daemon.paths.system,
            "jobs": len(jobs.by_id),
            "counts": jobs.counts(),
            "active": [event(j) for j in jobs.list(set(model.SHOWN))],
            "recent": daemon.activity.newest(10),
            "interrupted": [j.name for j in jobs.list({model.INTERRUPTED})],
            "subscribers": len(daemon.events.subscribers),
        }

    def daemon_shutdown() -> dict:
        daemon.stopping.set()
        return {"stopping": True, "pid": daemon.pid}

    def job_create(change: Change, **fields) -> dict:
        clean, problems = validate.check_fields(_fields(fields, model.FIELD_NAMES), creating=True, settings=settings)
        if problems:
            raise ValidationFailed(problems)
        return jobs.create(clean, change).public()

    def job_list(status=None) -> list[dict]:
        return [job.public() for job in jobs.list(_statuses(status))]

    def job_get(job) -> dict:
        return jobs.find(job).detail()

    def job_start(change: Change, job) -> dict:
        return runs.start(jobs.find(job), change).public()

    def job_pause(change: Change, job) -> dict | Later:
        paused = runs.pause(jobs.find(job), change)
        if isinstance(paused, Later):
            ended = paused.answer

            async def answer() -> dict:
                return (await ended()).public()

            return Later(answer)
        return paused.public()

    def events_subscribe(connection, jobs=None) -> dict:
        if jobs is None:
            keys = None
            current = [j for j in daemon.jobs.by_id.values() if j.status in model.SHOWN]
        else:
            if not isinstance(jobs, list):
                raise InvalidParams("Invalid params: 'jobs' must be a list of job names or ids")
            current = [daemon.jobs.find(ref) for ref in jobs]
            keys = {j.id for j in current}
        daemon.events.subscribe(connection, "job_update", keys)
        return {"subscribed": True, "jobs": [event(j) for j in current]}

    def job_update(change: Change, job, **changes) -> dict:
        target = jobs.find(job)
        given = {k: v for k, v in _fields(changes, model.EDITABLE).items() if v is not None}
        if not given:
            raise ValidationFailed({"job": f"nothing to change: give at least one of {', '.join(model.EDITABLE)}"})
        clean, problems = validate.check_fields(given, creating=False, settings=settings)
        if problems:
            raise ValidationFailed(problems)
        return jobs.update(target, clean, change).public()

    def job_delete(change: Change, job) -> dict:
        target = jobs.find(job)
        jobs.delete(target, change)
        return {"deleted": True, "id": target.id, "name": target.name}

    def logs_read(job=None, lines=500, before=None) -> dict:
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 100_000:
            raise ValidationFailed({"lines": "must be a whole number from 1 to 100000"})
        if job is not None:
            target = jobs.find(job)
            if before is not None and not _valid_cursor(before):
                raise InvalidParams("Invalid params: 'before' must be the cursor a previous page returned")
            taken, cursor = daemon.logs.read(target.id, lines, before)
            return {
                "lines": [{"job_id": target.id, "name": target.name, "line": text} for _, _, text in taken],
                "before": cursor,
            }
        return _merged(lines, before)

    def _merged(count: int, before: Any) -> dict:
        if before is not None and not (
            isinstance(before, dict) and all(c is None or _valid_cursor(c) for c in before.values())
        ):
            raise InvalidParams("Invalid params: 'before' must be the cursor a previous page returned")
        chosen, cursors = daemon.logs.read_merged(list(jobs.by_id.values()), count, before)
        lines = [{"job_id": job.id, "name": job.name, "line": text} for job, text in chosen]
        return {"lines": lines, "before": cursors}

    def logs_follow(connection, job=None) -> dict:
        keys = None if job is None else {jobs.find(job).id}
        daemon.events.subscribe(connection, "log_line", keys)
        return {"following": True}

    def recovery_list() -> list[dict]:
        return [j.public() for j in jobs.list({model.INTERRUPTED})]

    def recovery_recover(change: Change) -> list[dict]:
        return [recovery.recover(j, change).public() for j in jobs.list({model.INTERRUPTED})]

    def recovery_dismiss(change: Change) -> list[dict]:
        return [recovery.dismiss(j, change).public() for j in jobs.list({model.INTERRUPTED})]

    def system_check() -> list[dict]:
        """The machine as bkmd sees it: the tools it will run, its folders, its disk."""
        from bkm import checks

        return checks.machine_checks(daemon.paths, settings["rsync_path"], settings["rclone_path"])

    def settings_get(key=None) -> Any:
        if key is None:
            return settings.all()
        if not isinstance(key, str) or key not in schema.SETTINGS:
            raise ValidationFailed({"key": schema.unknown_message(key)})
        return {"key": key, "value": settings[key], "default": schema.DEFAULTS[key]}

    def settings_set(change: Change, key, value) -> dict:
        return {"key": key, "value": settings.set(key, value, change)}

    def settings_reset(change: Change, key=None) -> dict:
        keys = settings.reset(key, change)
        return {"reset": keys, "settings": settings.all()}

    registry.add("daemon.status", daemon_status)
    registry.add("daemon.shutdown", daemon_shutdown)
    registry.add("job.create", job_create, mutates=True)
    registry.add("job.list", job_list)
    registry.add("job.get", job_get)
    registry.add("job.update", job_update, mutates=True)
    registry.add("job.delete", job_delete, mutates=True)
    registry.add("job.start", job_start, mutates=True)
    registry.add("job.pause", job_pause, mutates=True)
    registry.add("events.subscribe", events_subscribe, wants_connection=True)
    registry.add("logs.read", logs_read)
    registry.add("logs.follow", logs_follow, wants_connection=True)
    registry.add("recovery.list", recovery_list)
    registry.add("recovery.recover", recovery_recover, mutates=True)
    registry.add("recovery.dismiss", recovery_dismiss, mutates=True)
    registry.add("system.check", system_check)
    registry.add("settings.get", settings_get)
    registry.add("settings.set", settings_set, mutates=True)
    registry.add("settings.reset", settings_reset, mutates=True)
    return registry
