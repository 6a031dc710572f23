"""Issue 13, findings 2 and 3, end to end on a bare remote with real gpg: a rollback restores
only a version that arrived in the environment by a path the policy held, never a held,
failed or hand-pinned one; `deployments:write` rolls back failed deployments only; reports
about revisions older than the current pin are history."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.cli import main
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git, remote_refs, show, trailers, verify_commit

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - name: production
    rollback: {on_failure: automatic}
promotion_rules:
  - from: dev
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}]
apps:
  web: {}
"""
WAIVED = POLICY.replace(
    "{on_failure: automatic}", "{on_failure: automatic, requires_approval: false}"
)


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _main(remote: Path) -> str:
    return remote_refs(remote)["refs/heads/main"]


def _pinned(remote: Path, env: str) -> str:
    text = show(remote, f"main:apps/web/overlays/{env}/kustomization.yaml")
    return text.split("newTag:")[1].split()[0].strip("\"'")


def _register(client: FlaskClient, tokens: dict[str, str], version: str) -> str:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                       headers=bearer(tokens["ci"]))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _approved_into_production(
    client: FlaskClient, tokens: dict[str, str], ops: str, art: str
) -> None:
    opened = client.post(f"/api/v1/artifacts/{art}/promote",
                         json={"from": "dev", "to": "production"},
                         headers=bearer(tokens["promoter"]))  # fmt: skip
    assert opened.status_code == 202, opened.get_json()
    request_id = opened.get_json()["request"]["id"]
    merged = client.post(f"/api/v1/promotions/{request_id}/approvals", json={},
                         headers=bearer(ops))  # fmt: skip
    assert merged.status_code == 201, merged.get_json()


def _report(
    client: FlaskClient, token: str, art: str, env: str, status: str, revision: str | None = None
) -> Any:
    body: dict[str, Any] = {"artifact_id": art, "environment": env, "status": status}
    if revision:
        body["revision"] = revision
    return client.post("/api/v1/deployments", json=body, headers=bearer(token))


@pytest.fixture
def people(runtime: Runtime) -> dict[str, str]:
    return {
        "ops": runtime.tokens.create("olga", [Scope.PROMOTIONS_APPROVE], groups=["ops-team"]),
        "cd": runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE]),
    }


def test_a_cd_token_cannot_roll_a_healthy_deployment_back_to_a_version_of_its_choosing(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    people: dict[str, str],
    remote: Path,
) -> None:
    """Finding 2: report an old revision succeeded, report the current one, roll back."""
    old, new = _register(client, tokens, "1.0.0"), _register(client, tokens, "1.1.0")
    _approved_into_production(client, tokens, people["ops"], old)
    old_pin = _main(remote)
    _approved_into_production(client, tokens, people["ops"], new)
    assert _pinned(remote, "production") == "1.1.0"

    stale = _report(client, people["cd"], old, "production", "succeeded", old_pin)
    assert stale.status_code == 201, stale.get_json()
    current = _report(client, people["cd"], new, "production", "succeeded")
    assert current.status_code == 201, current.get_json()

    refs = remote_refs(remote)
    resp = client.post(f"/api/v1/deployments/{current.get_json()['id']}/rollback",
                       json={"reason": "my choice"}, headers=bearer(people["cd"]))  # fmt: skip
    assert resp.status_code == 403, resp.get_json()
    assert "promotions:write" in resp.get_json()["error"]
    assert resp.get_json()["fields"][0]["field"] == "scope"
    assert remote_refs(remote) == refs and _pinned(remote, "production") == "1.1.0"
    # The old revision's report is kept as history, marked: older than production's pin.
    assert stale.get_json().get("superseded") is True
    assert stale.get_json()["history"][-1]["superseded"] is True
    assert current.get_json()["superseded"] is False
    listed = client.get("/api/v1/deployments?env=production", headers=bearer(people["cd"]))
    assert {d["version"]: d["superseded"] for d in listed.get_json()["items"]} == {
        "1.0.0": True, "1.1.0": False,
    }  # fmt: skip

    # A promoter may ask: production's incoming promotions need approval, so it is a
    # request, and it would restore 1.0.0, which arrived by an approved request.
    asked = client.post(f"/api/v1/deployments/{current.get_json()['id']}/rollback",
                        headers=bearer(tokens["promoter"]))  # fmt: skip
    assert asked.status_code == 202, asked.get_json()
    assert asked.get_json()["restored_version"] == "1.0.0"
    assert asked.get_json()["request"]["status"] == "pending"
    assert _pinned(remote, "production") == "1.1.0"


