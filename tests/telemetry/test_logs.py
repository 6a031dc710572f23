"""JSON log lines with the correlation and delivery ids; no secret in any line or error body."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.app import create_app_from_env
from bot.config import Settings
from bot.runtime import Runtime
from bot.store.deliveries import DeliveryQueue
from bot.telemetry import logs
from bot.webhooks.router import Event, Router
from bot.webhooks.worker import DeliveryWorker
from tests.forge.github_sandbox import PRIVATE_KEY
from tests.helpers import artifact_body, bearer, git

ARGOCD_TOKEN = "argocd-" + secrets.token_hex(16)
FLUX_SECRET = "flux-" + secrets.token_hex(16)
MANIFESTS_TOKEN = "ghs_" + secrets.token_hex(18)
HOOK_SECRET = "hook-" + secrets.token_hex(16)
KEY_BODY = [line for line in PRIVATE_KEY.splitlines() if "-----" not in line]


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Ritmo's handler on the root logger, writing JSON lines into a buffer."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = logs.configure_logging("json", logging.INFO, stream)
    yield Captured(stream)
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "manifests": {"token": MANIFESTS_TOKEN},
        "cd": {"argocd_token": ARGOCD_TOKEN, "flux_secret": FLUX_SECRET},
        "forge": {"github": {"webhook_secret": HOOK_SECRET, "private_key": PRIVATE_KEY}},
    }


def _assert_clean(text: str, *extra: str) -> None:
    for secret in (ARGOCD_TOKEN, FLUX_SECRET, MANIFESTS_TOKEN, HOOK_SECRET, *KEY_BODY, *extra):
        assert secret not in text


def test_lines_are_json_with_the_correlation_id(
    app: Flask, client: FlaskClient, tokens: dict[str, str], remote: Path, captured: Captured
) -> None:
    said = logging.getLogger("bot.test")

    def shout() -> str:
        said.info("handling %s", "it")
        return "ok"

    app.add_url_rule("/_shout", "shout", shout)
    assert client.get("/_shout", headers={"X-Correlation-ID": "build-142"}).status_code == 200
    said.info("outside a request")
    generated = client.get("/_shout")
    everything = captured.lines()
    # Each request also gets its access line (route, status, duration), with the same id.
    access = [line for line in everything if line["logger"] == "ritmo.access"]
    assert [(a["route"], a["status"], a["correlation_id"]) for a in access] == [
        ("/_shout", 200, "build-142"),
        ("/_shout", 200, generated.headers["X-Correlation-ID"]),
    ]
    lines = [line for line in everything if line["logger"] != "ritmo.access"]
    assert len(lines) == 3
    first, outside, second = lines
    assert first["correlation_id"] == "build-142"
    assert (first["level"], first["logger"]) == ("INFO", "bot.test")
    assert first["message"] == "handling it"
    assert "time" in first and "delivery_id" not in first
    assert "correlation_id" not in outside
    assert second["correlation_id"] == generated.headers["X-Correlation-ID"]

    # Without the header, the generated id is the one in the commit trailers too.
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert resp.status_code == 201
    cid = resp.headers["X-Correlation-ID"]
    message = git(remote, "log", "-1", "--format=%B", resp.json["commit"])
    assert f"Ritmo-Correlation-Id: {cid}" in message


def test_the_webhook_worker_logs_the_delivery_id(runtime: Runtime, captured: Captured) -> None:
    router = Router()

    def fail(event: Event, _runtime: Any) -> None:
        raise RuntimeError(f"GitHub said no to {MANIFESTS_TOKEN}")

    router.register("push")(fail)
    queue = DeliveryQueue(runtime.index.engine)
    assert queue.accept("delivery-77", "push", "{}")
    assert DeliveryWorker(queue, router, lambda: runtime).drain() == 1
    (line,) = [x for x in captured.lines() if x["logger"] == "bot.webhooks.worker"]
    assert line["delivery_id"] == "delivery-77"
    assert "RuntimeError: GitHub said no to [REDACTED]" in line["exc_info"]
    _assert_clean(captured.text())


def test_no_secret_in_logs_or_error_bodies(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    captured: Captured,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad_token = "ritmo_" + secrets.token_urlsafe(32)
    bodies: list[str] = []

    def send(path: str, **kwargs: Any) -> int:
        resp = client.post(path, **kwargs)
        bodies.append(resp.get_data(as_text=True))
        return resp.status_code

    # A token Ritmo never issued, in the header and in the body.
    assert send("/api/v1/artifacts", json={"token": bad_token}, headers=bearer(bad_token)) == 401
    # CD webhooks with the wrong credential; the right one travels in the body.
    assert send("/webhooks/argocd", json={"app": ARGOCD_TOKEN},
                headers={"X-Ritmo-Token": "wrong-" + ARGOCD_TOKEN}) == 401  # fmt: skip
    assert send("/webhooks/flux", data=FLUX_SECRET, content_type="application/json",
                headers={"X-Signature": "sha256=" + "0" * 64}) == 401  # fmt: skip
    # A refusal that echoes part of the input.
    assert send("/api/v1/artifacts", data=f"{{{HOOK_SECRET}", content_type="application/json",
                headers=bearer(tokens["ci"])) in (400, 422)  # fmt: skip

    # An unexpected error whose message carries secrets: logged (masked), never answered.
    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(
            f"push to https://x-access-token:{MANIFESTS_TOKEN}@github.com/acme/m.git failed; "
            f"Authorization: Bearer {tokens['ci']}; key {PRIVATE_KEY}"
        )

    monkeypatch.setattr(runtime.registry, "register", explode)
    assert send("/api/v1/artifacts", json=artifact_body(version="5.0.0"),
                headers=bearer(tokens["ci"])) == 500  # fmt: skip
    logging.getLogger("bot.test").warning(
        "config says %s / %s / %s", HOOK_SECRET, FLUX_SECRET, bad_token
    )

    lines = captured.lines()
    (unhandled,) = [x for x in lines if x["message"] == "unhandled error"]
    assert "RuntimeError" in unhandled["exc_info"] and "[REDACTED" in unhandled["exc_info"]
    for text in [captured.text(), *bodies]:
        _assert_clean(text, bad_token, tokens["ci"], "PRIVATE KEY-----")
    assert "internal error" in bodies[-1]


def test_a_config_error_about_the_key_file_shows_no_key(
    settings: Settings,
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unusable key file is named, its content never shown (stderr and the log)."""
    pem = tmp_path / "app.pem"
    # A PEM block that is no RSA key: Ritmo reads it, refuses it, and says which file.
    broken = PRIVATE_KEY.replace("RSA PRIVATE KEY", "EC PRIVATE KEY")
    pem.write_text(broken)
    environ = {
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": str(remote),
        "RITMO_SIGNING__GNUPGHOME": str(settings.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
        "RITMO_FORGE__KIND": "github",
        "RITMO_FORGE__GITHUB__APP_ID": "4242",
        "RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE": str(pem),
        "RITMO_FORGE__GITHUB__INSTALLATION_ID": "77",
        "RITMO_FORGE__GITHUB__REPOSITORY": "acme/manifests",
        "RITMO_FORGE__GITHUB__WEBHOOK_SECRET": HOOK_SECRET,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RITMO_CONFIG", raising=False)
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        logging.getLogger("bot.test").error("the key: %s", broken)
        with pytest.raises(SystemExit) as exited:
            create_app_from_env()
        logging.getLogger("bot.test").error("the key again: %s", broken)
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "ritmo: setting forge.github.private_key_file" in err
    assert "is not an unencrypted PEM RSA private key" in err
    assert "[REDACTED PRIVATE KEY]" in err
    _assert_clean(err, "PRIVATE KEY-----", HOOK_SECRET)


def test_redact_masks_the_known_shapes() -> None:
    logs.add_secrets(["configured-secret-value", "short"])
    text = logs.redact(
        "a ritmo_abcDEF123_-xyz b Bearer abc.def-123456 c ghp_" + "a" * 36
        + " d https://user:pa55word@host/x e token=0123456789abcdef"
        + " f configured-secret-value g short"
    )  # fmt: skip
    assert text == (
        "a ritmo_[REDACTED] b Bearer [REDACTED] c [REDACTED] d https://[REDACTED]@host/x"
        " e token=[REDACTED] f [REDACTED] g short"
    )
