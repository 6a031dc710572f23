"""Flux's notification-controller (generic-hmac) reporting to /webhooks/flux."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, remote_refs, show

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "flux"
SECRET = "flux-hmac-key-0123456789abcdef"

POLICY = """\
environments:
  - name: dev
    auto_promote: true
    rollback: {on_failure: automatic}
  - {name: staging}
promotion_rules:
  - {from: dev, to: staging}
apps:
  web: {}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"flux_secret": SECRET}}


def _event(sample: str, name: str, revision: str) -> bytes:
    event: dict[str, Any] = json.loads((SAMPLES / f"{sample}.json").read_text())
    event["involvedObject"]["name"] = name
    key = next(k for k in event["metadata"] if k.endswith("revision"))
    event["metadata"][key] = f"main@sha1:{revision}"
    return json.dumps(event).encode()


def _post(client: FlaskClient, body: bytes, secret: str = SECRET) -> Any:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/flux", data=body, headers={
        "Content-Type": "application/json", "X-Signature": signature,
    })  # fmt: skip


def test_flux_events_record_deployments_and_a_failed_health_check_rolls_back(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    for version in ("7.0.0", "7.1.0"):
        resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                           headers=bearer(tokens["ci"]))  # fmt: skip
        assert resp.status_code == 201
        tip = remote_refs(remote)["refs/heads/main"]
        sample = "kustomization-succeeded" if version == "7.0.0" else "kustomization-health-failed"
        resp = _post(client, _event(sample, "web-dev", tip))
        assert resp.status_code == 201, resp.get_json()
    failed = resp.get_json()
    assert failed["status"] == "degraded" and failed["version"] == "7.1.0"
    assert failed["rollback"]["restored_version"] == "7.0.0"
    assert 'newTag: "7.0.0"' in show(remote, "main:apps/web/overlays/dev/kustomization.yaml")

    # Flux sends the same event again: taken once.
    again = _post(client, _event("kustomization-health-failed", "web-dev", tip))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True


def test_a_bad_signature_or_a_foreign_kind_records_nothing(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    client.post("/api/v1/artifacts", json=artifact_body(version="8.0.0"),
                headers=bearer(tokens["ci"]))  # fmt: skip
    tip = remote_refs(remote)["refs/heads/main"]
    refs = remote_refs(remote)
    body = _event("kustomization-succeeded", "web-dev", tip)
    wrong = _post(client, body, secret="another-secret-0123456789")
    assert wrong.status_code == 401 and "X-Signature" in wrong.get_json()["error"]
    unsigned = client.post(
        "/webhooks/flux", data=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    changed = body.replace(b"ReconciliationSucceeded", b"ReconciliationFailed")
    tampered = client.post("/webhooks/flux", data=changed, headers={
        "Content-Type": "application/json", "X-Signature": signature,
    })  # fmt: skip
    assert tampered.status_code == 401
    source = json.loads((SAMPLES / "gitrepository-new-artifact.json").read_text())
    ignored = _post(client, json.dumps(source).encode())
    assert ignored.status_code == 202
    assert ignored.get_json()["status"] == "ignored"
    assert ignored.get_json()["reason"] == "not-a-deployment"
    # Authentic but about a commit Ritmo does not have: 202, Flux does not retry a 4xx.
    unknown = _post(client, _event("kustomization-succeeded", "web-dev", "f" * 40))
    assert unknown.status_code == 202 and unknown.get_json()["reason"] == "unknown-revision"
    assert remote_refs(remote) == refs
    assert _post(client, body).status_code == 201
    assert "refs/heads/ritmo/deployments" in remote_refs(remote)
