"""The approval-timeout job: APScheduler runs `expire_due` every interval."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient

from bot.config import ConfigError, load_settings
from bot.runtime import Runtime
from bot.scheduler import JOB_ID, expire_due, follow_branch, start_scheduler, stop_scheduler
from bot.store.leader import LeaderLock
from bot.store.schema import make_engine
from tests.helpers import artifact_body, bearer
from tests.promotions.test_requests import POLICY


@pytest.fixture
def remote_policy() -> str:
    return POLICY  # staging -> production needs two approvers, within 7 days


def _open_request(client: FlaskClient, tokens: dict[str, str]) -> dict[str, str]:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(tokens["ci"])
    )
    assert resp.status_code == 201, resp.json
    opened = client.post(
        f"/api/v1/artifacts/{resp.json['id']}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(tokens["promoter"]),
    )
    assert opened.status_code == 202, opened.json
    return dict(opened.json["request"])


def test_job_expires_an_overdue_request(
    client: FlaskClient, tokens: dict[str, str], runtime: Runtime
) -> None:
    req = _open_request(client, tokens)
    opened = datetime.strptime(req["opened_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    runtime.requests._clock = lambda: opened + timedelta(days=7, seconds=1)

    scheduler = start_scheduler(runtime, interval_seconds=1)
    try:
        (job,) = scheduler.get_jobs()
        assert job.id == JOB_ID
        assert job.trigger.interval == timedelta(seconds=1)
        assert job.coalesce is True
        assert job.max_instances == 1
        deadline = time.monotonic() + 10
        status = "pending"
        while time.monotonic() < deadline:
            row = runtime.requests_index.get(req["id"])
            assert row is not None
            status = row.status
            if status == "expired":
                break
            time.sleep(0.1)
        assert status == "expired"
    finally:
        stop_scheduler(scheduler)
    assert not scheduler.running
    stop_scheduler(scheduler)  # a second stop (as at exit) is harmless

    shown = client.get(f"/api/v1/promotions/{req['id']}", headers=bearer(tokens["reader"]))
    assert shown.json["status"] == "expired"
    assert "expired" in shown.json["reason"]


def test_interval_from_settings(runtime: Runtime) -> None:
    scheduler = start_scheduler(runtime, runtime.settings.scheduler_interval)
    try:
        assert runtime.settings.scheduler_interval == 300
        (job,) = scheduler.get_jobs()
        assert job.trigger.interval == timedelta(seconds=300)
    finally:
        stop_scheduler(scheduler)


def test_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RITMO_SCHEDULER_INTERVAL", "5")
    assert load_settings(None).scheduler_interval == 5
    with pytest.raises(ConfigError, match="scheduler_interval"):
        load_settings(None, scheduler_interval=0)


def test_a_failing_run_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[str]:
        raise RuntimeError("index is gone")

    runtime = SimpleNamespace(requests=SimpleNamespace(expire_due=broken))
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        assert expire_due(runtime) == []  # type: ignore[arg-type]
    assert "approval-timeout job failed" in caplog.text
    assert "index is gone" in caplog.text


def test_a_remote_that_cannot_be_fetched_is_logged_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable() -> str:
        raise OSError("git fetch failed: connection refused")

    runtime = SimpleNamespace(writer=SimpleNamespace(sync=unreachable))
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        follow_branch(runtime)  # type: ignore[arg-type]
    assert "following the default branch failed" in caplog.text
    assert "connection refused" in caplog.text


# A process that takes the SQLite leader lock, says so, and waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from bot.store.schema import make_engine
from bot.store.leader import LeaderLock
lock = LeaderLock(make_engine("sqlite://"), Path(sys.argv[1]))
print("leader" if lock.is_leader() else "follower", flush=True)
time.sleep(600)
"""


def test_on_sqlite_one_worker_leads_and_the_lock_moves_when_it_dies(tmp_path: Path) -> None:
    """gunicorn workers on one SQLite file: one runs the scheduled jobs (a file lock);
    when its process dies the kernel drops the lock and another worker takes it."""
    lock_file = tmp_path / "scheduler.lock"
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)],
                          stdout=subprocess.PIPE, text=True, env=env) as holder:  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "leader"
            mine, other = LeaderLock(engine, lock_file), LeaderLock(engine, lock_file)
            assert mine.is_leader() is False and mine.held is False
            holder.kill()
            holder.wait(timeout=30)
            assert mine.is_leader() is True and mine.held is True
            assert mine.is_leader() is True  # it keeps leading
            assert other.is_leader() is False  # a second worker in this process too
            mine.release()
            assert other.is_leader() is True
            other.release()
            assert LeaderLock(engine).is_leader() is True  # no lock file: one process leads
        finally:
            holder.kill()
            engine.dispose()
