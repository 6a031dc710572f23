"""Promotion requests on the local forge, end to end: request, reviews, a signed merge."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.config import Settings
from bot.runtime import Runtime
from bot.store.tokens import TokenStore
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

POLICY = TWO_APPROVERS_POLICY
BRANCH = "refs/heads/ritmo/promote/web/production"
PRODUCTION = "apps/web/overlays/production/kustomization.yaml"


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def people(runtime: Runtime, tokens: dict[str, str]) -> dict[str, str]:
    """Approver tokens: the token's name is the person, its groups count."""
    store = runtime.tokens
    approve = [Scope.PROMOTIONS_APPROVE]
    return {
        "alice": store.create("alice", approve, ["ops-team"]),
        "bob": store.create("bob", approve, ["security-team"]),
        "carol": store.create("carol", approve, ["ops-team"]),
        "mallory": store.create("mallory", approve),
        # The promoter approving its own request: in a group, still never counts.
        "release-bot": _promoter_approves(store, tokens),
    }


def _promoter_approves(store: TokenStore, tokens: dict[str, str]) -> str:
    """The promoter's one identity (names are unique) also approves, in both groups."""
    store.revoke("release-bot")
    scopes = [Scope.PROMOTIONS_WRITE, Scope.PROMOTIONS_APPROVE]
    tokens["promoter"] = store.create("release-bot", scopes, ["ops-team", "security-team"])
    return tokens["promoter"]


def _in_staging(client: FlaskClient, tokens: dict[str, str], version: str = "2.0.0") -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(tokens["ci"])
    )
    assert resp.status_code == 201 and resp.json["promotion_status"] == "staging", resp.json
    return str(resp.json["id"])


def _request(client: FlaskClient, tokens: dict[str, str], art: str, **extra: Any) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": "staging", "to": "production", **extra},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 202, resp.json
    assert resp.json["status"] == "pending"
    return dict(resp.json["request"])


def _review(client: FlaskClient, token: str, request_id: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/promotions/{request_id}/approvals", json=body or {}, headers=bearer(token)
    )


def _main(remote: Path) -> str:
    return git(remote, "rev-parse", "main").strip()


