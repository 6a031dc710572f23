"""End to end on the local forge: ArgoCD reports, deployment-gated auto-promotion, a
degraded deployment rolled back automatically, the hold, and an explicit promotion."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.cli import main
from bot.deploy.records import LEDGER_BRANCH
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git, remote_refs, show, trailers, verify_commit

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "argocd"
ARGOCD_TOKEN = "argocd-shared-token-0123456789"
LEDGER = f"refs/heads/{LEDGER_BRANCH}"

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - name: staging
    rollback: {on_failure: automatic, strategy: previous_version}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true, requires_deployment: true}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}]
apps:
  web: {}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"argocd_token": ARGOCD_TOKEN}}


def _report(
    client: FlaskClient, trigger: str, app: str, revision: str, token: str = ARGOCD_TOKEN
) -> Any:
    body: dict[str, Any] = json.loads((SAMPLES / f"{trigger}.json").read_text())
    body.update(app=app, revision=revision, url=f"https://argocd.example.com/applications/{app}")
    return client.post("/webhooks/argocd", json=body, headers={"X-Ritmo-Token": token})


def _tip(remote: Path, ref: str = "refs/heads/main") -> str:
    return remote_refs(remote)[ref]


def _pinned(remote: Path, env: str) -> str:
    text = show(remote, f"main:apps/web/overlays/{env}/kustomization.yaml")
    return text.split("newTag:")[1].split()[0].strip("\"'")


def _register(client: FlaskClient, token: str, version: str) -> str:
    body = artifact_body(version=version)
    resp = client.post("/api/v1/artifacts", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def test_a_degraded_deployment_is_rolled_back_and_held(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    signing_key: tuple[Path, str],
    kubectl: str,
    tmp_path: Path,
) -> None:
    home = signing_key[0]
    good = _register(client, tokens["ci"], "1.0.0")
    # The rule into staging waits for a deployment: registration pins dev only.
    assert (_pinned(remote, "dev"), _pinned(remote, "staging")) == ("1.0.0", "0.1.0")

    resp = _report(client, "on-deployed", "web-dev", _tip(remote))
    assert resp.status_code == 201, resp.get_json()
    dev = resp.get_json()
    assert (dev["status"], dev["environment"], dev["artifact_id"]) == ("succeeded", "dev", good)
    assert [p["environment"] for p in dev["promoted"]] == ["staging"]
    assert _pinned(remote, "staging") == "1.0.0"
    assert _report(client, "on-deployed", "web-staging", _tip(remote)).status_code == 201

    bad = _register(client, tokens["ci"], "1.1.0")
    assert _report(client, "on-deployed", "web-dev", _tip(remote)).status_code == 201
    assert _pinned(remote, "staging") == "1.1.0"
    staging_pin = _tip(remote)

    ledger_before = _tip(remote, LEDGER)
    resp = _report(client, "on-health-degraded", "web-staging", staging_pin)
    assert resp.status_code == 201, resp.get_json()
    failed = resp.get_json()
    assert failed["status"] == "degraded" and failed["artifact_id"] == bad
    rollback = failed["rollback"]
    assert rollback["restored_artifact"] == good and rollback["failed_artifact"] == bad
    assert failed["rolled_back_by"] == rollback["commit"]

    # The rollback is a signed commit on main with the audit trailers; staging renders 1.0.0.
    commit = _tip(remote)
    assert commit == rollback["commit"]
    verify_commit(remote, commit, home)
    said = trailers(remote, commit)
    assert said["Ritmo-Rollback"] == "staging"
    assert said["Ritmo-Artifact"] == good and said["Ritmo-Rolled-Back"] == bad
    assert said["Ritmo-Rolled-Back-By"] == "ritmo (automatic)"
    assert said["Ritmo-Returned-To"] == "dev"
    assert _pinned(remote, "staging") == "1.0.0"
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "--quiet", str(remote), str(checkout))
    rendered = subprocess.run(
        [kubectl, "kustomize", str(checkout / "apps/web/overlays/staging")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "image: registry.example.com/acme/web:1.0.0" in rendered

    # Deployments are signed commits on the ledger branch, never on main.
    ledger_commits = git(remote, "rev-list", f"{ledger_before}..{LEDGER}").split()
    assert len(ledger_commits) == 2  # degraded, then marked rolled back
    for sha in ledger_commits:
        verify_commit(remote, sha, home)
    assert trailers(remote, ledger_commits[-1])["Ritmo-Deployment-Status"] == "degraded"

    # 1.1.0 is back in dev and held out of staging: a fresh success in dev does not push it.
    shown = client.get(f"/api/v1/artifacts/{bad}", headers=bearer(tokens["reader"]))
    assert shown.get_json()["promotion_status"] == "dev"
    assert runtime.index.held(bad, "staging")
    main_before = _tip(remote)
    again = _report(client, "on-sync-succeeded", "web-dev", main_before)
    assert again.status_code in (200, 201)
    assert _tip(remote) == main_before and _pinned(remote, "staging") == "1.0.0"

    # Someone promotes it explicitly: that releases the hold.
    resp = client.post(
        f"/api/v1/artifacts/{bad}/promote",
        json={"from": "dev", "to": "staging"},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 201, resp.get_json()
    assert _pinned(remote, "staging") == "1.1.0"
    assert not runtime.index.held(bad, "staging")


def test_reports_are_deduplicated_and_bad_ones_write_nothing(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    _register(client, tokens["ci"], "2.0.0")
    tip = _tip(remote)
    first = _report(client, "on-sync-running", "web-dev", tip)
    assert first.status_code == 201 and first.get_json()["status"] == "progressing"
    refs = remote_refs(remote)
    again = _report(client, "on-sync-running", "web-dev", tip)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert remote_refs(remote) == refs

    wrong = _report(client, "on-deployed", "web-dev", tip, token="not-the-token-at-all")
    assert wrong.status_code == 401
    # Authentic but unusable: 202 ignored with the reason (ArgoCD never retries a 4xx).
    unknown = _report(client, "on-deployed", "web-dev", "0" * 40)
    assert unknown.status_code == 202
    assert unknown.get_json()["status"] == "ignored"
    assert unknown.get_json()["reason"] == "unknown-revision"
    nobody = _report(client, "on-deployed", "billing-dev", tip)
    assert nobody.status_code == 202 and nobody.get_json()["reason"] == "unknown-app"
    assert "deploy_name" in nobody.get_json()["message"]
    assert remote_refs(remote) == refs
    listed = client.get("/api/v1/deployments?app=web", headers=bearer(tokens["reader"]))
    assert [d["status"] for d in listed.get_json()["items"]] == ["progressing"]


def test_the_cd_api_records_and_rolls_back(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    cd = runtime.tokens.create("cd-system", [Scope.DEPLOYMENTS_WRITE])
    first = _register(client, tokens["ci"], "3.0.0")
    body = {
        "artifact_id": first,
        "environment": "dev",
        "target_type": "kubernetes",
        "target_url": "https://dev-cluster.example.com",
        "deployed_by": "cd-system",
    }
    resp = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert resp.status_code == 201, resp.get_json()
    dep = resp.get_json()
    assert (dep["status"], dep["target_type"]) == ("succeeded", "kubernetes")
    shown = client.get(f"/api/v1/deployments/{dep['id']}", headers=bearer(cd))
    assert shown.get_json()["id"] == dep["id"]

    # The CD credential can do nothing else; CI cannot report deployments.
    assert client.post("/api/v1/artifacts", json=artifact_body(version="9.9.9"),
                       headers=bearer(cd)).status_code == 403  # fmt: skip
    assert client.post("/api/v1/deployments", json=body,
                       headers=bearer(tokens["ci"])).status_code == 403  # fmt: skip

    # The success in dev promoted 3.0.0 to staging (the rule waits for a deployment).
    assert _pinned(remote, "staging") == "3.0.0"
    # An artifact the environment does not run is refused, naming the field.
    second = _register(client, tokens["ci"], "3.1.0")
    refs = remote_refs(remote)
    stale = client.post(
        "/api/v1/deployments",
        json={**body, "artifact_id": second, "environment": "staging"},
        headers=bearer(cd),
    )
    assert stale.status_code == 409 and stale.get_json()["fields"][0]["field"] == "artifact_id"
    bad = client.post(
        "/api/v1/deployments", json={**body, "environment": "Nope!"}, headers=bearer(cd)
    )
    assert bad.status_code == 422 and bad.get_json()["fields"][0]["field"] == "environment"
    assert remote_refs(remote) == refs

    # dev runs 3.1.0 now: roll it back by hand to 3.0.0, the last that ran well there.
    resp = client.post(
        "/api/v1/deployments",
        json={**body, "artifact_id": second, "status": "failed"},
        headers=bearer(cd),
    )
    assert resp.status_code == 201
    failed = resp.get_json()
    assert "rollback" not in failed  # dev rolls back by hand in this policy
    resp = client.post(
        f"/api/v1/deployments/{failed['id']}/rollback",
        json={"reason": "bad config"},
        headers=bearer(cd),
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["restored_version"] == "3.0.0"
    assert _pinned(remote, "dev") == "3.0.0"
    assert "bad config" in git(remote, "log", "-1", "--format=%B", "main")
    again = client.post(f"/api/v1/deployments/{failed['id']}/rollback", headers=bearer(cd))
    assert again.status_code == 409


def test_the_cli_lists_deployments_and_rolls_back(
    live_server: str, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    cd = runtime.tokens.create("cd-cli", [Scope.DEPLOYMENTS_WRITE])
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": cd}
    for version, status in (("6.0.0", "succeeded"), ("6.1.0", "degraded")):
        art = _register(client, tokens["ci"], version)
        body = {"artifact_id": art, "environment": "dev", "status": status}
        assert client.post("/api/v1/deployments", json=body, headers=bearer(cd)).status_code == 201
    # Paged like every list: the next page is named in a Link header.
    paged = client.get("/api/v1/deployments?app=web&per_page=1", headers=bearer(cd))
    assert paged.get_json()["has_next"]
    assert paged.headers["Link"] == '</api/v1/deployments?app=web&per_page=1&page=2>; rel="next"'
    listed = CliRunner(env=env).invoke(main, ["deployments", "list", "--app", "web"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert "degraded" in lines[1] and "6.1.0" in lines[1] and "succeeded" in lines[2]
    failed = client.get("/api/v1/deployments?status=degraded", headers=bearer(cd)).get_json()
    dep_id = failed["items"][0]["id"]

    done = CliRunner(env=env).invoke(main, ["rollback", dep_id, "--reason", "pager went off"])
    assert done.exit_code == 0, done.output
    assert "dev runs 6.0.0 again" in done.output
    assert _pinned(remote, "dev") == "6.0.0"
    again = CliRunner(env=env).invoke(main, ["rollback", dep_id])
    assert again.exit_code == 1 and "rolled back already" in again.output

    # `degraded (rolled back)` is longer than any status: the columns still line up.
    listed = CliRunner(env=env).invoke(main, ["deployments", "list", "--app", "web"])
    assert listed.exit_code == 0, listed.output
    head, *rows = listed.output.splitlines()[:-1]
    marked = [row for row in rows if "degraded (rolled back)" in row]
    assert len(marked) == 1, listed.output
    column = head.index("UPDATED")
    for row in rows:
        assert row[column - 2 : column] == "  " and row[column] != " ", listed.output
        assert row[column:].startswith(("19", "20")), listed.output  # the timestamp


def test_a_rollback_the_remote_refused_is_made_by_the_scheduler(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path
) -> None:
    from bot.scheduler import rollback_due

    for version in ("10.0.0", "10.1.0"):
        _register(client, tokens["ci"], version)
        assert _report(client, "on-deployed", "web-dev", _tip(remote)).status_code == 201
    assert _report(client, "on-deployed", "web-staging", _tip(remote)).status_code == 201
    pinned = _tip(remote)
    # The remote refuses updates of main for a while (a protected branch, an outage).
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ngrep -q ' refs/heads/main$' && exit 1\nexit 0\n")
    hook.chmod(0o755)
    runtime.writer._attempts = 1  # type: ignore[attr-defined]  # fail fast in the test
    resp = _report(client, "on-health-degraded", "web-staging", pinned)
    assert resp.status_code == 201, resp.get_json()
    failed = resp.get_json()
    assert failed["status"] == "degraded" and "rollback" not in failed
    assert _tip(remote) == pinned and _pinned(remote, "staging") == "10.1.0"

    hook.unlink()
    assert rollback_due(runtime) == 1
    assert _pinned(remote, "staging") == "10.0.0"
    shown = client.get(
        f"/api/v1/artifacts/{failed['artifact_id']}", headers=bearer(tokens["reader"])
    )
    assert shown.get_json()["held_in"] == ["staging"]
    assert rollback_due(runtime) == 0  # once


def test_status_shows_what_a_rollback_restored(
    live_server: str, client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
) -> None:
    cd = runtime.tokens.create("cd-status", [Scope.DEPLOYMENTS_WRITE])
    for version, status in (("11.0.0", "succeeded"), ("11.1.0", "degraded")):
        art = _register(client, tokens["ci"], version)
        body = {"artifact_id": art, "environment": "dev", "status": status}
        resp = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
        assert resp.status_code == 201
    dep = resp.get_json()["id"]
    assert client.post(f"/api/v1/deployments/{dep}/rollback", headers=bearer(cd)).status_code == 201
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["reader"]}
    shown = CliRunner(env=env).invoke(main, ["status", "--json"])
    assert shown.exit_code == 0, shown.output
    cells = json.loads(shown.output)["apps"][0]["environments"]
    assert cells["dev"]["version"] == "11.0.0" and cells["dev"]["rolled_back"] is True
    assert cells["staging"]["version"] == "11.0.0"  # promoted there once it ran well in dev
