"""Promotion gated on a succeeded deployment and a soak; the index rebuilt from git."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.cli import main
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.scheduler import promote_due
from tests.helpers import artifact_body, bearer, kill_gpg_agent

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - name: staging
    rollback: {on_failure: automatic}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true, soak: 2s}
  - {from: staging, to: production, requires_deployment: true}
apps:
  web: {}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _deploy(client: FlaskClient, token: str, artifact: str, env: str, status: str) -> dict:
    body = {"artifact_id": artifact, "environment": env, "status": status}
    resp = client.post("/api/v1/deployments", json=body, headers=bearer(token))
    assert resp.status_code in (200, 201), resp.get_json()
    return dict(resp.get_json())


def test_soak_then_the_scheduler_promotes_and_a_deployment_gates_the_next(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
) -> None:
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    resp = client.post("/api/v1/artifacts", json=artifact_body(version="4.0.0"),
                       headers=bearer(tokens["ci"]))  # fmt: skip
    art = resp.get_json()["id"]

    early = client.post(f"/api/v1/artifacts/{art}/promote", json={"from": "dev", "to": "staging"},
                        headers=bearer(tokens["promoter"]))  # fmt: skip
    assert early.status_code == 409 and "no deployment in dev" in early.get_json()["error"]

    dep = _deploy(client, cd, art, "dev", "succeeded")
    assert "promoted" not in dep  # soaking
    soaking = client.post(f"/api/v1/artifacts/{art}/promote", json={"from": "dev", "to": "staging"},
                          headers=bearer(tokens["promoter"]))  # fmt: skip
    assert soaking.status_code == 409 and "soaks in dev until" in soaking.get_json()["error"]
    assert promote_due(runtime) == 0

    time.sleep(2.1)  # timestamps are whole seconds: the soak ends within 2-3 s
    assert promote_due(runtime) == 1
    assert runtime.index.get(art).promotion_status == "staging"  # type: ignore[union-attr]
    assert promote_due(runtime) == 0  # once

    # staging -> production (no approval here) needs a succeeded deployment in staging.
    ask = {"from": "staging", "to": "production"}
    refused = client.post(f"/api/v1/artifacts/{art}/promote", json=ask,
                          headers=bearer(tokens["promoter"]))  # fmt: skip
    assert refused.status_code == 409
    assert "no deployment in staging" in refused.get_json()["error"]
    _deploy(client, cd, art, "staging", "progressing")
    refused = client.post(f"/api/v1/artifacts/{art}/promote", json=ask,
                          headers=bearer(tokens["promoter"]))  # fmt: skip
    assert "deployment in staging is progressing" in refused.get_json()["error"]
    _deploy(client, cd, art, "staging", "succeeded")
    done = client.post(f"/api/v1/artifacts/{art}/promote", json=ask,
                       headers=bearer(tokens["promoter"]))  # fmt: skip
    assert done.status_code == 201, done.get_json()


def test_deployments_and_holds_come_back_from_git_alone(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    ids = []
    for version in ("5.0.0", "5.1.0"):
        resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                           headers=bearer(tokens["ci"]))  # fmt: skip
        ids.append(resp.get_json()["id"])
        _deploy(client, cd, ids[-1], "dev", "succeeded")
        time.sleep(2.1)  # timestamps are whole seconds: the soak ends within 2-3 s
        promote_due(runtime)
        _deploy(client, cd, ids[-1], "staging", "succeeded" if version == "5.0.0" else "degraded")
    assert runtime.index.held(ids[1], "staging")
    reader = bearer(tokens["reader"])
    before = client.get("/api/v1/deployments", headers=reader).get_json()
    assert [d["status"] for d in before["items"]] == [
        "degraded",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    shown_before = client.get(f"/api/v1/artifacts/{ids[1]}", headers=reader).get_json()
    assert shown_before["promotion_status"] == "dev"

    runtime.close()
    database = settings.data_dir / "index.sqlite3"
    assert database.exists()
    database.unlink()
    out = CliRunner().invoke(main, ["reindex"], env={
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
    })  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "Indexed 4 deployments" in out.output

    fresh = build_runtime(settings)
    try:
        again = create_app(settings, fresh).test_client()
        # Tokens are not in git: they went with the database and are made again by hand.
        reader = bearer(fresh.tokens.create("dashboard", [Scope.ARTIFACTS_READ]))
        after = again.get("/api/v1/deployments", headers=reader).get_json()
        assert after == before
        shown = again.get(f"/api/v1/artifacts/{ids[1]}", headers=reader).get_json()
        assert shown["promotion_status"] == "dev"
        assert fresh.index.held(ids[1], "staging")
    finally:
        fresh.close()
        kill_gpg_agent(settings.data_dir / "trusted-gnupg")
