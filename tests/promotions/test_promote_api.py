"""Promotions without approval: the chain on registration and POST .../promote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.config import ConfigError, Settings
from bot.runtime import build_runtime
from tests.helpers import (
    artifact_body,
    bearer,
    commits_since,
    git,
    remote_refs,
    sample_policy,
    show,
    trailers,
    verify_commit,
)

OVERLAY = "main:apps/web/overlays/{env}/kustomization.yaml"

# Like the shipped default, minus its production freeze, plus a helm app and a frozen one.
POLICY = sample_policy("helm-and-frozen-apps")


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _render(kubectl: str, remote: Path, tmp_path: Path, env: str) -> str:
    checkout = tmp_path / "checkout"
    if not checkout.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(checkout))
    git(checkout, "pull", "--quiet", "--ff-only")
    out = subprocess.run(
        [kubectl, "kustomize", str(checkout / f"apps/web/overlays/{env}")],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _register(client: FlaskClient, token: str, **fields: object) -> dict[str, object]:
    resp = client.post("/api/v1/artifacts", json=artifact_body(**fields), headers=bearer(token))
    assert resp.status_code == 201, resp.json
    return dict(resp.json)


def _add_app(remote: Path, tmp_path: Path, files: dict[str, str]) -> None:
    work = tmp_path / "platform"
    if not work.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(work))
    git(work, "pull", "--quiet", "--ff-only")
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "add app")
    git(work, "push", "--quiet", "origin", "main")


class TestChainOnRegistration:
    """A new artifact is pinned in dev, then in staging, as the policy says."""

    def test_record_dev_and_staging(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        settings: Settings,
        kubectl: str,
        tmp_path: Path,
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()
        body = _register(client, tokens["ci"], version="2.0.0")
        assert body["promotion_status"] == "staging"
        envs = [p["environment"] for p in body["promotions"]]  # type: ignore[attr-defined]
        assert envs == ["dev", "staging"]

        history = commits_since(remote, base)
        assert len(history) == 3
        for sha in history:
            verify_commit(remote, sha, settings.gnupghome)
        record, to_dev, to_staging = (trailers(remote, sha) for sha in history)
        assert record["Ritmo-Artifact"] == body["id"]
        assert to_dev["Ritmo-Promotion"] == "registered -> dev"
        assert to_staging["Ritmo-Promotion"] == "dev -> staging"
        assert to_staging["Ritmo-Artifact"] == body["id"]
        assert to_staging["Ritmo-Promoted-By"] == "ci"

        assert 'newTag: "2.0.0" # pinned by Ritmo' in show(remote, OVERLAY.format(env="dev"))
        assert "2.0.0" in show(remote, OVERLAY.format(env="staging"))
        assert "2.0.0" not in show(remote, OVERLAY.format(env="production"))
        for env in ["dev", "staging"]:
            rendered = _render(kubectl, remote, tmp_path, env)
            assert "image: registry.example.com/acme/web:2.0.0" in rendered
        assert "web:0.1.0" in _render(kubectl, remote, tmp_path, "production")

        listed = client.get("/api/v1/promotions?app=web", headers=bearer(tokens["reader"])).json
        assert [(p["from"], p["to"]) for p in listed["items"]] == [
            ("dev", "staging"),
            ("registered", "dev"),
        ]
        paged = client.get(
            "/api/v1/promotions?app=web&per_page=1", headers=bearer(tokens["reader"])
        )
        assert paged.headers["Link"] == '</api/v1/promotions?app=web&per_page=1&page=2>; rel="next"'

    def test_digest_image_pins_the_digest(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        kubectl: str,
        tmp_path: Path,
    ) -> None:
        digest = "sha256:" + "ab" * 32
        _register(
            client, tokens["ci"], version="2.5.0", image=f"registry.example.com/acme/web@{digest}"
        )
        overlay = show(remote, OVERLAY.format(env="dev"))
        assert f"digest: {digest} # pinned by Ritmo" in overlay
        assert "newTag:" not in overlay
        rendered = _render(kubectl, remote, tmp_path, "dev")
        assert f"image: registry.example.com/acme/web@{digest}" in rendered

    def test_no_image_no_pin(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()
        body = artifact_body(version="2.1.0")
        del body["image"]
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 201
        assert resp.json["promotions"] == []
        assert resp.json["promotion_status"] == "dev"
        assert len(commits_since(remote, base)) == 1

    def test_missing_overlay_is_reported_not_fatal(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        body = _register(client, tokens["ci"], name="api", version="1.0.0")
        assert body["promotions"] == [
            {
                "environment": "dev",
                "error": "no overlay at apps/api/overlays/dev/kustomization.yaml; create it, "
                "or point apps.api.overlay in the policy at the file to edit",
            }
        ]
        assert body["promotion_status"] == "dev"
        assert "apps/api" not in git(remote, "ls-tree", "-r", "--name-only", "main")

    def test_helm_values_target(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path
    ) -> None:
        values = "# chart values\nimage:\n  repository: registry.example.com/acme/chart\n"
        _add_app(
            remote,
            tmp_path,
            {
                f"apps/chart/{env}/values.yaml": values + '  tag: "0.0.1"\n'
                for env in ("dev", "staging")
            },
        )
        body = _register(client, tokens["ci"], name="chart", version="3.1.0")
        assert [p["environment"] for p in body["promotions"]] == ["dev", "staging"]  # type: ignore[attr-defined]
        assert show(remote, "main:apps/chart/staging/values.yaml") == values + '  tag: "3.1.0"\n'


class TestPromoteEndpoint:
    """POST /api/v1/artifacts/{id}/promote: direct when policy allows, 409 otherwise."""

    def _manual(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path
    ) -> str:
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
        body = _register(client, tokens["ci"], name="manual", version="1.0.0")
        assert body["promotion_status"] == "dev"
        return str(body["id"])

    def test_direct_promotion(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        art = self._manual(client, tokens, remote, tmp_path)
        base = git(remote, "rev-parse", "main").strip()
        resp = client.post(
            f"/api/v1/artifacts/{art}/promote",
            json={
                "from_environment": "dev",
                "to_environment": "staging",
                "notes": "Ready for staging",
                "approval_ticket": "JIRA-1234",
                "approved_by": ["alice@co.com", "bob@co.com"],
            },
            headers={**bearer(tokens["promoter"]), "X-Correlation-ID": "rel-7"},
        )
        assert resp.status_code == 201, resp.json
        assert resp.json["status"] == "promoted"
        assert resp.json["environment"] == "staging"
        assert commits_since(remote, base) == [resp.json["commit"]]
        verify_commit(remote, resp.json["commit"], settings.gnupghome)
        found = trailers(remote, resp.json["commit"])
        assert found == {
            "Ritmo-Promotion": "dev -> staging",
            "Ritmo-Artifact": art,
            "Ritmo-Promoted-By": "release-bot",
            "Ritmo-Approval-Ticket": "JIRA-1234",
            "Ritmo-Correlation-Id": "rel-7",
            # The overlay a person added pins 0.1.0, which Ritmo never recorded.
            "Ritmo-Replaces": "0.1.0 (unrecorded)",
        }
        # approved_by in a body is a note in the message, never an approval trailer.
        message = git(remote, "log", "-1", "--format=%B", resp.json["commit"])
        assert "a note, not an approval" in message
        assert "Ritmo-Approved-By" not in message
        assert 'newTag: "1.0.0"' in show(
            remote, "main:apps/manual/overlays/staging/kustomization.yaml"
        )
        shown = client.get(f"/api/v1/artifacts/{art}", headers=bearer(tokens["reader"])).json
        assert shown["promotion_status"] == "staging"
        promotion = resp.json["promotion"]
        assert promotion["approved_by"] == [] and promotion["approval_ticket"] == "JIRA-1234"

    @pytest.mark.parametrize(
        ("ask", "phrase"),
        [
            ({"from": "staging", "to": "production"}, "is in dev, not staging"),
            ({"from": "dev", "to": "production"}, "skips an environment; promote to staging first"),
            ({"from": "dev", "to": "qa"}, "unknown environment 'qa'"),
        ],
    )
    def test_refusals_write_nothing(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        tmp_path: Path,
        ask: dict[str, str],
        phrase: str,
    ) -> None:
        art = self._manual(client, tokens, remote, tmp_path)
        refs = remote_refs(remote)
        resp = client.post(
            f"/api/v1/artifacts/{art}/promote", json=ask, headers=bearer(tokens["promoter"])
        )
        assert resp.status_code == 409
        assert phrase in resp.json["error"]
        assert remote_refs(remote) == refs

    def test_frozen_target(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path
    ) -> None:
        art = self._manual(client, tokens, remote, tmp_path)
        promoter = bearer(tokens["promoter"])
        ok = client.post(
            f"/api/v1/artifacts/{art}/promote",
            json={"from": "dev", "to": "staging"},
            headers=promoter,
        )
        assert ok.status_code == 201
        refs = remote_refs(remote)
        resp = client.post(
            f"/api/v1/artifacts/{art}/promote",
            json={"from": "staging", "to": "production"},
            headers=promoter,
        )
        assert resp.status_code == 409
        assert "production is frozen until" in resp.json["error"]
        assert "(release train)" in resp.json["error"]
        assert remote_refs(remote) == refs

    def test_approval_rule_is_not_bypassed(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        """approved_by in the body does not let a promotion past its approval rule."""
        body = _register(client, tokens["ci"], version="4.0.0")
        main = git(remote, "rev-parse", "main").strip()
        resp = client.post(
            f"/api/v1/artifacts/{body['id']}/promote",
            json={"from": "staging", "to": "production", "approved_by": ["ops", "security"]},
            headers=bearer(tokens["promoter"]),
        )
        assert resp.status_code == 202
        assert resp.json["request"]["status"] == "pending"
        assert resp.json["request"]["approvers"] == []
        assert git(remote, "rev-parse", "main").strip() == main

    def test_scope_and_body(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        body = _register(client, tokens["ci"], version="5.0.0")
        url = f"/api/v1/artifacts/{body['id']}/promote"
        denied = client.post(
            url, json={"from": "dev", "to": "staging"}, headers=bearer(tokens["ci"])
        )
        assert denied.status_code == 403
        assert "promotions:write" in denied.json["error"]
        promoter = bearer(tokens["promoter"])
        for bad, field in [
            ({"to": "staging"}, "from (or from_environment) is required"),
            ({"from": "dev", "from_environment": "qa", "to": "staging"}, "disagree"),
            ({"from": "dev", "to": "staging", "force": True}, "force"),
            ({"from": "dev", "to": "staging", "notes": "a\nRitmo-Approved-By: x"}, "notes"),
        ]:
            resp = client.post(url, json=bad, headers=promoter)
            assert resp.status_code == 422, bad
            assert field in str(resp.json), bad
        missing = client.post(
            "/api/v1/artifacts/art-00000000000000000000/promote",
            json={"from": "dev", "to": "staging"},
            headers=promoter,
        )
        assert missing.status_code == 404


class TestPolicyAtStart:
    """The policy comes from the default branch; an invalid one stops the server."""

    @pytest.fixture
    def remote_policy(self) -> str:
        return "environments:\n  - {name: dev}\npromotion_rules:\n  - {from: dev, to: qa}\n"

    def test_invalid_policy_refuses_to_start(self, settings: Settings) -> None:
        with pytest.raises(ConfigError) as caught:
            build_runtime(settings)
        message = str(caught.value)
        assert "the policy on main is invalid" in message
        assert ".ritmo/policy.yaml:4:" in message
        assert "\n" not in message


class TestPromotionsFromGit:
    """Promotions and statuses come back from commit trailers when the index is lost."""

    def test_rebuilt_after_database_loss(
        self, settings: Settings, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        from bot.app import create_app

        body = _register(client, tokens["ci"], version="6.0.0")
        reader = bearer(tokens["reader"])
        before = client.get("/api/v1/promotions", headers=reader).json
        assert before["total"] == 2
        db = Path(settings.index_url.removeprefix("sqlite:///"))
        for suffix in ["", "-wal", "-shm"]:
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        rebuilt = build_runtime(settings)
        fresh = create_app(settings, rebuilt).test_client()
        # Tokens are not in git: they went with the database and are made again by hand.
        reader = bearer(rebuilt.tokens.create("dashboard", ["artifacts:read"]))
        assert fresh.get("/api/v1/promotions", headers=reader).json == before
        again = fresh.get(f"/api/v1/artifacts/{body['id']}", headers=reader).json
        assert again["promotion_status"] == "staging"
        one = before["items"][0]
        assert fresh.get(f"/api/v1/promotions/{one['id']}", headers=reader).json == one