class TestApprovalFlow:
    """Two approvers from two groups: the request merges as a signed merge commit."""

    def test_request_reviews_merge(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        people: dict[str, str],
        remote: Path,
        settings: Settings,
        kubectl: str,
        tmp_path: Path,
    ) -> None:
        art = _in_staging(client, tokens)
        before = _main(remote)
        req = _request(client, tokens, art, approval_ticket="CHG-42", notes="staging soaked")
        assert req["progress"] == "0/2 approvals"
        description = req["description"]
        assert "## Promote web 2.0.0 to production" in description
        assert f"`{art}`" in description and "`abc123`" in description
        assert "| Now in production | `0.1.0` |" in description
        assert '-    newTag: "0.1.0" # pinned by Ritmo' in description
        assert '+    newTag: "2.0.0" # pinned by Ritmo' in description
        assert "Needs 1 from ops-team and 1 from security-team, by " in description
        assert req["missing"] == [
            {"group": "ops-team", "count": 1},
            {"group": "security-team", "count": 1},
        ]
        head = req["head"]
        assert git(remote, "rev-parse", BRANCH).strip() == head
        assert git(remote, "rev-parse", f"{head}^").strip() == before
        verify_commit(remote, head, settings.gnupghome)
        assert trailers(remote, head)["Ritmo-Promotion-Request"] == "staging -> production"
        assert '"2.0.0"' in show(remote, f"{head}:{PRODUCTION}")
        assert _main(remote) == before

        first = _review(client, people["alice"], req["id"], commit=head)
        assert first.status_code == 201, first.json
        assert first.json["status"] == "pending"
        assert first.json["progress"] == "1/2 approvals"
        assert first.json["missing"] == [{"group": "security-team", "count": 1}]
        review = git(remote, "rev-parse", BRANCH).strip()
        verify_commit(remote, review, settings.gnupghome)
        assert trailers(remote, review)["Ritmo-Reviewer"] == "alice"
        assert _main(remote) == before

        second = _review(client, people["bob"], req["id"])
        assert second.status_code == 201, second.json
        assert second.json["status"] == "merged"
        # Merged, the request still says what it met and who approved it.
        met = {"progress": "2/2 approvals", "missing": [], "approvers": ["alice", "bob"]}
        assert {k: second.json.get(k) for k in met} == met
        merge = second.json["merge_commit"]
        assert _main(remote) == merge
        assert git(remote, "rev-parse", f"{merge}^1").strip() == before
        assert git(remote, "rev-parse", f"{merge}^2").strip() != head  # the tip with reviews
        assert git(remote, "merge-base", "--is-ancestor", head, merge) == ""
        verify_commit(remote, merge, settings.gnupghome)
        found = trailers(remote, merge)
        assert found["Ritmo-Promotion"] == "staging -> production"
        assert found["Ritmo-Approved-By"] == "alice, bob"
        assert found["Ritmo-Approval-Ticket"] == "CHG-42"
        assert found["Ritmo-Request"] == req["id"]
        assert found["Ritmo-Promoted-By"] == "release-bot"
        assert BRANCH not in remote_refs(remote)

        checkout = tmp_path / "checkout"
        git(tmp_path, "clone", "--quiet", str(remote), str(checkout))
        rendered = subprocess.run(
            [kubectl, "kustomize", str(checkout / "apps/web/overlays/production")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "image: registry.example.com/acme/web:2.0.0" in rendered

        reader = bearer(tokens["reader"])
        shown = client.get(f"/api/v1/artifacts/{art}", headers=reader).json
        assert shown["promotion_status"] == "production"
        listed = client.get("/api/v1/promotions?env=production", headers=reader).json
        assert [(i["id"], i["status"]) for i in listed["items"]] == [(req["id"], "merged")]
        assert listed["items"][0]["merge_commit"] == merge
        assert {k: listed["items"][0].get(k) for k in met} == met
        got = client.get(f"/api/v1/promotions/{req['id']}", headers=reader).json
        assert {k: got.get(k) for k in met} == met


class TestRefusals:
    """Reviews that must not count are refused, and nothing reaches the default branch."""

    @pytest.mark.parametrize(
        ("who", "status", "phrase"),
        [
            ("release-bot", 403, "requested this promotion"),
            ("mallory", 403, "in none of the approver groups"),
        ],
    )
    def test_who_may_not_approve(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        people: dict[str, str],
        remote: Path,
        who: str,
        status: int,
        phrase: str,
    ) -> None:
        req = _request(client, tokens, _in_staging(client, tokens))
        refs = remote_refs(remote)
        resp = _review(client, people[who], req["id"])
        assert resp.status_code == status
        assert phrase in resp.json["error"]
        assert remote_refs(remote) == refs

    def test_stale_head(
        self, client: FlaskClient, tokens: dict[str, str], people: dict[str, str], remote: Path
    ) -> None:
        req = _request(client, tokens, _in_staging(client, tokens))
        refs = remote_refs(remote)
        resp = _review(client, people["alice"], req["id"], commit=_main(remote))
        assert resp.status_code == 409
        assert "not the request's head" in resp.json["error"]
        assert remote_refs(remote) == refs

    def test_changes_requested_blocks(
        self, client: FlaskClient, tokens: dict[str, str], people: dict[str, str], remote: Path
    ) -> None:
        req = _request(client, tokens, _in_staging(client, tokens))
        before = _main(remote)
        blocked = _review(client, people["carol"], req["id"], state="changes_requested")
        assert blocked.status_code == 201
        for who in ("alice", "bob"):
            resp = _review(client, people[who], req["id"])
        assert resp.json["status"] == "pending"
        assert resp.json["decision"] == "blocked"
        assert resp.json["blocked_by"] == ["carol"]
        assert _main(remote) == before

    def test_approved_by_in_body_is_a_note(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        art = _in_staging(client, tokens)
        before = _main(remote)
        req = _request(client, tokens, art, approved_by=["alice", "bob"])
        assert req["status"] == "pending"
        assert req["approvers"] == []
        assert req["progress"] == "0/2 approvals"
        message = git(remote, "log", "-1", "--format=%B", req["head"])
        assert "a note, not an approval" in message
        assert _main(remote) == before

    def test_skipped_stage(self, client: FlaskClient, tokens: dict[str, str], remote: Path) -> None:
        resp = client.post(
            "/api/v1/artifacts", json=artifact_body(version="3.0.0"), headers=bearer(tokens["ci"])
        )
        refs = remote_refs(remote)
        skip = client.post(
            f"/api/v1/artifacts/{resp.json['id']}/promote",
            json={"from": "dev", "to": "production"},
            headers=bearer(tokens["promoter"]),
        )
        assert skip.status_code == 409
        assert remote_refs(remote) == refs


class TestLifecycle:
    """A newer request supersedes an open one; a request past its timeout expires."""

    def test_supersede(
        self, client: FlaskClient, tokens: dict[str, str], people: dict[str, str], remote: Path
    ) -> None:
        old = _request(client, tokens, _in_staging(client, tokens, "2.0.0"))
        _review(client, people["alice"], old["id"])
        new = _request(client, tokens, _in_staging(client, tokens, "2.1.0"))
        assert git(remote, "rev-parse", BRANCH).strip() == new["head"]
        assert trailers(remote, new["head"])["Ritmo-Supersedes"] == old["id"]
        reader = bearer(tokens["reader"])
        gone = client.get(f"/api/v1/promotions/{old['id']}", headers=reader).json
        assert gone["status"] == "superseded"
        assert gone["superseded_by"] == new["id"]
        # Closed, it shows where it stood: alice's approval, bob's still missing.
        assert (gone["progress"], gone["approvers"]) == ("1/2 approvals", ["alice"])
        assert gone["missing"] == [{"group": "security-team", "count": 1}]
        late = _review(client, people["bob"], old["id"])
        assert late.status_code == 409
        assert new["progress"] == "0/2 approvals"  # the old approval does not carry over

    def test_asking_again_returns_the_open_request(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        """A retried ask (or the same ask at another replica) opens nothing new."""
        art = _in_staging(client, tokens, "2.0.0")
        first = _request(client, tokens, art)
        before = remote_refs(remote)
        again = _request(client, tokens, art)
        assert again["id"] == first["id"] and again["status"] == "pending"
        assert remote_refs(remote) == before  # no new branch commit, nothing superseded
        reader = bearer(tokens["reader"])
        listed = client.get("/api/v1/promotions?env=production", headers=reader).json
        assert [i["id"] for i in listed["items"]] == [first["id"]]

    def test_listing_pages_requests_and_direct_promotions_together(
        self, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        """Newest first across both kinds, paged in the database: the pages put together
        are the whole list, and `total` counts both."""
        for version in ("2.0.0", "2.1.0"):
            _request(client, tokens, _in_staging(client, tokens, version))  # 2.1.0 supersedes
        reader = bearer(tokens["reader"])
        whole = client.get("/api/v1/promotions?per_page=500", headers=reader).json
        kinds = [("request" if i["id"].startswith("req-") else "promotion") for i in whole["items"]]
        assert kinds.count("request") == 2 and kinds.count("promotion") == whole["total"] - 2
        assert whole["total"] == len(whole["items"]) >= 4
        stamps = [i.get("opened_at") or i.get("promoted_at") for i in whole["items"]]
        assert stamps == sorted(stamps, reverse=True)
        paged: list[str] = []
        for page in range(1, whole["total"] // 2 + 2):
            got = client.get(f"/api/v1/promotions?per_page=2&page={page}", headers=reader).json
            assert got["total"] == whole["total"]
            paged += [i["id"] for i in got["items"]]
        assert paged == [i["id"] for i in whole["items"]]
        superseded = client.get("/api/v1/promotions?status=superseded", headers=reader).json
        assert [i["version"] for i in superseded["items"]] == ["2.0.0"]
        direct = client.get("/api/v1/promotions?status=promoted", headers=reader).json
        assert direct["total"] == whole["total"] - 2
        assert all(not i["id"].startswith("req-") for i in direct["items"])

    def test_expiry(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        runtime: Runtime,
        remote: Path,
        settings: Settings,
    ) -> None:
        req = _request(client, tokens, _in_staging(client, tokens))
        before = _main(remote)
        opened = datetime.strptime(req["opened_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        runtime.requests._clock = lambda: opened + timedelta(days=7) - timedelta(seconds=1)
        assert runtime.requests.expire_due() == []
        runtime.requests._clock = lambda: opened + timedelta(days=7)
        assert runtime.requests.expire_due() == [req["id"]]
        closing = _main(remote)
        assert git(remote, "rev-parse", f"{closing}^").strip() == before
        verify_commit(remote, closing, settings.gnupghome)
        assert trailers(remote, closing)["Ritmo-Request-Closed"] == "expired"
        assert git(remote, "diff", "--name-only", before, closing) == ""
        assert BRANCH not in remote_refs(remote)
        shown = client.get(f"/api/v1/promotions/{req['id']}", headers=bearer(tokens["reader"]))
        assert shown.json["status"] == "expired"


class TestRequestsFromGit:
    """Requests and reviews come back from git when the index is lost."""

    def test_rebuilt_after_database_loss(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        people: dict[str, str],
        runtime: Runtime,
        settings: Settings,
    ) -> None:
        from bot.app import create_app
        from bot.runtime import build_runtime

        merged = _request(client, tokens, _in_staging(client, tokens, "2.0.0"))
        _review(client, people["alice"], merged["id"])
        _review(client, people["bob"], merged["id"])
        superseded = _request(client, tokens, _in_staging(client, tokens, "2.1.0"))
        _review(client, people["carol"], superseded["id"], state="changes_requested")
        opened = _request(client, tokens, _in_staging(client, tokens, "2.2.0"))
        _review(client, people["alice"], opened["id"], commit=opened["head"])

        keys = ("id", "status", "head", "from", "to", "requested_by", "merge_commit",
                "superseded_by", "reviews", "progress", "missing")  # fmt: skip

        def snapshot(c: FlaskClient, reader: dict[str, str]) -> list[dict[str, Any]]:
            items = c.get("/api/v1/promotions?env=production", headers=reader).json["items"]
            return sorted(({k: i.get(k) for k in keys} for i in items), key=lambda i: i["id"])

        before = snapshot(client, bearer(tokens["reader"]))
        assert sorted(i["status"] for i in before) == ["merged", "pending", "superseded"]
        db = Path(settings.index_url.removeprefix("sqlite:///"))
        for suffix in ["", "-wal", "-shm"]:
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        rebuilt = build_runtime(settings)
        fresh = create_app(settings, rebuilt).test_client()
        # Tokens (and so the local forge's groups) are not in git: they went with the
        # database and are made again by hand.
        reader = bearer(rebuilt.tokens.create("dashboard", [Scope.ARTIFACTS_READ]))
        for name, group in (("alice", "ops-team"), ("bob", "security-team"), ("carol", "ops-team")):
            rebuilt.tokens.create(name, [Scope.PROMOTIONS_APPROVE], [group])
        assert snapshot(fresh, reader) == before
