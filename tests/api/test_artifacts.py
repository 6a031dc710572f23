"""POST/GET /api/v1/artifacts against a real bare remote and a real gpg key."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import sqlalchemy as sa
from flask.testing import FlaskClient

from bot.config import Settings
from bot.manifests.records import artifact_id
from bot.runtime import Runtime
from bot.store.tokens import api_tokens
from tests.helpers import (
    artifact_body,
    bearer,
    checksum,
    commits_since,
    git,
    remote_refs,
    show,
    trailers,
    verify_commit,
)


class TestRegister:
    """A new artifact becomes one signed commit holding its record."""

    def test_created_record_and_commit(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, settings: Settings
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()
        resp = client.post(
            "/api/v1/artifacts",
            json=artifact_body(),
            headers={**bearer(tokens["ci"]), "X-Correlation-ID": "ci-run-42"},
        )
        assert resp.status_code == 201, resp.json
        body = resp.json
        assert body["id"] == artifact_id("web", "1.2.3")
        assert body["promotion_status"] == "dev"
        assert body["signature"] == {"status": "unsigned"}
        assert resp.headers["Location"] == f"/api/v1/artifacts/{body['id']}"
        assert resp.headers["X-Correlation-ID"] == "ci-run-42"

        assert commits_since(remote, base) == [body["commit"]]
        verify_commit(remote, body["commit"], settings.gnupghome)
        record = show(remote, f"{body['commit']}:artifacts/web/1.2.3.yaml")
        assert record.startswith("apiVersion: ritmo.dev/v1\nkind: Artifact\n")
        assert f"checksum: {checksum('web-1.2.3')}\n" in record
        assert "repository: acme/web" in record
        changed = git(remote, "show", "--name-only", "--format=", body["commit"]).split()
        assert changed == ["artifacts/web/1.2.3.yaml"]
        assert trailers(remote, body["commit"]) == {
            "Ritmo-Artifact": body["id"],
            "Ritmo-Build": "build-1.2.3",
            "Ritmo-Registered-By": "ci",
            "Ritmo-Correlation-Id": "ci-run-42",
        }
        author = git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", body["commit"])
        assert author.strip() == "Ritmo <ritmo@example.com>|Ritmo <ritmo@example.com>"

    def test_correlation_id_generated_when_absent(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 201
        generated = trailers(remote, resp.json["commit"])["Ritmo-Correlation-Id"]
        assert str(uuid.UUID(generated)) == generated == resp.headers["X-Correlation-ID"]

    def test_version_from_metadata(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        body = artifact_body(version=None)
        del body["version"]
        body["metadata"]["version"] = "2.0.0"
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        assert resp.json["version"] == "2.0.0"
        assert resp.json["id"] == artifact_id("web", "2.0.0")


class TestImmutability:
    """Same payload: same id, no new commit. Same name+version, other content: 409."""

    def test_identical_payload_is_200_without_commit(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        first = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        refs = remote_refs(remote)
        again = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert again.status_code == 200
        assert again.json["id"] == first.json["id"]
        assert again.json["commit"] == first.json["commit"]
        assert again.json["created_at"] == first.json["created_at"]
        assert remote_refs(remote) == refs

    def test_other_content_is_409_and_writes_nothing(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        refs = remote_refs(remote)
        changed = artifact_body(checksum=checksum("tampered"))
        resp = client.post("/api/v1/artifacts", json=changed, headers=bearer(tokens["ci"]))
        assert resp.status_code == 409
        assert "immutable" in resp.json["error"]
        assert "new version" in resp.json["error"]
        assert remote_refs(remote) == refs


class TestRead:
    """GET one artifact, and the filtered, paginated list."""

    def _register(self, client: FlaskClient, token: str, name: str, version: str) -> str:
        resp = client.post(
            "/api/v1/artifacts", json=artifact_body(name, version), headers=bearer(token)
        )
        assert resp.status_code == 201, resp.json
        return str(resp.json["id"])

    def test_show_and_404(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        art = self._register(client, tokens["ci"], "web", "1.0.0")
        resp = client.get(f"/api/v1/artifacts/{art}", headers=bearer(tokens["reader"]))
        assert resp.status_code == 200
        assert (resp.json["name"], resp.json["version"]) == ("web", "1.0.0")
        missing = client.get("/api/v1/artifacts/art-nope", headers=bearer(tokens["reader"]))
        assert missing.status_code == 404
        assert "art-nope" in missing.json["error"]

    def test_filters_and_pages(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        for v in ["1.0.0", "1.1.0", "1.2.0"]:
            self._register(client, tokens["ci"], "web", v)
        self._register(client, tokens["ci"], "api", "9.0.0")
        reader = bearer(tokens["reader"])

        page1 = client.get("/api/v1/artifacts?name=web&per_page=2", headers=reader)
        assert page1.status_code == 200
        assert page1.json["total"] == 3
        assert [i["version"] for i in page1.json["items"]] == ["1.2.0", "1.1.0"]
        assert page1.headers["Link"] == (
            '</api/v1/artifacts?name=web&per_page=2&page=2>; rel="next"'
        )
        page2 = client.get("/api/v1/artifacts?name=web&per_page=2&page=2", headers=reader)
        assert [i["version"] for i in page2.json["items"]] == ["1.0.0"]
        assert "Link" not in page2.headers

        one = client.get("/api/v1/artifacts?name=web&version=1.1.0", headers=reader)
        assert [i["version"] for i in one.json["items"]] == ["1.1.0"]
        dev = client.get("/api/v1/artifacts?promotion_status=dev", headers=reader)
        assert dev.json["total"] == 4
        staging = client.get("/api/v1/artifacts?promotion_status=staging", headers=reader)
        assert staging.json["total"] == 0

    def test_bad_query_is_400(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        reader = bearer(tokens["reader"])
        for query, field in [
            ("per_page=0", "per_page"),
            ("per_page=501", "per_page"),
            ("page=x", "page"),
            ("name=../etc", "name"),
            ("sort=desc", "sort"),
        ]:
            resp = client.get(f"/api/v1/artifacts?{query}", headers=reader)
            assert resp.status_code == 400, query
            assert [f["field"] for f in resp.json["fields"]] == [field], query


class TestAuth:
    """Bearer tokens with scopes: 401 without a known token, 403 without the scope."""

    def test_missing_and_unknown_token(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        refs = remote_refs(remote)
        for headers in [{}, bearer("ritmo_not-a-token"), {"Authorization": tokens["ci"]}]:
            resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=headers)
            assert resp.status_code == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/api/v1/artifacts").status_code == 401
        assert remote_refs(remote) == refs

    def test_scopes(self, client: FlaskClient, tokens: dict[str, str], remote: Path) -> None:
        refs = remote_refs(remote)
        for role in ["reader", "promoter"]:
            resp = client.post(
                "/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens[role])
            )
            assert resp.status_code == 403
            assert "artifacts:write" in resp.json["error"]
        assert remote_refs(remote) == refs
        denied = client.get("/api/v1/artifacts", headers=bearer(tokens["promoter"]))
        assert denied.status_code == 403
        assert client.get("/api/v1/artifacts", headers=bearer(tokens["ci"])).status_code == 200
        admin = client.post(
            "/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["admin"])
        )
        assert admin.status_code == 201

    def test_token_database_keeps_hashes_only(
        self, runtime: Runtime, settings: Settings, tokens: dict[str, str]
    ) -> None:
        with runtime.index.engine.connect() as conn:
            rows = [tuple(map(str, r)) for r in conn.execute(sa.select(api_tokens)).all()]
        stored = repr(rows)
        assert len(rows) == len(tokens)
        assert all(token not in stored for token in tokens.values())
        assert all(token.removeprefix("ritmo_") not in stored for token in tokens.values())
        assert all(hashlib.sha256(t.encode()).hexdigest() in stored for t in tokens.values())
        database = (settings.data_dir / "index.sqlite3").read_bytes()
        assert all(token.encode() not in database for token in tokens.values())


class TestReindex:
    """The index is a cache: deleted, it is rebuilt from git and answers the same."""

    def test_same_answers_after_database_loss(
        self, settings: Settings, runtime: Runtime, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        from bot.app import create_app
        from bot.runtime import build_runtime

        for v in ["1.0.0", "1.1.0"]:
            client.post(
                "/api/v1/artifacts", json=artifact_body(version=v), headers=bearer(tokens["ci"])
            )
        reader = bearer(tokens["reader"])
        before_list = client.get("/api/v1/artifacts", headers=reader).json
        art = before_list["items"][0]["id"]
        before_one = client.get(f"/api/v1/artifacts/{art}", headers=reader).json

        db = Path(settings.index_url.removeprefix("sqlite:///"))
        for suffix in ["", "-wal", "-shm"]:
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        rebuilt = build_runtime(settings)
        fresh = create_app(settings, rebuilt).test_client()
        # Tokens are not in git: they went with the database and are made again by hand.
        assert fresh.get("/api/v1/artifacts", headers=reader).status_code == 401
        reader = bearer(rebuilt.tokens.create("dashboard", ["artifacts:read"]))
        assert fresh.get("/api/v1/artifacts", headers=reader).json == before_list
        assert fresh.get(f"/api/v1/artifacts/{art}", headers=reader).json == before_one
