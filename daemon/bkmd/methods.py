"""The RPC methods: one thin function each, checking params and asking jobs or settings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bkm import __version__, model, protocol, schedules
from bkm import settings as schema
from bkm.masking import mask_url
from bkmd import access, apply, restore, validate
from bkmd.access import Caller
from bkmd.app import Daemon
from bkmd.change import Change, Later
from bkmd.errors import Conflict, InvalidParams, ValidationFailed
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
    scheduler = daemon.scheduler
    registry = Registry()

    def daemon_status(caller: Caller) -> dict:
        visible = {job.id for job in jobs.visible(caller)}
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
            "jobs": len(visible),
            "counts": jobs.counts(caller),
            "active": [event(j) for j in jobs.list(caller, set(model.SHOWN))],
            "recent": daemon.activity.newest(10, visible if caller.system and not caller.is_root else None),
            "interrupted": [j.name for j in jobs.list(caller, {model.INTERRUPTED})],
            "subscribers": len(daemon.events.subscribers),
            "stale": [j.name for j in jobs.list(caller) if j.stale()],
            "notifications_failed": runs.notifier.failed,
            "next_runs": [
                {"job_id": j.id, "name": j.name, "schedule": j.schedule, "next_run_at": j.next_run_at}
                for j in sorted(
                    (j for j in jobs.visible(caller) if j.next_run_at), key=lambda j: (j.next_run_at, j.name)
                )[:3]
            ],
        }

    def daemon_shutdown(caller: Caller) -> dict:
        caller.check_admin("stopping bkmd and its settings")
        daemon.stopping.set()
        return {"stopping": True, "pid": daemon.pid}

    def job_create(caller: Caller, change: Change, **fields) -> dict:
        owner = caller.owner()
        given = _fields(fields, model.FIELD_NAMES)
        clean, problems = validate.check_fields(given, creating=True, settings=settings, run_as=access.run_as(owner))
        if problems:
            raise ValidationFailed(problems)
        created = jobs.create(clean, owner, change)
        scheduler.plan(created)
        change.after_save(scheduler.wake)
        return _public(created)

    def _placed(job, data: dict) -> dict:
        """A queued job's place in the queue (1: next to start), for `queued #2`; else null."""
        position = runs.queue.position(job.id) if job.status == model.QUEUED else None
        return {**data, "queue_position": None if position is None else position + 1}

    def _public(job) -> dict:
        return _placed(job, job.public())

    def job_list(caller: Caller, status=None) -> list[dict]:
        return [_public(job) for job in jobs.list(caller, _statuses(status))]

    def job_get(caller: Caller, job) -> dict:
        found = jobs.find(job, caller)
        return _placed(found, found.detail())

    def job_start(caller: Caller, change: Change, job, force=False) -> dict:
        if not isinstance(force, bool):
            raise InvalidParams("Invalid params: 'force' must be true or false")
        return _public(runs.start(jobs.find(job, caller), change, force=force))

    def job_restore(caller: Caller, change: Change, job, to, paths=None, snapshot=None) -> dict:
        """Copy the backup (or one of its snapshots), or some paths of it, into the folder
        ``to``: a run of the job (trigger "restore"), as its owner."""
        target = jobs.find(job, caller)
        argv = restore.plan(target, settings, to, paths, snapshot, access.run_as(target.owner))
        return _public(runs.start(target, change, model.RESTORE, argv=argv))

    async def job_restore_dry_run(connection, caller: Caller, job, to, paths=None, snapshot=None) -> dict:
        """What a restore would copy: the tool's own dry run (nothing is written)."""
        target = jobs.find(job, caller)
        argv = restore.plan(target, settings, to, paths, snapshot, access.run_as(target.owner))
        gone = (lambda: connection.reader.at_eof()) if connection is not None else (lambda: False)
        return {"job": target.name, **(await daemon.dry_runs.run(target, gone, restore.dry(target, argv)))}

    def job_verify(caller: Caller, change: Change, job) -> dict:
        """Compare the source and the backup by checksum: a run of the job (trigger
        "verify"); its result becomes the job's last_verify."""
        return _public(runs.start(jobs.find(job, caller), change, model.VERIFY))

    async def job_snapshots(caller: Caller, job) -> list[dict]:
        target = jobs.find(job, caller)
        return await restore.snapshots(runs.commands, target, settings)

    def job_pause(caller: Caller, change: Change, job) -> dict | Later:
        paused = runs.pause(jobs.find(job, caller), change)
        if isinstance(paused, Later):
            ended = paused.answer

            async def answer() -> dict:
                return _public(await ended())

            return Later(answer)
        return _public(paused)

    def job_update(caller: Caller, change: Change, job, **changes) -> dict:
        target = jobs.find(job, caller)
        # null means "not given", except for a field where it is a value (no schedule).
        given = {k: v for k, v in _fields(changes, model.EDITABLE).items() if v is not None or k in model.NULLABLE}
        if not given:
            raise ValidationFailed({"job": f"nothing to change: give at least one of {', '.join(model.EDITABLE)}"})
        if given.get("mode") not in (None, "snapshot") and "keep" not in given:
            # Retention rules mean nothing outside snapshot mode: they go with it.
            given["keep"] = dict.fromkeys(target.keep, 0)
        run_as = access.run_as(target.owner)
        clean, problems = validate.check_fields(
            given, creating=False, settings=settings, run_as=run_as, current=target.spec
        )
        if problems:
            raise ValidationFailed(problems)
        if "hooks" in clean:  # the kinds given replace theirs; the others stay
            clean["hooks"] = {**target.hooks, **{kind: clean["hooks"][kind] for kind in given["hooks"]}}
        if "keep" in clean:  # the rules given replace theirs (0 removes one); the others stay
            clean["keep"] = model.parse_keep({**target.keep, **given["keep"]})[0]
        updated = jobs.update(target, clean, change)
        if "schedule" in clean:
            scheduler.replan(updated, change, paused_until=updated.schedule_paused_until if clean["schedule"] else None)
        return _public(updated)

    def _scheduled(caller: Caller, job, all) -> list:
        if isinstance(all, bool) and all and job is None:
            return sorted((j for j in jobs.visible(caller) if j.schedule), key=lambda j: j.name)
        if all not in (None, False) or job is None:
            raise InvalidParams("Invalid params: give 'job' (a name or id) or 'all': true")
        target = jobs.find(job, caller)
        if not target.schedule:
            raise Conflict(
                f"job {target.name!r} has no schedule; give it one with: bkm job edit {target.name} --schedule SPEC",
                {"job": target.name},
            )
        return [target]

    def schedule_list(caller: Caller) -> list[dict]:
        scheduled = sorted(
            (j for j in jobs.visible(caller) if j.schedule),
            key=lambda j: (j.next_run_at is None, j.next_run_at or "", j.name),
        )
        return [_public(j) for j in scheduled]

    def schedule_pause(caller: Caller, change: Change, job=None, all=None, duration=None) -> list[dict]:
        targets = _scheduled(caller, job, all)
        if duration is None:
            until = "forever"
        else:
            try:
                seconds = schedules.duration(duration) if isinstance(duration, str) else duration
            except ValueError as e:
                raise ValidationFailed({"for": str(e)}) from None
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= schedules.DURATION_MAX:
                raise ValidationFailed({"for": "must be a duration from 1s to ten years, such as 2h or 3d"})
            until = schedules.time_text(time.time() + seconds)
        for target in targets:
            scheduler.replan(target, change, until, keep_rhythm=True)
            change.after_save(
                lambda target=target: daemon.logs.write(
                    target.id, "schedule paused" + ("" if until == "forever" else f" until {until}")
                )
            )
        return [_public(target) for target in targets]

    def schedule_resume(caller: Caller, change: Change, job=None, all=None) -> list[dict]:
        targets = _scheduled(caller, job, all)
        for target in targets:
            if target.schedule_paused_until is not None:
                scheduler.replan(target, change, None, keep_rhythm=True)
                change.after_save(lambda target=target: daemon.logs.write(target.id, "schedule resumed"))
        return [_public(target) for target in targets]

    async def job_dry_run(connection, caller: Caller, job) -> dict:
        target = jobs.find(job, caller)
        # The client waits for the answer and sends nothing meanwhile: EOF means it hung up.
        gone = (lambda: connection.reader.at_eof()) if connection is not None else (lambda: False)
        return {"job": target.name, **(await daemon.dry_runs.run(target, gone))}

    def job_delete(caller: Caller, change: Change, job) -> dict:
        target = jobs.find(job, caller)
        jobs.delete(target, change)
        return {"deleted": True, "id": target.id, "name": target.name}

    def apply_plan(caller: Caller, jobs, prune=False) -> dict:
        """What apply.commit would do with these entries now (every problem: -32003)."""
        return apply.result(apply.plan(daemon, caller, jobs, prune), committed=False)

    def apply_commit(caller: Caller, change: Change, jobs, prune=False) -> dict:
        """Plan again and make it so, in one change: jobs running or queued are skipped."""
        return apply.result(apply.commit(daemon, caller, change, jobs, prune), committed=True)

    def apply_export(caller: Caller, jobs=None) -> dict:
        return apply.export(daemon, caller, jobs)

    def events_subscribe(connection, caller: Caller, jobs=None) -> dict:
        if jobs is None:
            keys = None
            current = [j for j in daemon.jobs.visible(caller) if j.status in model.SHOWN]
        else:
            if not isinstance(jobs, list):
                raise InvalidParams("Invalid params: 'jobs' must be a list of job names or ids")
            current = [daemon.jobs.find(ref, caller) for ref in jobs]
            keys = {j.id for j in current}
        daemon.events.subscribe(connection, "job_update", keys, _sees(caller))
        return {"subscribed": True, "jobs": [event(j) for j in current]}

    def _sees(caller: Caller):
        """For subscriptions: whether a job (by id) exists for the caller, now or later."""
        if not caller.system or caller.is_root:
            return None

        def sees(job_id: str) -> bool:
            job = daemon.jobs.by_id.get(job_id)
            return job is not None and caller.sees(job.owner)

        return sees

    def logs_read(caller: Caller, job=None, lines=500, before=None) -> dict:
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 100_000:
            raise ValidationFailed({"lines": "must be a whole number from 1 to 100000"})
        if job is not None:
            target = jobs.find(job, caller)
            if before is not None and not _valid_cursor(before):
                raise InvalidParams("Invalid params: 'before' must be the cursor a previous page returned")
            taken, cursor = daemon.logs.read(target.id, lines, before)
            return {
                "lines": [{"job_id": target.id, "name": target.name, "line": text} for _, _, text in taken],
                "before": cursor,
            }
        if before is not None and not (
            isinstance(before, dict) and all(c is None or _valid_cursor(c) for c in before.values())
        ):
            raise InvalidParams("Invalid params: 'before' must be the cursor a previous page returned")
        chosen, cursors = daemon.logs.read_merged(jobs.visible(caller), lines, before)
        return {"lines": [{"job_id": j.id, "name": j.name, "line": text} for j, text in chosen], "before": cursors}

    def logs_follow(connection, caller: Caller, job=None) -> dict:
        keys = None if job is None else {jobs.find(job, caller).id}
        daemon.events.subscribe(connection, "log_line", keys, _sees(caller))
        return {"following": True}

    def recovery_list(caller: Caller) -> list[dict]:
        return [_public(j) for j in jobs.list(caller, {model.INTERRUPTED})]

    def recovery_recover(caller: Caller, change: Change) -> list[dict]:
        return [_public(recovery.recover(j, change)) for j in jobs.list(caller, {model.INTERRUPTED})]

    def recovery_dismiss(caller: Caller, change: Change) -> list[dict]:
        return [_public(recovery.dismiss(j, change)) for j in jobs.list(caller, {model.INTERRUPTED})]

    def system_check() -> list[dict]:
        """The machine as bkmd sees it: the tools it will run, its folders, its disk."""
        from bkm import checks

        return checks.machine_checks(daemon.paths, settings["rsync_path"], settings["rclone_path"])

    def _masked(values: dict) -> dict:
        return {**values, "notify_urls": [mask_url(url) for url in values["notify_urls"]]}

    def settings_get(caller: Caller, key=None) -> Any:
        """Secrets in notify_urls are masked, except for whoever may change the settings when
        they ask for that key by name."""
        if key is None:
            return _masked(settings.all())
        if not isinstance(key, str) or key not in schema.SETTINGS:
            raise ValidationFailed({"key": schema.unknown_message(key)})
        value = settings[key]
        if key == "notify_urls" and caller.system and not caller.is_root:
            value = [mask_url(url) for url in value]
        return {"key": key, "value": value, "default": schema.DEFAULTS[key]}

    def metrics_read(caller: Caller) -> dict:
        from bkmd import metrics

        return {"text": metrics.text(jobs.visible(caller), daemon.started_at).decode()}

    async def notify_test(caller: Caller, job=None) -> list[dict]:
        """A test message to every URL that applies (the job's and notify_urls); each URL's result."""
        from bkmd.notify import send

        target = jobs.find(job, caller) if job is not None else None
        if target is None:
            caller.check_admin("notify_urls (the settings' notification URLs)")
        urls = runs.notifier.urls(target)
        if not urls:
            where = f"job {target.name!r} has no --notify URL and " if target else ""
            raise Conflict(f"{where}the setting notify_urls is empty: nothing to test", {"job": job})
        name = f"job {target.name}" if target else "bkmd"
        return await asyncio.to_thread(send, urls, "bkm: test notification", f"A test message from {name}.")

    def settings_set(caller: Caller, change: Change, key, value) -> dict:
        caller.check_admin("settings")
        if key == "metrics_listen" and isinstance(value, str) and value and value != daemon.metrics.where:
            from bkmd.metrics import bind_problem

            try:
                problem = bind_problem(schema.parse(key, value))
            except ValueError:
                problem = None  # settings.set says what is wrong with it
            if problem:
                raise ValidationFailed({key: problem})
        parsed = settings.set(key, value, change)
        return {"key": key, "value": [mask_url(u) for u in parsed] if key == "notify_urls" else parsed}

    def settings_reset(caller: Caller, change: Change, key=None) -> dict:
        caller.check_admin("settings")
        keys = settings.reset(key, change)
        return {"reset": keys, "settings": _masked(settings.all())}

    def settings_reload(caller: Caller) -> dict:
        caller.check_admin("settings")
        found = daemon.reload_settings()
        return {"reloaded": True, **found, "settings": _masked(settings.all())}

    registry.add("daemon.status", daemon_status)
    registry.add("daemon.shutdown", daemon_shutdown)
    registry.add("job.create", job_create)
    registry.add("job.list", job_list)
    registry.add("job.get", job_get)
    registry.add("job.update", job_update)
    registry.add("job.delete", job_delete)
    registry.add("job.start", job_start)
    registry.add("job.pause", job_pause)
    registry.add("job.dry_run", job_dry_run)
    registry.add("job.restore", job_restore)
    registry.add("job.restore_dry_run", job_restore_dry_run)
    registry.add("job.verify", job_verify)
    registry.add("job.snapshots", job_snapshots)
    registry.add("apply.plan", apply_plan)
    registry.add("apply.commit", apply_commit)
    registry.add("apply.export", apply_export)
    registry.add("notify.test", notify_test)
    registry.add("metrics.read", metrics_read)
    registry.add("schedule.list", schedule_list)
    registry.add("schedule.pause", schedule_pause)
    registry.add("schedule.resume", schedule_resume)
    registry.add("events.subscribe", events_subscribe)
    registry.add("logs.read", logs_read)
    registry.add("logs.follow", logs_follow)
    registry.add("recovery.list", recovery_list)
    registry.add("recovery.recover", recovery_recover)
    registry.add("recovery.dismiss", recovery_dismiss)
    registry.add("system.check", system_check)
    registry.add("settings.get", settings_get)
    registry.add("settings.set", settings_set)
    registry.add("settings.reset", settings_reset)
    registry.add("settings.reload", settings_reload)
    return registry
