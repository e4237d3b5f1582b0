"""Judging a run's end, the engines' declared interface, and job fields declared once."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from bkmd import outcome, store
from bkmd.engines import Engine, Parser, engine, rclone, rsync
from bkmd.job import Job

from bkm import model


def job(**changes):
    values = {"source": "/src/", "dest": "/dst", "bwlimit": 0, "excludes": []}
    values.update(changes)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("tool", [rsync, rclone])
def test_a_stall_fails_whatever_the_exit_code(tool):
    verdict = outcome.judge(tool, 20, [], tool.Parser(), job(), outcome.STALL, stall_timeout=900)
    assert (verdict.status, verdict.error) == ("failed", "stalled")
    assert "900 s" in verdict.summary


@pytest.mark.parametrize("tool", [rsync, rclone])
def test_a_pause_is_paused_with_no_error(tool):
    verdict = outcome.judge(
        tool, 20, ["rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)"], tool.Parser(), job(), outcome.PAUSE
    )
    assert (verdict.status, verdict.error, verdict.warnings) == ("paused", None, [])


def test_a_tool_that_could_not_start_fails_with_the_reason():
    verdict = outcome.judge(rsync, None, [], rsync.Parser(), job(), spawn_error="cannot run rsync: No such file")
    assert (verdict.status, verdict.error) == ("failed", "cannot run rsync: No such file")


def test_no_exit_code_and_no_reason_is_a_failure_not_a_success():
    assert outcome.judge(rsync, None, [], rsync.Parser(), job()).status == "failed"


def test_the_engine_decides_the_rest():
    assert outcome.judge(rsync, 0, [], rsync.Parser(), job()).status == "completed"
    vanished = outcome.judge(rsync, 24, ['file has vanished: "/src/x"'], rsync.Parser(), job())
    assert vanished.status == "completed" and vanished.warnings
    gone = outcome.judge(
        rsync, 23, ['rsync: [sender] link_stat "/src" failed: No such file (2)'], rsync.Parser(), job()
    )
    assert gone.status == "failed" and "link_stat" in gone.error and "exit code 23" in gone.summary


@pytest.mark.parametrize("name", ["rsync", "rclone"])
def test_both_engines_implement_the_declared_interface(name):
    module = engine(name)
    assert isinstance(module, Engine)
    assert isinstance(module.Parser(), Parser)
    for member in ("argv", "environment", "outcome"):
        declared = list(inspect.signature(getattr(Engine, member)).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(module, member)).parameters) == declared
    assert module.Parser().total_exact is None  # before any output


def test_a_job_field_is_declared_once():
    """The job JSON, the stored record and the store's checks all follow model.JOB_FIELDS."""
    from helpers import job_record

    record = job_record()
    public = Job.from_record(record).public()
    assert [k for k in public if k in model.FIELD_NAMES] == list(model.FIELD_NAMES)
    assert set(public) == {
        "id",
        *model.FIELD_NAMES,
        "status",
        "created_at",
        "updated_at",
        "progress",
        "last_run",
        "owner",
        "waiting",
        "next_run_at",
        "schedule_paused_until",
        "retry_at",
        "last_success_at",
        "stale",
        "last_verify",
    }
    assert {k for k in store.JOB_FIELDS} == {"id", *model.FIELD_NAMES, "status", "created_at", "updated_at"}
    assert Job.from_record(record).source == "/s"
    with pytest.raises(AttributeError):
        Job.from_record(record).no_such_field  # noqa: B018
