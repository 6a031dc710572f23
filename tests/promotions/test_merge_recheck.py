"""The merge-time re-check on the local forge: a request whose artifact was rolled back out
of the source environment after it opened closes as `stale` when its approvals complete,
with a signed closing commit, and the target keeps its version (issue 13, finding 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.promotions.eligibility import MergeFacts, stale_reason
from bot.runtime import Runtime
from bot.store.reindex import reindex
from tests.helpers import (
    TWO_APPROVERS_POLICY,
    artifact_body,
    bearer,
    git,
    remote_refs,
    show,
    trailers,
    verify_commit,
)

PRODUCTION = "main:apps/web/overlays/production/kustomization.yaml"
STAGING = "main:apps/web/overlays/staging/kustomization.yaml"
BRANCH = "refs/heads/ritmo/promote/web/production"


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def _register(client: FlaskClient, token: str, version: str) -> str:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                       headers=bearer(token))  # fmt: skip
    assert resp.status_code == 201 and resp.json["promotion_status"] == "staging", resp.json
    return str(resp.json["id"])


def _approve(client: FlaskClient, token: str, request_id: str) -> Any:
    return client.post(f"/api/v1/promotions/{request_id}/approvals", json={},
                       headers=bearer(token))  # fmt: skip


def roll_back_out_of_staging(client: FlaskClient, runtime: Runtime, art: str) -> dict[str, Any]:
    """CD reports `art` failed in staging; a promoter rolls it back (a hold in staging)."""
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE, Scope.ARTIFACTS_READ])
    body = {"artifact_id": art, "environment": "staging", "status": "failed"}
    reported = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert reported.status_code == 201, reported.json
    rolled = client.post(f"/api/v1/deployments/{reported.json['id']}/rollback",
                         json={"reason": "500s in staging"}, headers=bearer(cd))  # fmt: skip
    assert rolled.status_code == 201, rolled.json
    assert runtime.index.held(art, "staging")
    return dict(rolled.json)


def test_rolled_back_out_of_staging_closes_stale(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    signing_key: tuple[Path, str],
) -> None:
    alice = runtime.tokens.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    bob = runtime.tokens.create("bob", [Scope.PROMOTIONS_APPROVE], ["security-team"])
    _register(client, tokens["ci"], "1.9.0")
    art = _register(client, tokens["ci"], "2.0.0")
    production = show(remote, PRODUCTION)
    opened = client.post(f"/api/v1/artifacts/{art}/promote",
                         json={"from": "staging", "to": "production"},
                         headers=bearer(tokens["promoter"]))  # fmt: skip
    assert opened.status_code == 202, opened.json
    request = opened.json["request"]
    assert _approve(client, alice, request["id"]).json["progress"] == "1/2 approvals"

    roll_back_out_of_staging(client, runtime, art)
    assert 'newTag: "1.9.0"' in show(remote, STAGING)
    before = remote_refs(remote)["refs/heads/main"]

    last = _approve(client, bob, request["id"])
    assert last.status_code == 201, last.json
    assert last.json["status"] == "stale"
    assert "held out of staging by a rollback" in last.json["reason"]
    assert show(remote, PRODUCTION) == production  # production unchanged

    refs = remote_refs(remote)
    close = refs["refs/heads/main"]
    assert git(remote, "rev-parse", f"{close}^1").strip() == before  # one commit, no merge
    assert git(remote, "rev-list", "--count", f"{before}..{close}").strip() == "1"
    verify_commit(remote, close, signing_key[0])
    said = trailers(remote, close)
    assert said["Ritmo-Request"] == request["id"]
    assert said["Ritmo-Request-Closed"] == "stale"
    assert "held out of staging" in said["Ritmo-Request-Close-Reason"]
    assert "Ritmo-Promotion" not in said and "Ritmo-Approved-By" not in said
    assert BRANCH not in refs  # the request ended
    shown = client.get("/api/v1/promotions?status=stale",
                       headers=bearer(tokens["reader"])).json["items"]  # fmt: skip
    assert [r["id"] for r in shown] == [request["id"]]
    assert runtime.index.get(art).promotion_status == "dev"  # type: ignore[union-attr]

    # A rebuild from git alone keeps the status and the reason.
    with runtime.mirror.locked():
        reindex(runtime.index, runtime.mirror, runtime.requests_index)
    rebuilt = runtime.requests_index.get(request["id"])
    assert rebuilt is not None and rebuilt.status == "stale"
    assert "held out of staging" in str(rebuilt.reason)


FACTS = MergeFacts(
    app="web", version="2.0.0", from_env="staging", to_env="production", rollback=False,
    artifact_in="staging", held_in=frozenset(), newest_request="req-a", request_id="req-a",
    branch="ritmo/promote/web/production", branch_tip="a" * 40, reviewed_tip="a" * 40,
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({}, None),
        ({"artifact_in": "dev"}, "no longer in staging"),
        ({"held_in": frozenset({"staging"})}, "held out of staging"),
        ({"held_in": frozenset({"production"})}, "held out of production"),
        ({"newest_request": "req-b"}, "req-b is a newer request"),
        ({"branch_tip": "b" * 40}, "not the reviewed aaaaaaaaaaaa"),
        ({"branch_tip": None}, "is gone"),
        # A rollback request restores an artifact already past its "from" environment.
        ({"rollback": True, "artifact_in": "production"}, None),
        ({"rollback": True, "held_in": frozenset({"production"})}, "held out of production"),
    ],
)
def test_stale_reasons(change: dict[str, Any], why: str | None) -> None:
    from dataclasses import replace

    found = stale_reason(replace(FACTS, **change))
    if why is None:
        assert found is None
    else:
        assert found is not None and why in found
