"""Every authentic CD report gets a 2xx: 202 {"status": "ignored", "reason"} when Ritmo cannot
use it, counted by reason in /metrics. Neither engine retries a 4xx: notifications-engine
marks a oncePer notification sent even when the send failed, and notification-controller
retries connection errors, 429 and 5xx only."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from bot.deploy.intake import IGNORED_REASONS
from bot.runtime import Runtime
from tests.deploy.test_flux import SAMPLES as FLUX_SAMPLES
from tests.deploy.test_flux import SECRET as FLUX_SECRET
from tests.deploy.test_flux import _event as flux_event
from tests.deploy.test_rollback_flow import ARGOCD_TOKEN
from tests.deploy.test_rollback_flow import _report as argocd_report
from tests.helpers import artifact_body, bearer, remote_refs


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"flux_secret": FLUX_SECRET, "argocd_token": ARGOCD_TOKEN}}


def _flux(client: FlaskClient, body: bytes, secret: str = FLUX_SECRET) -> Any:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/flux", data=body, headers={
        "Content-Type": "application/json", "X-Signature": signature,
    })  # fmt: skip


def _ignored(client: FlaskClient) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").get_data(as_text=True)
    family = {f.name: f for f in text_string_to_metric_families(text)}["ritmo_cd_ignored"]
    return {
        (s.labels["source"], s.labels["reason"]): s.value
        for s in family.samples
        if s.name == "ritmo_cd_ignored_total"
    }


def test_authentic_reports_ritmo_cannot_use_are_202_ignored_and_counted(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version="3.0.0"),
                       headers=bearer(tokens["ci"]))  # fmt: skip
    assert resp.status_code == 201
    tip = remote_refs(remote)["refs/heads/main"]
    refs = remote_refs(remote)
    before = _ignored(client)
    # The closed set is there from the start, at 0, for both engines.
    assert set(before) == {(s, r) for s in ("argocd", "flux") for r in IGNORED_REASONS}
    assert set(before.values()) == {0.0}

    source = (FLUX_SAMPLES / "gitrepository-new-artifact.json").read_bytes()
    cases = [
        (_flux(client, source), "not-a-deployment"),
        # cert-manager, caught by an Alert for every Kustomization: not Ritmo's.
        (_flux(client, flux_event("kustomization-succeeded", "cert-manager", tip)), "unknown-app"),
        (_flux(client, flux_event("kustomization-succeeded", "web-dev", "f" * 40)),
         "unknown-revision"),
        # An OCI-sourced Kustomization: no git commit anywhere in the event.
        (_flux(client, (FLUX_SAMPLES / "kustomization-oci-succeeded.json").read_bytes()),
         "no-revision"),
        # A HelmRelease naming a chart version no artifact of web has.
        (_flux(client, (FLUX_SAMPLES / "helmrelease-upgrade-succeeded.json").read_bytes()
               .replace(b"web-production", b"web-dev")), "unknown-version"),
        (argocd_report(client, "on-deployed", "cert-manager", tip), "unknown-app"),
        (argocd_report(client, "on-deployed", "web-dev", "0" * 40), "unknown-revision"),
    ]  # fmt: skip
    for resp, reason in cases:
        assert resp.status_code == 202, resp.get_json()
        body = resp.get_json()
        assert body["status"] == "ignored" and body["reason"] == reason, body
        assert body["message"]  # says what to fix
        assert resp.headers["X-Correlation-ID"]

    # Bad credentials stay 401, and are not counted as ignored.
    forged = _flux(client, flux_event("kustomization-succeeded", "web-dev", tip), "x" * 24)
    assert forged.status_code == 401
    assert argocd_report(client, "on-deployed", "web-dev", tip, token="no").status_code == 401

    after = _ignored(client)
    assert after[("flux", "not-a-deployment")] == 1
    assert after[("flux", "unknown-app")] == 1
    assert after[("flux", "unknown-revision")] == 1
    assert after[("flux", "no-revision")] == 1
    assert after[("flux", "unknown-version")] == 1
    assert after[("argocd", "unknown-app")] == 1
    assert after[("argocd", "unknown-revision")] == 1
    assert sum(after.values()) == 7
    assert remote_refs(remote) == refs  # nothing written
    listed = client.get("/api/v1/deployments", headers=bearer(tokens["reader"]))
    assert listed.get_json()["items"] == []


def test_a_body_the_engine_never_sends_is_still_a_422(
    client: FlaskClient, runtime: Runtime
) -> None:
    """Authentic but malformed (a hand-edited template, say): the field and the fix, 422."""
    event: dict[str, Any] = json.loads((FLUX_SAMPLES / "kustomization-succeeded.json").read_text())
    event["severity"] = "warning"
    resp = _flux(client, json.dumps(event).encode())
    assert resp.status_code == 422
    assert resp.get_json()["fields"][0]["field"] == "severity"
