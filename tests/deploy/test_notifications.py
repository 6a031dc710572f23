"""The outbox hears every event of the loop, from the commits Ritmo pushed and from
deployments, and delivers them to a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer
from tests.notify.conftest import RecordingServer


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.close()


@pytest.fixture
def remote_policy(server: RecordingServer) -> str:
    return f"""\
environments:
  - name: dev
    auto_promote: true
    rollback: {{on_failure: automatic}}
  - {{name: staging}}
promotion_rules:
  - {{from: dev, to: staging}}
apps:
  web: {{}}
integrations:
  - on: [artifact_recorded, promoted, deployed, deployment_failed, rolled_back]
    apps: [web]
    webhook:
      url: "{server.url}/hooks"
      body:
        event: "${{EVENT}}"
        artifact_id: "${{ARTIFACT_ID}}"
        version: "${{VERSION}}"
        environment: "${{ENVIRONMENT}}"
        correlation_id: "${{CORRELATION_ID}}"
"""


def test_each_event_of_the_loop_is_delivered_once(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], server: RecordingServer
) -> None:
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    ids = {}
    for version, status in (("1.0.0", "succeeded"), ("1.1.0", "degraded")):
        resp = client.post(
            "/api/v1/artifacts",
            json=artifact_body(version=version),
            headers={**bearer(tokens["ci"]), "X-Correlation-ID": f"build-{version}"},
        )
        ids[version] = resp.get_json()["id"]
        body = {"artifact_id": ids[version], "environment": "dev", "status": status}
        assert client.post("/api/v1/deployments", json=body, headers=bearer(cd)).status_code == 201

    while runtime.outbox.deliver_due():
        pass
    seen = [(s.body["event"], s.body["version"], s.body["environment"]) for s in server.seen]
    assert seen == [
        ("artifact_recorded", "1.0.0", ""),
        ("promoted", "1.0.0", "dev"),
        ("deployed", "1.0.0", "dev"),
        ("artifact_recorded", "1.1.0", ""),
        ("promoted", "1.1.0", "dev"),
        ("deployment_failed", "1.1.0", "dev"),
        ("rolled_back", "1.0.0", "dev"),
    ]
    assert server.seen[0].body["correlation_id"] == "build-1.0.0"
    keys = {s.headers["Idempotency-Key"] for s in server.seen}
    assert len(keys) == len(server.seen)

    # The rollback's pin deploys: a new deployment of 1.0.0, announced once.
    body = {"artifact_id": ids["1.0.0"], "environment": "dev", "status": "succeeded"}
    for _ in range(2):
        assert client.post("/api/v1/deployments", json=body, headers=bearer(cd)).status_code in (
            200, 201,
        )  # fmt: skip
        runtime.outbox.deliver_due()
    assert len(server.seen) == 8
    assert server.seen[-1].body["event"] == "deployed"
    listed = client.get("/api/v1/outbox?status=delivered", headers=bearer(tokens["admin"]))
    assert listed.get_json()["total"] == 8
