"""What a CD report changes: de-duplication on (source, cluster or instance, namespace, name,
revision, outcome), recovery on the same revision, and a late `progressing` that never undoes
an outcome. Sent as Flux events to /webhooks/flux, the ledger read back from the remote."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.deploy.records import LEDGER_BRANCH, Observation, Placement, observe
from bot.runtime import Runtime
from tests.deploy.test_flux import SAMPLES, SECRET
from tests.helpers import artifact_body, bearer, remote_refs, sample_policy

LEDGER = f"refs/heads/{LEDGER_BRANCH}"
POLICY = sample_policy("any-app-dev-staging")


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"flux_secret": SECRET}}


def _event(
    sample: str,
    revision: str,
    *,
    namespace: str = "flux-system",
    uid: str = "2f6b0c51-9a3e-4d7f-b1c2-5e8a9d0f1b23",
    message: str | None = None,
) -> bytes:
    event: dict[str, Any] = json.loads((SAMPLES / f"{sample}.json").read_text())
    event["involvedObject"].update(name="web-dev", namespace=namespace, uid=uid)
    key = next(k for k in event["metadata"] if k.endswith("revision"))
    event["metadata"][key] = f"main@sha1:{revision}"
    if message is not None:
        event["message"] = message
    return json.dumps(event).encode()


def _post(client: FlaskClient, body: bytes) -> Any:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/flux", data=body, headers={
        "Content-Type": "application/json", "X-Signature": signature,
    })  # fmt: skip


def _status(client: FlaskClient, token: str) -> str:
    listed = client.get("/api/v1/deployments?app=web&env=dev", headers=bearer(token))
    items = listed.get_json()["items"]
    assert len(items) == 1, items
    return str(items[0]["status"])


@pytest.fixture
def tip(client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path) -> str:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version="4.0.0"),
                       headers=bearer(tokens["ci"]))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return remote_refs(remote)["refs/heads/main"]


def test_recovery_on_the_same_revision_updates_the_deployment_and_back(
    client: FlaskClient, tokens: dict[str, str], remote: Path, tip: str
) -> None:
    reader = tokens["reader"]
    ok = _post(client, _event("kustomization-succeeded", tip, message="finished in 2.1s"))
    assert ok.status_code == 201 and ok.get_json()["status"] == "succeeded"
    bad = _post(client, _event("kustomization-health-failed", tip))
    assert bad.status_code == 201 and bad.get_json()["status"] == "degraded"
    # The health check passes on the next interval: same revision, same reason as the
    # first report, another duration in the message. It was answered "200 duplicate".
    again = _post(client, _event("kustomization-succeeded", tip, message="finished in 3.4s"))
    assert again.status_code == 201, again.get_json()
    assert again.get_json().get("duplicate") is None
    assert _status(client, reader) == "succeeded"
    # And back: degraded again, with the very body of the first failure.
    worse = _post(client, _event("kustomization-health-failed", tip))
    assert worse.status_code == 201 and worse.get_json()["status"] == "degraded"
    assert _status(client, reader) == "degraded"

    # A late progressing is history: it never undoes the outcome.
    late = _post(client, _event("kustomization-progressing", tip))
    assert late.status_code in (200, 201) and late.get_json()["status"] == "degraded"
    assert _status(client, reader) == "degraded"
    # The same outcome again, as Flux re-sends it on every retry: one commit, not more.
    refs = remote_refs(remote)
    resent = _post(client, _event("kustomization-health-failed", tip))
    assert resent.status_code == 200 and resent.get_json()["duplicate"] is True
    assert remote_refs(remote)[LEDGER] == refs[LEDGER]
    history = [h["status"] for h in resent.get_json()["history"]]
    assert history == ["succeeded", "degraded", "succeeded", "degraded", "progressing"]


def test_succeeded_again_on_every_interval_writes_nothing(
    client: FlaskClient, remote: Path, tip: str
) -> None:
    first = _post(client, _event("kustomization-succeeded", tip, message="finished in 2.1s"))
    assert first.status_code == 201
    ledger = remote_refs(remote)[LEDGER]
    for seconds in ("1.9", "2.4", "2.0"):
        body = _event("kustomization-succeeded", tip, message=f"finished in {seconds}s")
        resp = _post(client, body)
        assert resp.status_code == 200 and resp.get_json()["duplicate"] is True
    assert remote_refs(remote)[LEDGER] == ledger


@pytest.mark.parametrize(
    "elsewhere",
    [{"namespace": "team-a"}, {"uid": "8c1d2e3f-0000-4a4b-8c8d-9e0f1a2b3c4d"}],
    ids=["another-namespace", "another-cluster"],
)
def test_the_same_name_in_another_namespace_or_cluster_is_not_a_duplicate(
    client: FlaskClient, tokens: dict[str, str], tip: str, elsewhere: dict[str, str]
) -> None:
    assert _post(client, _event("kustomization-health-failed", tip)).status_code == 201
    assert _post(client, _event("kustomization-succeeded", tip)).status_code == 201
    assert _status(client, tokens["reader"]) == "succeeded"
    # web-dev elsewhere fails its health check at the same revision: news, not a copy of
    # the first report (which had the same name, revision and reason).
    other = _post(client, _event("kustomization-health-failed", tip, **elsewhere))
    assert other.status_code == 201, other.get_json()
    assert other.get_json().get("duplicate") is None
    assert _status(client, tokens["reader"]) == "degraded"


def _seen(status: str, revision: str, **extra: Any) -> Observation:
    return Observation(status=status, source="flux", trigger="t", revision=revision,  # type: ignore[arg-type]
                       at="2026-12-03T10:00:00Z", **extra)  # fmt: skip


def test_observe_takes_every_change_of_outcome() -> None:
    place = Placement("web", "dev", "art-1", "1.0.0", "p" * 40, "r" * 40, "apps/web/x.yaml")
    record = observe(None, place, _seen("degraded", "r1"))
    assert record is not None
    for status in ("succeeded", "degraded", "succeeded"):
        updated = observe(record, place, _seen(status, "r1"))
        assert updated is not None and updated.status == status
        record = updated
    assert observe(record, place, _seen("succeeded", "r1")) is None  # the same outcome
    late = observe(record, place, _seen("progressing", "r1"))
    assert late is not None and late.status == "succeeded"
    # A new link is news even with the same outcome.
    linked = observe(record, place, _seen("succeeded", "r1", log_url="https://ci.example/1"))
    assert linked is not None and linked.log_url == "https://ci.example/1"
