"""Acknowledging a delivery is: check the HMAC, insert one row, answer. Nothing else runs
before the answer is sent: no handler (so no git, no GitHub call), no other SQL; the
worker starts once the server has closed the answer, and holds back while a burst of
deliveries is being answered (for a bounded time)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import EnvironBuilder

from bot.app import create_app
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.store.deliveries import DeliveryQueue
from bot.store.schema import make_engine
from bot.webhooks.router import Event, Router
from bot.webhooks.verify import signature_for
from bot.webhooks.worker import DeliveryWorker
from tests.forge.github_sandbox import INSTALLATION_ID, WEBHOOK_SECRET, with_github
from tests.helpers import kill_gpg_agent

CHECK_RUN = {"action": "completed", "installation": {"id": INSTALLATION_ID}, "check_run": {}}


@pytest.fixture
def github_settings(settings: Settings) -> Settings:
    return with_github(settings)


@pytest.fixture
def rt(github_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(github_settings)  # its delivery worker is the real one
    yield runtime
    runtime.close()
    kill_gpg_agent(github_settings.data_dir / "trusted-gnupg")


@pytest.fixture
def app(github_settings: Settings, rt: Runtime) -> Flask:
    return create_app(github_settings, rt)


def _environ(delivery: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    return EnvironBuilder(
        path="/webhooks/github",
        method="POST",
        data=body,
        headers={
            "X-GitHub-Event": "check_run",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body),
            "Content-Type": "application/json",
        },
    ).get_environ()


def test_nothing_but_the_insert_runs_before_the_answer_is_sent(app: Flask, rt: Runtime) -> None:
    handled = threading.Event()

    @rt.router.register("check_run", "completed")
    def handle(event: Event, runtime: Any) -> None:  # where git and GitHub calls happen
        handled.set()

    statements: list[str] = []

    @sa.event.listens_for(rt.index.engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    status: list[str] = []
    # As a WSGI server does: call the app, write the body, and only then close it.
    answer = app(_environ("d-ack", CHECK_RUN), lambda s, _h, _e=None: status.append(s))
    body = b"".join(answer)
    assert status == ["202 ACCEPTED"] and json.loads(body)["status"] == "queued"
    assert not handled.wait(0.5)  # not woken yet: the answer may still be on its way
    sent = list(statements)
    writes = [s for s in sent if not s.startswith(("SELECT", "PRAGMA", "BEGIN"))]
    assert len(writes) == 1 and writes[0].startswith("INSERT INTO webhook_deliveries ")
    reads = [s for s in sent if s.startswith("SELECT")]
    assert all(" FROM webhook_deliveries" in s for s in reads), reads
    assert not [s for s in reads if "status" in s]  # nobody looked for work to take
    assert len(sent) <= 6, sent  # the insert's own transaction, nothing more

    answer.close()  # type: ignore[attr-defined]  # sent
    assert handled.wait(10)  # the worker was woken by the close


def test_a_delivery_is_answered_only_once_committed(app: Flask, rt: Runtime) -> None:
    def refuse(_conn: Any) -> None:
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    @rt.router.register("check_run", "completed")
    def handle(event: Event, runtime: Any) -> None:
        pass

    client = app.test_client()
    sa.event.listen(rt.index.engine, "commit", refuse)
    try:
        failed = client.post("/webhooks/github", **_request("d-lost"))
    finally:
        sa.event.remove(rt.index.engine, "commit", refuse)
    assert failed.status_code == 500  # GitHub marks it failed and can redeliver it
    assert rt.deliveries.get("d-lost") is None
    again = client.post("/webhooks/github", **_request("d-lost"))
    assert again.status_code == 202 and rt.deliveries.get("d-lost") is not None


def _request(delivery: str) -> dict[str, Any]:
    body = json.dumps(CHECK_RUN).encode()
    return {
        "data": body,
        "headers": {
            "X-GitHub-Event": "check_run",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body),
            "Content-Type": "application/json",
        },
    }


def _worker_with(
    tmp_path: Path, settle: float, settle_at_most: float
) -> tuple[DeliveryWorker, list[float]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.sqlite3'}")
    queue = DeliveryQueue(engine)
    router = Router()
    handled_at: list[float] = []

    @router.register("check_run")
    def handle(event: Event, runtime: Any) -> None:
        handled_at.append(time.monotonic())

    assert queue.accept("d-burst", "check_run", json.dumps(CHECK_RUN))
    return DeliveryWorker(queue, router, lambda: None, settle=settle,
                          settle_at_most=settle_at_most), handled_at  # fmt: skip


def _burst(worker: DeliveryWorker, seconds: float) -> float:
    """Signed deliveries every 50 ms for `seconds`; returns when the last one came."""
    worker.notify()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worker.arriving()
        time.sleep(0.05)
    return time.monotonic()


def test_the_worker_holds_back_while_a_burst_is_answered(tmp_path: Path) -> None:
    worker, handled_at = _worker_with(tmp_path, settle=0.2, settle_at_most=5.0)
    burst_ended = _burst(worker, 0.8)
    deadline = time.monotonic() + 10
    while not handled_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handled_at and handled_at[0] > burst_ended  # only once the burst was over


def test_the_worker_holds_back_for_a_bounded_time(tmp_path: Path) -> None:
    worker, handled_at = _worker_with(tmp_path, settle=0.2, settle_at_most=0.5)
    burst_ended = _burst(worker, 3.0)
    assert handled_at and handled_at[0] < burst_ended  # a steady stream does not starve it
