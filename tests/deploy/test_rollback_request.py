"""A manual rollback where policy wants approval: a request, judged by the rule into the
environment, whose merge is a signed rollback commit (and a hold)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.manifests.writer import Unchanged
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, remote_refs, show, trailers, verify_commit

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - name: production
    rollback: {on_failure: manual, requires_approval: true}
promotion_rules:
  - from: dev
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}]
apps:
  web: {}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


class _Nothing:
    def plan(self, read: Any) -> Unchanged:
        return Unchanged()


def _pinned(remote: Path) -> str:
    text = show(remote, "main:apps/web/overlays/production/kustomization.yaml")
    return text.split("newTag:")[1].split()[0].strip("\"'")


def _approve(client: FlaskClient, token: str, request_id: str) -> Any:
    return client.post(f"/api/v1/promotions/{request_id}/approvals", json={},
                       headers=bearer(token))  # fmt: skip


def test_a_rollback_request_merges_as_a_rollback(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    signing_key: tuple[Path, str],
) -> None:
    ops = runtime.tokens.create("olga", [Scope.PROMOTIONS_APPROVE], groups=["ops-team"])
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    ids = []
    for version, status in (("1.0.0", "succeeded"), ("1.1.0", "degraded")):
        art = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                          headers=bearer(tokens["ci"])).get_json()["id"]  # fmt: skip
        ids.append(art)
        opened = client.post(f"/api/v1/artifacts/{art}/promote",
                             json={"from": "dev", "to": "production"},
                             headers=bearer(tokens["promoter"]))  # fmt: skip
        assert opened.status_code == 202, opened.get_json()
        assert _approve(client, ops, opened.get_json()["request"]["id"]).status_code == 201
        assert _pinned(remote) == version
        body = {"artifact_id": art, "environment": "production", "status": status}
        assert client.post("/api/v1/deployments", json=body, headers=bearer(cd)).status_code == 201

    failed = client.get("/api/v1/deployments?status=degraded", headers=bearer(cd)).get_json()
    dep = failed["items"][0]
    assert "rollback" not in dep and not dep.get("rolled_back_by")  # manual in production
    asked = client.post(f"/api/v1/deployments/{dep['id']}/rollback", json={"reason": "500s"},
                        headers=bearer(tokens["promoter"]))  # fmt: skip
    assert asked.status_code == 202, asked.get_json()
    request = asked.get_json()["request"]
    assert (request["version"], request["to"], request["status"]) == ("1.0.0", "production",
                                                                        "pending")  # fmt: skip
    assert _pinned(remote) == "1.1.0"  # nothing changes before the approval
    assert not runtime.index.held(ids[1], "production")

    merged = _approve(client, ops, request["id"])
    assert merged.status_code == 201, merged.get_json()
    assert _pinned(remote) == "1.0.0"
    said = trailers(remote, "main")
    assert said["Ritmo-Rollback"] == "production"
    assert said["Ritmo-Artifact"] == ids[0] and said["Ritmo-Rolled-Back"] == ids[1]
    assert said["Ritmo-Approved-By"] == "olga"
    assert said["Ritmo-Rolled-Back-By"] == "release-bot"
    assert "Ritmo-Promotion" not in said
    verify_commit(remote, remote_refs(remote)["refs/heads/main"], signing_key[0])
    assert runtime.index.held(ids[1], "production")
    runtime.ledger.write(_Nothing())  # the mark is queued behind the merge: let it land
    marked = client.get(f"/api/v1/deployments/{dep['id']}", headers=bearer(cd)).get_json()
    assert marked["rolled_back_by"] == remote_refs(remote)["refs/heads/main"]
    assert marked["updated_at"] >= marked["created_at"]  # the merge's time, not the epoch
    shown = client.get(f"/api/v1/artifacts/{ids[1]}", headers=bearer(tokens["reader"]))
    assert shown.get_json()["promotion_status"] == "dev"
