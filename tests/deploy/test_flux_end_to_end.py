"""Flux end to end: the events kustomize-controller and helm-controller post, put through
notification-controller's path (tests/deploy/flux_forwarder.py: metadata clean-up, token
dropped, group prefixes stripped, the Alert's eventMetadata added, encoding/json bytes,
X-Signature), sent over HTTP to a live Ritmo; the ledger read back from the remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.deploy.records import LEDGER_BRANCH
from tests.deploy import flux_forwarder as nc
from tests.helpers import artifact_body, bearer, remote_refs, sample_policy, show

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "flux"
SECRET = "flux-hmac-key-e2e-0123456789abcdef"
ALERT_METADATA = {"cluster": "prod-eu-1"}  # an Alert's spec.eventMetadata
POLICY = sample_policy("any-app-dev-staging")


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"flux_secret": SECRET}}


def controller_event(sample: str, name: str, **metadata: str) -> dict[str, Any]:
    """The sample as its controller posts it, renamed, with `metadata` for the sample's."""
    event: dict[str, Any] = json.loads((SAMPLES / f"{sample}.json").read_text())
    event["involvedObject"]["name"] = name
    event["metadata"] = {**event["metadata"], **metadata}
    return nc.as_controller_sends(event, token="sha256:" + "9" * 64)


def send(base: str, posted: dict[str, Any], tamper: bool = False) -> requests.Response:
    forwarded, body, headers = nc.forward(posted, SECRET, ALERT_METADATA)
    assert "token" not in forwarded["metadata"]
    assert not any("/" in key for key in forwarded["metadata"])  # prefixes stripped
    if tamper:
        body = body.replace(b'"severity":"info"', b'"severity":"error"')
    return requests.post(f"{base}/webhooks/flux", data=body, headers=headers, timeout=60)


def register(base: str, token: str, version: str) -> str:
    resp = requests.post(f"{base}/api/v1/artifacts", json=artifact_body(version=version),
                         headers=bearer(token), timeout=60)  # fmt: skip
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@pytest.mark.parametrize("sample", sorted(p.stem for p in SAMPLES.glob("*.json")))
def test_the_forwarder_turns_each_controller_event_back_into_its_sample(sample: str) -> None:
    expected: dict[str, Any] = json.loads((SAMPLES / f"{sample}.json").read_text())
    posted = nc.as_controller_sends(expected, token="t")
    forwarded, body, headers = nc.forward(posted, SECRET)
    expected["metadata"] = {k.rpartition("/")[2]: v for k, v in expected["metadata"].items()}
    assert forwarded == expected
    assert json.loads(body) == expected
    assert body.startswith(b'{"involvedObject":{"kind":')  # encoding/json's field order
    assert headers["X-Signature"] == nc.sign(body, SECRET)


def test_go_json_escapes_as_encoding_json_does() -> None:
    event = json.loads((SAMPLES / "kustomization-progressing.json").read_text())
    event["message"] = "a <b> & c\u2028d\n"
    body = nc.go_json(event)
    assert b'"message":"a \\u003cb\\u003e \\u0026 c\\u2028d\\n"' in body


def test_kustomization_events_record_fail_and_recover(
    live_server: str, tokens: dict[str, str], remote: Path
) -> None:
    register(live_server, tokens["ci"], "5.0.0")
    tip = remote_refs(remote)["refs/heads/main"]
    commit = {"revision": f"main@sha1:{tip}"}

    progressing = send(live_server, controller_event("kustomization-progressing", "web-dev",
                                                     **commit))  # fmt: skip
    assert progressing.status_code == 201, progressing.text
    assert progressing.json()["status"] == "progressing"
    ok = send(live_server, controller_event("kustomization-succeeded", "web-dev", **commit))
    assert ok.status_code == 201 and ok.json()["status"] == "succeeded", ok.text
    assert ok.json()["version"] == "5.0.0" and ok.json()["revision"] == tip
    failed = send(live_server, controller_event("kustomization-health-failed", "web-dev",
                                                **commit))  # fmt: skip
    assert failed.status_code == 201 and failed.json()["status"] == "degraded"
    recovered = send(live_server, controller_event(
        "kustomization-succeeded", "web-dev", **commit))  # fmt: skip
    assert recovered.status_code == 201 and recovered.json()["status"] == "succeeded"

    # The ledger on the remote says so.
    record = show(remote, f"{LEDGER_BRANCH}:deployments/web/dev/{ok.json()['id']}.yaml")
    assert "status: succeeded" in record
    # A byte changed after signing: 401.
    tampered = send(live_server, controller_event("kustomization-succeeded", "web-dev", **commit),
                    tamper=True)  # fmt: skip
    assert tampered.status_code == 401
    # An OCI-sourced Kustomization names no commit: 202 ignored, not a 4xx Flux drops.
    oci = send(live_server, controller_event("kustomization-oci-succeeded", "web-dev"))
    assert oci.status_code == 202 and oci.json()["reason"] == "no-revision"


