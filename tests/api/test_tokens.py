"""GET/POST/DELETE /api/v1/tokens: tokens in the database, unique names, reserved names,
and a revoke that the next request sees on every instance sharing the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.store.tokens import api_tokens
from tests.helpers import bearer, kill_gpg_agent, remote_refs


def _create(client: FlaskClient, admin: str, **body: object) -> tuple[int, dict[str, object]]:
    resp = client.post("/api/v1/tokens", json=body, headers=bearer(admin))
    return resp.status_code, dict(resp.json or {})


def _fields(body: dict[str, object]) -> list[object]:
    return [f["field"] for f in body["fields"]]  # type: ignore[attr-defined, index]


def _rows(runtime: Runtime) -> list[tuple[str, ...]]:
    """Every stored column but last_used_at (the admin's own call moves that)."""
    columns = [c for c in api_tokens.c if c.name != "last_used_at"]
    with runtime.index.engine.connect() as conn:
        return [tuple(map(str, r)) for r in conn.execute(sa.select(*columns)).all()]


class TestCreate:
    def test_the_secret_is_answered_once_and_works(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
    ) -> None:
        status, body = _create(
            client, tokens["admin"], name="Alice", scopes=["promotions:approve"],
            groups=["ops-team"],
        )  # fmt: skip
        assert status == 201, body
        secret = str(body.pop("token"))
        assert body == {
            "name": "Alice", "scopes": ["promotions:approve"], "groups": ["ops-team"],
            "created_at": body["created_at"], "last_used_at": None,
        }  # fmt: skip
        principal = runtime.tokens.authenticate(secret)
        assert principal is not None and principal.name == "Alice"
        assert principal.groups == frozenset({"ops-team"})
        stored = repr(_rows(runtime))
        assert secret not in stored and hashlib.sha256(secret.encode()).hexdigest() in stored
        listed = client.get("/api/v1/tokens", headers=bearer(tokens["admin"])).json
        assert secret not in repr(listed)
        assert all(t not in repr(listed) for t in tokens.values())
        assert "sha256" not in repr(listed)

    @pytest.mark.parametrize("name", ["alice", "ALICE", "aLiCe"])
    def test_a_name_taken_in_any_case_is_409(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], name: str
    ) -> None:
        runtime.tokens.create("Alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
        before = _rows(runtime)
        status, body = _create(
            client, tokens["admin"], name=name, scopes=["promotions:approve"],
            groups=["security-team"],
        )  # fmt: skip
        assert status == 409, body
        assert _fields(body) == ["name"]
        assert "taken by the token 'Alice'" in str(body["error"])
        assert _rows(runtime) == before

    @pytest.mark.parametrize("name", ["ritmo", "Ritmo", "RITMO", "ritmo[bot]", "Acme-App[bot]"])
    def test_ritmo_and_bot_logins_are_reserved_422(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], name: str
    ) -> None:
        before = _rows(runtime)
        status, body = _create(client, tokens["admin"], name=name, scopes=["promotions:approve"])
        assert status == 422, body
        assert _fields(body) == ["name"]
        assert "reserved" in str(body["error"])
        assert _rows(runtime) == before

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "a b", "scopes": ["admin"]}, "name"),
            ({"name": "", "scopes": ["admin"]}, "name"),
            ({"name": "eve", "scopes": ["promotions:all"]}, "scopes.0"),
            ({"name": "eve", "scopes": []}, "scopes"),
            ({"name": "eve"}, "scopes"),
            ({"name": "eve", "scopes": ["admin"], "groups": ["ops team"]}, "groups"),
            ({"name": "eve", "scopes": ["admin"], "secret": "mine"}, "secret"),
        ],
    )
    def test_bad_input_is_4xx_naming_the_field(
        self,
        client: FlaskClient,
        runtime: Runtime,
        tokens: dict[str, str],
        body: dict[str, object],
        field: str,
    ) -> None:
        before = _rows(runtime)
        resp = client.post("/api/v1/tokens", json=body, headers=bearer(tokens["admin"]))
        assert resp.status_code == 422, resp.json
        assert field in [f["field"] for f in resp.json["fields"]]
        assert _rows(runtime) == before

    def test_admin_only(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        for who in ("ci", "promoter", "reader"):
            headers = bearer(tokens[who])
            assert client.get("/api/v1/tokens", headers=headers).status_code == 403
            made = client.post(
                "/api/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers=headers
            )
            assert made.status_code == 403
            assert client.delete("/api/v1/tokens/ci", headers=headers).status_code == 403


class TestList:
    def test_names_scopes_groups_created_and_last_used(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
    ) -> None:
        bob = runtime.tokens.create("bob", [Scope.PROMOTIONS_APPROVE], ["security-team"])
        listed = client.get("/api/v1/tokens", headers=bearer(tokens["admin"]))
        assert listed.status_code == 200
        items = {t["name"]: t for t in listed.json["items"]}
        assert sorted(items) == ["admin", "bob", "ci", "dashboard", "release-bot"]
        assert listed.json["total"] == 5
        assert items["bob"]["scopes"] == ["promotions:approve"]
        assert items["bob"]["groups"] == ["security-team"]
        assert items["bob"]["last_used_at"] is None
        assert items["admin"]["last_used_at"] is not None  # this very call
        client.get("/api/v1/artifacts", headers=bearer(bob))  # 403, but bob was seen
        again = client.get("/api/v1/tokens", headers=bearer(tokens["admin"])).json
        assert {t["name"]: t for t in again["items"]}["bob"]["last_used_at"] is not None
        assert bob not in repr(again)


class TestRevoke:
    def test_revoked_in_any_case_then_refused(
        self, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        ci = bearer(tokens["ci"])
        assert client.get("/api/v1/artifacts", headers=ci).status_code == 200
        gone = client.delete("/api/v1/tokens/CI", headers=bearer(tokens["admin"]))
        assert gone.status_code == 200, gone.json
        assert gone.json["name"] == "ci" and gone.json["revoked"] is True
        assert client.get("/api/v1/artifacts", headers=ci).status_code == 401
        missing = client.delete("/api/v1/tokens/ci", headers=bearer(tokens["admin"]))
        assert missing.status_code == 404
        assert missing.json["fields"] == [{"field": "name", "message": missing.json["error"]}]
        # The name is free again: a new token for the same person.
        status, _ = _create(client, tokens["admin"], name="ci", scopes=["artifacts:read"])
        assert status == 201


@pytest.fixture
def second(settings: Settings, tmp_path: Path, runtime: Runtime) -> Iterator[Runtime]:
    """Another instance (its own data dir and mirror) on the first one's database."""
    other = settings.model_copy(
        update={"data_dir": tmp_path / "data2", "database_url": settings.index_url}
    )
    rt = build_runtime(other)
    yield rt
    rt.close()
    rt.index.engine.dispose()
    kill_gpg_agent(other.data_dir / "trusted-gnupg")


def revoke_is_seen_by_both(first: Runtime, second: Runtime) -> None:
    """A token used on both instances, revoked through the first one's API: the second
    refuses it on its next request (nothing may cache past a revoke)."""
    one = create_app(first.settings, first).test_client()
    two = create_app(second.settings, second).test_client()
    admin = first.tokens.create("admin", [Scope.ADMIN])
    status, body = _create(one, admin, name="Carol", scopes=["artifacts:read"])
    assert status == 201, body
    carol = bearer(str(body["token"]))
    for client in (one, two, two):  # warm whatever the second might remember
        assert client.get("/api/v1/artifacts", headers=carol).status_code == 200
    # Created on one, taken on the other: the names are one namespace.
    status, body = _create(two, admin, name="carol", scopes=["admin"])
    assert status == 409 and _fields(body) == ["name"], body
    assert one.delete("/api/v1/tokens/carol", headers=bearer(admin)).status_code == 200
    assert two.get("/api/v1/artifacts", headers=carol).status_code == 401
    assert one.get("/api/v1/artifacts", headers=carol).status_code == 401
    assert [t.name for t in second.tokens.all()] == ["admin"]


def test_a_revoke_on_one_instance_is_refused_at_once_on_another(
    runtime: Runtime, second: Runtime, remote: Path
) -> None:
    refs = remote_refs(remote)
    revoke_is_seen_by_both(runtime, second)
    assert remote_refs(remote) == refs  # tokens are not in git
