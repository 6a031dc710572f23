"""Promote by app and version: POST /api/v1/promotions and `ritmo promote web 1.2.3 --to T`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.cli import main
from bot.config import Settings
from tests.helpers import (
    artifact_body,
    bearer,
    commits_since,
    git,
    remote_refs,
    show,
    trailers,
    verify_commit,
)
from tests.promotions.test_promote_api import OVERLAY, POLICY, _add_app


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _register(client: FlaskClient, token: str, name: str, version: str) -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(name=name, version=version), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def _manual(client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path) -> str:
    """App `manual`: dev -> staging without approval and without auto-promotion."""
    overlay = show(remote, OVERLAY.format(env="dev")).replace("web", "manual")
    _add_app(
        remote,
        tmp_path,
        {
            f"apps/manual/overlays/{env}/kustomization.yaml": overlay.replace("-dev", f"-{env}")
            for env in ("dev", "staging", "production")
        }
        | {"apps/manual/base/kustomization.yaml": "resources: []\n"},
    )
    return _register(client, tokens["ci"], "manual", "1.0.0")


def test_promote_by_app_and_version(
    client: FlaskClient, tokens: dict[str, str], remote: Path, settings: Settings, tmp_path: Path
) -> None:
    art = _manual(client, tokens, remote, tmp_path)
    base = git(remote, "rev-parse", "main").strip()
    resp = client.post(
        "/api/v1/promotions",
        json={"app": "manual", "version": "1.0.0", "to": "staging", "approval_ticket": "CHG-1"},
        headers={**bearer(tokens["promoter"]), "X-Correlation-ID": "by-name-1"},
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["artifact_id"] == art
    assert resp.json["environment"] == "staging"
    assert resp.json["promotion"]["app"] == "manual" and resp.json["promotion"]["from"] == "dev"
    assert commits_since(remote, base) == [resp.json["commit"]]
    verify_commit(remote, resp.json["commit"], settings.gnupghome)
    found = trailers(remote, resp.json["commit"])
    assert found["Ritmo-Promotion"] == "dev -> staging"  # `from` defaulted by the policy
    assert found["Ritmo-Artifact"] == art
    assert found["Ritmo-Correlation-Id"] == "by-name-1"


def test_to_an_approval_environment_opens_a_request(
    client: FlaskClient, tokens: dict[str, str], remote: Path
) -> None:
    _register(client, tokens["ci"], "web", "2.0.0")  # auto-promoted to staging
    main = git(remote, "rev-parse", "main").strip()
    resp = client.post(
        "/api/v1/promotions",
        json={"app": "web", "version": "2.0.0", "to": "production"},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 202, resp.json
    request = resp.json["request"]
    assert (request["from"], request["to"], request["status"]) == (
        "staging",
        "production",
        "pending",
    )
    assert resp.headers["Location"] == f"/api/v1/promotions/{request['id']}"
    assert git(remote, "rev-parse", "main").strip() == main


@pytest.mark.parametrize(
    ("app_name", "version"), [("web", "9.9.9"), ("nosuch", "2.0.0")], ids=["version", "app"]
)
def test_unknown_app_or_version_is_a_404_naming_both(
    client: FlaskClient, tokens: dict[str, str], remote: Path, app_name: str, version: str
) -> None:
    _register(client, tokens["ci"], "web", "2.0.0")
    refs = remote_refs(remote)
    resp = client.post(
        "/api/v1/promotions",
        json={"app": app_name, "version": version, "to": "production"},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 404, resp.json
    assert (
        f"app {app_name!r}" in resp.json["error"] and f"version {version!r}" in resp.json["error"]
    )
    assert remote_refs(remote) == refs


@pytest.mark.parametrize(
    ("body", "field", "fix"),
    [
        ({"version": "2.0.0", "to": "production"}, "app", "Field required"),
        ({"app": "web", "to": "production"}, "version", "Field required"),
        ({"app": "web", "version": "2.0.0"}, "to", "to (or to_environment) is required"),
        (
            {"app": "web", "version": "2.0.0", "to": "production", "to_environment": "dev"},
            "to",
            "to and to_environment disagree",
        ),
        ({"app": "Web!", "version": "2.0.0", "to": "production"}, "app", "pattern"),
        ({"app": "web", "version": "../x", "to": "production"}, "version", "pattern"),
        ({"app": "web", "version": "2.0.0", "to": "production", "force": 1}, "force", "remove it"),
    ],
)
def test_bad_body_is_a_422_naming_the_field(
    client: FlaskClient,
    tokens: dict[str, str],
    remote: Path,
    body: dict[str, object],
    field: str,
    fix: str,
) -> None:
    _register(client, tokens["ci"], "web", "2.0.0")
    refs = remote_refs(remote)
    resp = client.post("/api/v1/promotions", json=body, headers=bearer(tokens["promoter"]))
    assert resp.status_code == 422, resp.json
    named = {f["field"]: f["message"] for f in resp.json["fields"]}
    assert field in named and fix in named[field], named
    assert remote_refs(remote) == refs


def test_refusals_say_what_to_do(
    client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path
) -> None:
    _manual(client, tokens, remote, tmp_path)  # in dev
    refs = remote_refs(remote)
    promoter = bearer(tokens["promoter"])
    for to, phrase in [
        ("production", "is in dev, not staging; promote it to staging first"),
        ("dev", "dev is the first environment"),
        ("qa", "unknown environment 'qa'"),
    ]:
        resp = client.post(
            "/api/v1/promotions", json={"app": "manual", "version": "1.0.0", "to": to},
            headers=promoter,
        )  # fmt: skip
        assert resp.status_code == 409, resp.json
        assert phrase in resp.json["error"]
    assert remote_refs(remote) == refs


def test_needs_promotions_write(client: FlaskClient, tokens: dict[str, str]) -> None:
    resp = client.post(
        "/api/v1/promotions",
        json={"app": "web", "version": "2.0.0", "to": "production"},
        headers=bearer(tokens["reader"]),
    )
    assert resp.status_code == 403 and "promotions:write" in resp.json["error"]


def test_cli_promotes_by_name(
    client: FlaskClient,
    live_server: str,
    tokens: dict[str, str],
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RITMO_CONFIG", raising=False)
    _manual(client, tokens, remote, tmp_path)
    _register(client, tokens["ci"], "web", "2.0.0")
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["promoter"]}
    runner = CliRunner(env=env)
    done = runner.invoke(main, ["promote", "manual", "1.0.0", "--to", "staging"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("promoted: manual 1.0.0 to staging (commit ")
    asked = runner.invoke(main, ["promote", "web", "2.0.0", "--to", "production"])
    assert asked.exit_code == 0, asked.output
    assert asked.output.startswith("pending: request req-")
    unknown = runner.invoke(main, ["promote", "web", "9.9.9", "--to", "production"])
    assert unknown.exit_code == 1
    assert "app 'web' and version '9.9.9'" in unknown.output


def test_cli_artifact_id_form_still_needs_from(live_server: str, tokens: dict[str, str]) -> None:
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["promoter"]}
    result = CliRunner(env=env).invoke(main, ["promote", "art-0123", "--to", "staging"])
    assert result.exit_code == 2
    assert "--from is required with an artifact id" in result.output
    three = CliRunner(env=env).invoke(main, ["promote", "a", "b", "c", "--to", "staging"])
    assert three.exit_code == 2 and "ARTIFACT_ID or APP VERSION" in three.output
