"""POST /webhooks/github end to end: signatures, de-duplication, a durable queue, a fast
answer. Which headers and bodies are accepted is tested without I/O in
test_delivery_pure.py."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.webhooks.router import Event
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import INSTALLATION_ID, WEBHOOK_SECRET, with_github
from tests.helpers import kill_gpg_agent


@pytest.fixture
def github_settings(settings: Settings) -> Settings:
    return with_github(settings)


@pytest.fixture
def rt(github_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(github_settings)
    yield runtime
    runtime.close()
    kill_gpg_agent(github_settings.data_dir / "trusted-gnupg")


@pytest.fixture
def hook(github_settings: Settings, rt: Runtime) -> FlaskClient:
    return create_app(github_settings, rt).test_client()


def _post(
    client: FlaskClient,
    event: str,
    payload: Any,
    delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    secret: str = WEBHOOK_SECRET,
    raw: bytes | None = None,
    signature: str | None = None,
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature or signature_for(secret, body),
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/github", data=body, headers=headers)


CHECK_RUN = {"action": "completed", "installation": {"id": INSTALLATION_ID}, "check_run": {}}


class TestReceiver:
    """Answers: 401 unsigned, 400 malformed, 413 too big, 200 ping, 202 ignored or queued."""

    def test_unsigned_and_wrongly_signed(self, hook: FlaskClient, rt: Runtime) -> None:
        assert (
            _post(hook, "check_run", CHECK_RUN, signature="sha256=" + "0" * 64).status_code == 401
        )
        assert _post(hook, "check_run", CHECK_RUN, secret="not the secret").status_code == 401
        missing = hook.post("/webhooks/github", json=CHECK_RUN, headers={"X-GitHub-Event": "x"})
        assert missing.status_code == 401
        assert "X-Hub-Signature-256" in missing.json["error"]
        assert rt.deliveries.depth() == 0

    def test_ping(self, hook: FlaskClient) -> None:
        resp = _post(hook, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
        assert resp.status_code == 200
        assert resp.json["status"] == "pong"

    def test_ignored(self, hook: FlaskClient, rt: Runtime) -> None:
        resp = _post(hook, "star", {"action": "created"})
        assert resp.status_code == 202
        assert resp.json == {"status": "ignored", "event": "star", "action": "created"}
        assert rt.deliveries.depth() == 0

    def test_malformed(self, hook: FlaskClient) -> None:
        bad = _post(hook, "check_run", None, raw=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json["error"]
        listed = _post(hook, "check_run", None, raw=b"[1, 2]")
        assert listed.status_code == 400
        no_delivery = hook.post(
            "/webhooks/github",
            data=b"{}",
            headers={"X-GitHub-Event": "check_run", "X-Hub-Signature-256": signature_for(
                WEBHOOK_SECRET, b"{}")},
        )  # fmt: skip
        assert no_delivery.status_code == 400

    def test_too_large(self, hook: FlaskClient, github_settings: Settings) -> None:
        big = b'{"pad": "' + b"x" * github_settings.max_body_bytes + b'"}'
        assert _post(hook, "check_run", None, raw=big).status_code == 413

    def test_local_forge_has_no_github_webhooks(self, client: FlaskClient) -> None:
        assert _post(client, "ping", {}).status_code == 404


class TestQueue:
    """Acknowledged fast, handled once in the background, surviving a restart."""

    def test_fast_answer_then_handled_once(self, hook: FlaskClient, rt: Runtime) -> None:
        release = threading.Event()
        seen: list[str] = []

        @rt.router.register("check_run", "completed")
        def slow(event: Event, runtime: Any) -> None:
            release.wait(10)
            seen.append(event.delivery_id)

        started = time.monotonic()
        first = _post(hook, "check_run", CHECK_RUN, delivery="d-1")
        assert first.status_code == 202 and first.json["status"] == "queued"
        assert time.monotonic() - started < 1.0  # the handler is still waiting
        first.close()  # sent: a WSGI server closes each response once written (PEP 3333)
        again = _post(hook, "check_run", CHECK_RUN, delivery="d-1")
        assert again.status_code == 200 and again.json["status"] == "duplicate"
        release.set()
        deadline = time.monotonic() + 10
        while rt.deliveries.get("d-1")["status"] != "done" and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.05)
        assert seen == ["d-1"]
        assert rt.deliveries.get("d-1")["status"] == "done"  # type: ignore[index]

    def test_failures_retry_then_give_up(self, hook: FlaskClient, rt: Runtime) -> None:
        calls: list[int] = []

        @rt.router.register("check_run")
        def broken(event: Event, runtime: Any) -> None:
            calls.append(1)
            raise RuntimeError("GitHub said 502")

        ticks = itertools.count(start=1_000_000, step=1_000)
        rt.webhooks._clock = lambda: float(next(ticks))  # each retry's backoff has passed
        rt.deliveries.accept("d-2", "check_run", json.dumps(CHECK_RUN))
        for _ in range(rt.deliveries.max_attempts + 2):
            rt.webhooks.drain()
        row = rt.deliveries.get("d-2")
        assert row is not None and row["status"] == "failed"
        assert row["attempts"] == rt.deliveries.max_attempts
        assert "502" in row["last_error"]
        assert len(calls) == rt.deliveries.max_attempts

    def test_survives_a_restart(
        self, hook: FlaskClient, rt: Runtime, github_settings: Settings, tmp_path: Path
    ) -> None:
        @rt.router.register("check_run")
        def never(event: Event, runtime: Any) -> None:  # registered: the receiver queues it
            raise AssertionError("the first process died before handling it")

        rt.webhooks.notify = lambda: None  # type: ignore[method-assign]  # dies before handling
        assert _post(hook, "check_run", CHECK_RUN, delivery="d-3").status_code == 202
        rt.close()

        restarted = build_runtime(github_settings)
        handled: list[str] = []

        @restarted.router.register("check_run")
        def handle(event: Event, runtime: Any) -> None:
            handled.append(event.delivery_id)

        try:
            restarted.webhooks.drain()
            restarted.webhooks.drain()
            assert handled == ["d-3"]
            again = create_app(github_settings, restarted).test_client()
            assert _post(again, "check_run", CHECK_RUN, delivery="d-3").json["status"] == (
                "duplicate"
            )
        finally:
            restarted.close()


class TestInstallation:
    """Deliveries for another installation of the app are not this Ritmo's to act on."""

    def test_other_installation_ignored(self, hook: FlaskClient, rt: Runtime) -> None:
        seen: list[str] = []

        @rt.router.register("check_run")
        def record(event: Event, runtime: Any) -> None:
            seen.append(event.delivery_id)

        other = {**CHECK_RUN, "installation": {"id": INSTALLATION_ID + 1}}
        resp = _post(hook, "check_run", other, delivery="d-other")
        assert resp.status_code == 202
        assert resp.json == {"status": "ignored", "installation": INSTALLATION_ID + 1}
        assert rt.deliveries.get("d-other") is None