@pytest.mark.parametrize("remote_policy", [WAIVED])
def test_a_promoter_rolls_back_directly_where_rollbacks_are_waived(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    people: dict[str, str],
    remote: Path,
    signing_key: tuple[Path, str],
) -> None:
    old, new = _register(client, tokens, "2.0.0"), _register(client, tokens, "2.1.0")
    for art in (old, new):
        _approved_into_production(client, tokens, people["ops"], art)
        assert _report(client, people["cd"], art, "production", "succeeded").status_code == 201
    current = client.get("/api/v1/deployments?env=production",
                         headers=bearer(people["cd"])).get_json()["items"][0]  # fmt: skip
    assert current["version"] == "2.1.0"
    done = client.post(f"/api/v1/deployments/{current['id']}/rollback",
                       headers=bearer(tokens["promoter"]))  # fmt: skip
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["restored_version"] == "2.0.0"
    assert _pinned(remote, "production") == "2.0.0"
    verify_commit(remote, _main(remote), signing_key[0])
    assert trailers(remote, "main")["Ritmo-Rolled-Back-By"] == "release-bot"


def test_a_failure_never_rolls_back_to_a_hand_pinned_version(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    people: dict[str, str],
    remote: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Finding 2's variant: register a version matching the scaffold's hand-made pin,
    report it succeeded at the first commit, report the approved version failed."""
    seed = git(remote, "rev-list", "--max-parents=0", "main").strip()
    assert _pinned(remote, "production") == "0.1.0"  # the scaffold's example pin
    hand = _register(client, tokens, "0.1.0")
    ran = _report(client, people["cd"], hand, "production", "succeeded", seed)
    assert ran.status_code == 201, ran.get_json()
    assert not ran.get_json().get("superseded")  # production still pins the seed's 0.1.0

    approved = _register(client, tokens, "1.0.0")
    _approved_into_production(client, tokens, people["ops"], approved)
    pinned = _main(remote)
    caplog.set_level(logging.WARNING)
    failed = _report(client, people["cd"], approved, "production", "failed")
    assert failed.status_code == 201, failed.get_json()
    assert "rollback" not in failed.get_json()
    assert _main(remote) == pinned and _pinned(remote, "production") == "1.0.0"
    alert = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert alert and "web 0.1.0 never arrived in production" in alert[0], alert

    # Asked for by the CD token (the deployment failed, so it may ask): 409, nothing written.
    refs = remote_refs(remote)
    resp = client.post(f"/api/v1/deployments/{failed.get_json()['id']}/rollback",
                       headers=bearer(people["cd"]))  # fmt: skip
    assert resp.status_code == 409, resp.get_json()
    assert "web 0.1.0 never arrived in production" in resp.get_json()["error"]
    assert remote_refs(remote) == refs


def test_rolling_back_an_older_deployment_never_reinstates_a_held_failed_version(
    live_server: str,
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    people: dict[str, str],
    remote: Path,
) -> None:
    """Finding 3: dev ran 1.0.0, then 1.1.0 degraded and was rolled back (held in dev); a
    late report says 1.1.0's revision succeeded; `ritmo rollback` of 1.0.0's older
    deployment must not put 1.1.0 back."""
    cd = people["cd"]
    good = _register(client, tokens, "3.0.0")
    first = _report(client, cd, good, "dev", "succeeded").get_json()
    bad = _register(client, tokens, "3.1.0")
    bad_pin = _main(remote)
    assert _report(client, cd, bad, "dev", "succeeded").status_code == 201
    degraded = _report(client, cd, bad, "dev", "degraded").get_json()
    undone = client.post(f"/api/v1/deployments/{degraded['id']}/rollback", headers=bearer(cd))
    assert undone.status_code == 201, undone.get_json()
    assert _pinned(remote, "dev") == "3.0.0" and runtime.index.held(bad, "dev")

    # ArgoCD's late word about the old revision (a retry, with its own message).
    body = {"artifact_id": bad, "environment": "dev", "status": "succeeded",
            "revision": bad_pin, "message": "sync retried"}  # fmt: skip
    late = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert late.status_code in (200, 201), late.get_json()

    refs = remote_refs(remote)
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["promoter"]}
    done = CliRunner(env=env).invoke(main, ["rollback", first["id"]])
    assert done.exit_code == 1, done.output
    assert "409" in done.output and "web 3.1.0 is held out of dev" in done.output
    assert remote_refs(remote) == refs and _pinned(remote, "dev") == "3.0.0"
    # The CD token may not roll back the healthy deployment at all.
    cd_env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": cd}
    refused = CliRunner(env=cd_env).invoke(main, ["rollback", first["id"]])
    assert refused.exit_code == 1 and "403" in refused.output, refused.output
    # The late report is history: 3.1.0's deployment in dev stays degraded.
    assert late.get_json()["status"] == "degraded"
    assert late.get_json()["history"][-1].get("superseded") is True
