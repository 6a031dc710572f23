"""The fast path in front of Flask (bot/api/webhook_ack.py): signed, well-formed deliveries
are answered without Flask, with what Flask's hooks give (the request counted and timed,
its correlation id, the delivery id on its log lines); everything else is Flask's, with
the body as it came."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from bot.app import create_app
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.telemetry import logs
from bot.webhooks.router import Event
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import INSTALLATION_ID, WEBHOOK_SECRET, with_github
from tests.helpers import kill_gpg_agent

CHECK_RUN = {"action": "completed", "installation": {"id": INSTALLATION_ID}, "check_run": {}}


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(with_github(settings))
    runtime.webhooks.notify = lambda: None  # type: ignore[method-assign]  # no background worker
    yield runtime
    runtime.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


@pytest.fixture
def app(rt: Runtime) -> Flask:
    app = create_app(rt.settings, rt)

    @rt.router.register("check_run", "completed")
    def handle(event: Event, runtime: Any) -> None:
        pass

    return app


def _headers(event: str, delivery: str, body: bytes, **extra: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body),
        "Content-Type": "application/json",
        **extra,
    }


def _flask_view_fails(app: Flask) -> None:
    def view() -> None:
        raise AssertionError("Flask's view answered")

    app.view_functions["webhooks.receive_github"] = view


def _counted(app: Flask, status: str) -> float:
    metrics = app.extensions["ritmo.metrics"]
    value = metrics.registry.get_sample_value(
        "ritmo_http_requests_total",
        {"method": "POST", "route": "/webhooks/github", "status": status, "kind": "webhook"},
    )
    return value or 0.0


def test_signed_deliveries_are_answered_before_flask(app: Flask, rt: Runtime) -> None:
    _flask_view_fails(app)
    client = app.test_client()
    body = json.dumps(CHECK_RUN).encode()
    queued = client.post("/webhooks/github", data=body, headers=_headers("check_run", "d-1", body))
    assert queued.status_code == 202
    assert queued.json == {"status": "queued", "delivery": "d-1"}
    assert rt.deliveries.get("d-1") is not None
    again = client.post("/webhooks/github", data=body, headers=_headers("check_run", "d-1", body))
    assert (again.status_code, again.json["status"]) == (200, "duplicate")
    ping = json.dumps({"zen": "Keep it logically awesome."}).encode()
    pong = client.post("/webhooks/github", data=ping, headers=_headers("ping", "d-2", ping))
    assert pong.status_code == 200
    # As Flask writes JSON: compact, a final newline.
    assert pong.get_data() == b'{"status":"pong","zen":"Keep it logically awesome."}\n'
    assert pong.headers["Content-Type"] == "application/json"


def test_it_keeps_what_flasks_hooks_give(
    app: Flask, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    body = json.dumps(CHECK_RUN).encode()
    seen: list[tuple[str | None, str | None]] = []

    def accept(delivery_id: str, event: str, payload: str) -> bool:
        seen.append((logs.correlation_id.get(), logs.delivery_id.get()))
        return True

    rt.deliveries.accept = accept  # type: ignore[method-assign]
    before = _counted(app, "202")
    given = client.post(
        "/webhooks/github",
        data=body,
        headers=_headers("check_run", "d-3", body, **{"X-Correlation-ID": "cid-42"}),
    )
    made = client.post("/webhooks/github", data=body, headers=_headers("check_run", "d-4", body))
    assert given.headers["X-Correlation-ID"] == "cid-42"
    assert len(made.headers["X-Correlation-ID"]) == 36  # a new UUID
    assert seen == [("cid-42", "d-3"), (made.headers["X-Correlation-ID"], "d-4")]
    assert _counted(app, "202") == before + 2
    assert logs.correlation_id.get() is None and logs.delivery_id.get() is None  # unbound


def test_what_it_does_not_take_is_flasks_with_the_body_intact(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    body = json.dumps(CHECK_RUN).encode()
    unsigned = client.post(
        "/webhooks/github",
        data=body,
        headers={**_headers("check_run", "d-5", body), "X-Hub-Signature-256": "sha256=00"},
    )
    assert unsigned.status_code == 401 and "X-Hub-Signature-256" in unsigned.json["error"]
    no_event = _headers("check_run", "d-6", body)
    del no_event["X-GitHub-Event"]
    missing = client.post("/webhooks/github", data=body, headers=no_event)
    assert missing.status_code == 400 and "X-GitHub-Event" in missing.json["error"]
    utf16 = json.dumps(CHECK_RUN).encode("utf-16")
    refused = client.post("/webhooks/github", data=utf16, headers=_headers("check_run", "d", utf16))
    assert refused.status_code == 400 and "body" in refused.json["error"]
    assert _counted(app, "401") == 1 and _counted(app, "400") == 2  # counted once, by Flask
    assert rt.deliveries.get("d-5") is None and rt.deliveries.get("d-6") is None
    assert client.get("/webhooks/github").status_code == 405


def test_a_failed_insert_is_a_json_500_and_nothing_is_queued(
    app: Flask, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(delivery_id: str, event: str, payload: str) -> bool:
        raise OSError("disk I/O error")

    rt.deliveries.accept = refuse  # type: ignore[method-assign]
    body = json.dumps(CHECK_RUN).encode()
    with caplog.at_level(logging.ERROR):
        failed = app.test_client().post(
            "/webhooks/github", data=body, headers=_headers("check_run", "d-7", body)
        )
    assert failed.status_code == 500  # GitHub marks it failed and can redeliver it
    assert failed.json == {"error": "internal error; the server log has the details"}
    assert "disk I/O error" not in failed.get_data(as_text=True)
    assert any(r.exc_info for r in caplog.records)