def test_helmrelease_events_are_recorded_by_chart_or_app_version(
    live_server: str, tokens: dict[str, str], remote: Path
) -> None:
    register(live_server, tokens["ci"], "5.0.0")
    first_pin = remote_refs(remote)["refs/heads/main"]
    versions = {"revision": "5.0.0", "app-version": "5.0.0"}
    up = send(live_server, controller_event("helmrelease-upgrade-succeeded", "web-dev",
                                            **versions))  # fmt: skip
    assert up.status_code == 201, up.text
    assert up.json()["status"] == "succeeded" and up.json()["version"] == "5.0.0"
    assert up.json()["revision"] == first_pin
    # The same event again (a re-send): once.
    again = send(live_server, controller_event("helmrelease-upgrade-succeeded", "web-dev",
                                               **versions))  # fmt: skip
    assert again.status_code == 200 and again.json()["duplicate"] is True

    # 5.1.0: the chart keeps its own version, the app version names the artifact.
    register(live_server, tokens["ci"], "5.1.0")
    second_pin = remote_refs(remote)["refs/heads/main"]
    failed = send(
        live_server,
        controller_event(
            "helmrelease-install-failed", "web-dev", revision="0.2.0", **{"app-version": "5.1.0"}
        ),
    )
    assert failed.status_code == 201, failed.text
    assert failed.json()["status"] == "failed" and failed.json()["version"] == "5.1.0"
    assert failed.json()["revision"] == second_pin
    # helm-controller's remediation reports the previous chart: history of the old pin.
    older = send(live_server, controller_event("helmrelease-upgrade-succeeded", "web-dev",
                                               **versions))  # fmt: skip
    assert older.status_code in (200, 201), older.text
    assert older.json()["version"] == "5.0.0"

    # A version Ritmo never recorded, or an app that is not Ritmo's: 202 ignored.
    unknown = send(
        live_server,
        controller_event(
            "helmrelease-upgrade-succeeded", "web-dev", revision="9.9.9", **{"app-version": "9.9.9"}
        ),
    )
    assert unknown.status_code == 202, unknown.text
    assert unknown.json()["reason"] == "unknown-version"
    podinfo = send(live_server, controller_event("helmrelease-oci-install-succeeded", "podinfo"))
    assert podinfo.status_code == 202 and podinfo.json()["reason"] == "unknown-app"
    # Registered, but never pinned in staging.
    staging = send(live_server, controller_event(
        "helmrelease-upgrade-succeeded", "web-staging", **versions))  # fmt: skip
    assert staging.status_code == 202 and staging.json()["reason"] == "unknown-version"

    listed = requests.get(f"{live_server}/api/v1/deployments?app=web&env=dev",
                          headers=bearer(tokens["reader"]), timeout=60)  # fmt: skip
    by_version = {d["version"]: d["status"] for d in listed.json()["items"]}
    assert by_version == {"5.0.0": "succeeded", "5.1.0": "failed"}


class TestAutomaticRollback:
    @pytest.fixture
    def remote_policy(self) -> str:
        return POLICY.replace(
            "{name: dev, auto_promote: true}",
            "{name: dev, auto_promote: true, rollback: {on_failure: automatic}}",
        )

    def test_the_version_rolled_back_to_is_a_new_deployment_of_its_new_pin(
        self, live_server: str, tokens: dict[str, str], remote: Path
    ) -> None:
        """The same chart version again after a rollback is not a re-send: the key holds
        the pin the version resolves to, not the version."""
        register(live_server, tokens["ci"], "6.0.0")
        versions = {"revision": "6.0.0", "app-version": "6.0.0"}
        first = send(live_server, controller_event("helmrelease-upgrade-succeeded", "web-dev",
                                                   **versions))  # fmt: skip
        assert first.status_code == 201, first.text
        register(live_server, tokens["ci"], "6.1.0")
        failed = send(live_server, controller_event(
            "helmrelease-install-failed", "web-dev", revision="6.1.0",
            **{"app-version": "6.1.0"}))  # fmt: skip
        assert failed.status_code == 201, failed.text
        assert failed.json()["rollback"]["restored_version"] == "6.0.0"
        rolled_back = remote_refs(remote)["refs/heads/main"]
        # Flux applies the rollback commit; helm-controller upgrades back to 6.0.0.
        back = send(live_server, controller_event("helmrelease-upgrade-succeeded", "web-dev",
                                                  **versions))  # fmt: skip
        assert back.status_code == 201, back.text
        assert back.json().get("duplicate") is None
        assert back.json()["revision"] == rolled_back
        assert back.json()["id"] != first.json()["id"]
        assert back.json()["status"] == "succeeded" and not back.json()["superseded"]
