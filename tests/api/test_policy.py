"""PUT /api/v1/policy: validated, judged by the policy in force, written signed or requested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.manifests.packs import object_id
from bot.runtime import Runtime
from bot.store.reindex import reindex
from tests.helpers import bearer, git, remote_refs, sample_policy, show, trailers, verify_commit

# The policy in force: production needs one approver from each of two groups, and so
# (no policy_changes rule) does a change to the policy.
GUARDED = sample_policy("guarded")

# Production without approvals: the weakening change an attacker with admin would send.
WEAKENED = sample_policy("weakened")

# A policy whose own rule lets admins change it without approval.
OPEN_CHANGES = GUARDED + "policy_changes: {requires_approval: false}\n"


def put(client: FlaskClient, token: str, text: str, reason: str = "tighten") -> Any:
    return client.put(
        "/api/v1/policy", json={"policy": text, "reason": reason}, headers=bearer(token)
    )


def main_policy(remote: Path) -> str:
    return show(remote, "main:.ritmo/policy.yaml")


class TestDirect:
    @pytest.fixture
    def remote_policy(self) -> str:
        return OPEN_CHANGES

    def test_no_approval_needed_is_one_signed_commit_with_trailers(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        signing_key: tuple[Path, str],
        runtime: Runtime,
    ) -> None:
        before = remote_refs(remote)["refs/heads/main"]
        resp = client.put(
            "/api/v1/policy",
            json={"policy": WEAKENED, "reason": "drop production approvals for the drill"},
            headers={**bearer(tokens["admin"]), "X-Correlation-ID": "cid-policy-1"},
        )
        assert resp.status_code == 201, resp.get_json()
        body = resp.get_json()
        blob = object_id("blob", WEAKENED.encode())
        assert body["status"] == "changed" and body["policy"] == blob
        commit = body["commit"]
        assert git(remote, "rev-list", f"{before}..main").split() == [commit]
        verify_commit(remote, commit, signing_key[0])
        said = trailers(remote, commit)
        assert said["Ritmo-Policy"] == blob
        assert said["Ritmo-Policy-Changed-By"] == "admin"
        assert said["Ritmo-Reason"] == "drop production approvals for the drill"
        assert said["Ritmo-Correlation-Id"] == "cid-policy-1"
        assert main_policy(remote) == WEAKENED
        assert git(remote, "rev-parse", "main:.ritmo/policy.yaml").strip() == blob
        # The server follows: the new policy is the one in force.
        assert runtime.policy().rule("web", "staging", "production").requires_approval is False

    def test_same_text_is_unchanged(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        before = remote_refs(remote)
        resp = put(client, tokens["admin"], OPEN_CHANGES)
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "unchanged"
        assert remote_refs(remote) == before

    def test_invalid_yaml_is_422_with_line_and_column(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        before = remote_refs(remote)
        broken = "environments:\n  - {name: dev}\npromotion_rules:\n  - {from: dev, to: nowhere}\n"
        resp = put(client, tokens["admin"], broken)
        assert resp.status_code == 422
        messages = [f["message"] for f in resp.get_json()["fields"]]
        assert any(m.startswith("4:") and "unknown environment 'nowhere'" in m for m in messages)
        resp = put(client, tokens["admin"], "environments: [{name: dev}\n")
        assert resp.status_code == 422
        assert resp.get_json()["fields"][0]["message"].split(":")[0].isdigit()
        assert "not valid YAML" in resp.get_json()["fields"][0]["message"]
        assert remote_refs(remote) == before

    def test_non_admin_token_is_403(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        before = remote_refs(remote)
        resp = put(client, tokens["promoter"], WEAKENED)
        assert resp.status_code == 403
        assert "admin" in resp.get_json()["error"]
        assert remote_refs(remote) == before

    def test_body_fields_are_checked(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        before = remote_refs(remote)
        resp = client.put(
            "/api/v1/policy", json={"policy": WEAKENED, "reason": "two\nlines"},
            headers=bearer(tokens["admin"]),
        )  # fmt: skip
        assert resp.status_code == 422
        assert resp.get_json()["fields"][0]["field"] == "reason"
        resp = client.put("/api/v1/policy", json={"reason": "x"}, headers=bearer(tokens["admin"]))
        assert resp.status_code == 422
        assert resp.get_json()["fields"][0]["field"] == "policy"
        assert remote_refs(remote) == before


class TestApproval:
    @pytest.fixture
    def remote_policy(self) -> str:
        return GUARDED

    def test_weakening_is_judged_by_the_policy_in_force(
        self,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
        runtime: Runtime,
        signing_key: tuple[Path, str],
    ) -> None:
        """WEAKENED would let production change without approval; the policy it replaces
        has no policy_changes rule, so the change takes production's approvers."""
        store = runtime.tokens
        alice = store.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
        alice2 = store.create("carol", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
        bob = store.create("bob", [Scope.PROMOTIONS_APPROVE], ["security-team"])
        main_before = remote_refs(remote)["refs/heads/main"]

        resp = put(client, tokens["admin"], WEAKENED, "weekend drill")
        assert resp.status_code == 202, resp.get_json()
        request = resp.get_json()["request"]
        assert request["id"].startswith("req-") and request["change"] == "policy"
        assert request["status"] == "pending" and request["progress"] == "0/2 approvals"
        assert resp.headers["Location"] == f"/api/v1/promotions/{request['id']}"
        assert remote_refs(remote)["refs/heads/main"] == main_before  # nothing in force yet
        assert runtime.policy().rule("web", "staging", "production").requires_approval

        # Asking again for the same change is the same request.
        again = put(client, tokens["admin"], WEAKENED, "weekend drill")
        assert again.status_code == 202 and again.get_json()["request"]["id"] == request["id"]

        # The requester cannot approve; two from one group are not one from each.
        url = f"/api/v1/promotions/{request['id']}/approvals"
        assert client.post(url, json={}, headers=bearer(tokens["admin"])).status_code == 403
        first = client.post(url, json={"state": "approved"}, headers=bearer(alice))
        assert first.status_code == 201, first.get_json()
        assert first.get_json()["progress"] == "1/2 approvals"
        second = client.post(url, json={"state": "approved"}, headers=bearer(alice2))
        assert second.get_json()["status"] == "pending"
        assert remote_refs(remote)["refs/heads/main"] == main_before

        done = client.post(url, json={"state": "approved"}, headers=bearer(bob))
        assert done.status_code == 201, done.get_json()
        merged = done.get_json()
        assert merged["status"] == "merged"
        merge = merged["merge_commit"]
        assert git(remote, "rev-parse", "main").strip() == merge
        verify_commit(remote, merge, signing_key[0])
        said = trailers(remote, merge)
        assert said["Ritmo-Policy"] == object_id("blob", WEAKENED.encode())
        assert said["Ritmo-Approved-By"] == "alice, bob"  # carol filled no new slot
        assert said["Ritmo-Request"] == request["id"]
        assert said["Ritmo-Policy-Changed-By"] == "admin"
        assert said["Ritmo-Reason"] == "weekend drill"
        assert main_policy(remote) == WEAKENED
        assert len(git(remote, "rev-list", "--parents", "-1", merge).split()) == 3  # a merge
        assert "refs/heads/ritmo/promote/_policy/_policy" not in remote_refs(remote)
        assert runtime.policy().rule("web", "staging", "production").requires_approval is False

    def test_policy_changes_rule_decides(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, runtime: Runtime
    ) -> None:
        """An explicit policy_changes rule replaces the fallback: here one release manager."""
        stricter = GUARDED.replace(
            "groups:\n",
            "policy_changes:\n  requires_approval: true\n"
            "  approvals: [{group: release-managers, count: 1}]\n  approval_timeout: 2d\n"
            "groups:\n  release-managers: {kind: local}\n",
        )
        # Changing to `stricter` is judged by GUARDED (two approvers) ...
        resp = put(client, tokens["admin"], stricter)
        assert resp.status_code == 202
        request = resp.get_json()["request"]
        assert request["progress"] == "0/2 approvals"
        ops = runtime.tokens.create("olga", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
        sec = runtime.tokens.create("sam", [Scope.PROMOTIONS_APPROVE], ["security-team"])
        url = f"/api/v1/promotions/{request['id']}/approvals"
        client.post(url, json={}, headers=bearer(ops))
        assert client.post(url, json={}, headers=bearer(sec)).get_json()["status"] == "merged"
        assert main_policy(remote) == stricter
        # ... and the next change by `stricter`: one release manager, not ops or security.
        resp = put(client, tokens["admin"], GUARDED)
        assert resp.status_code == 202
        request = resp.get_json()["request"]
        assert request["progress"] == "0/1 approvals"
        url = f"/api/v1/promotions/{request['id']}/approvals"
        refused = client.post(url, json={}, headers=bearer(ops))
        assert refused.status_code == 403 and "release-managers" in refused.get_json()["error"]
        rm = runtime.tokens.create("rita", [Scope.PROMOTIONS_APPROVE], ["release-managers"])
        assert client.post(url, json={}, headers=bearer(rm)).get_json()["status"] == "merged"
        assert main_policy(remote) == GUARDED

    def test_a_newer_change_supersedes_the_pending_one(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path
    ) -> None:
        first = put(client, tokens["admin"], WEAKENED).get_json()["request"]
        second = put(client, tokens["admin"], OPEN_CHANGES).get_json()["request"]
        assert second["id"] != first["id"]
        shown = client.get(f"/api/v1/promotions/{first['id']}", headers=bearer(tokens["admin"]))
        assert shown.get_json()["status"] == "superseded"
        assert shown.get_json()["superseded_by"] == second["id"]

    def test_requests_are_rebuilt_from_git(
        self, client: FlaskClient, tokens: dict[str, str], remote: Path, runtime: Runtime
    ) -> None:
        """The index is a cache: a merged policy change request, and a pending one with its
        review, come back from git alone, and the pending one can still be approved."""
        ops = runtime.tokens.create("olga", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
        sec = runtime.tokens.create("sam", [Scope.PROMOTIONS_APPROVE], ["security-team"])
        first = put(client, tokens["admin"], OPEN_CHANGES).get_json()["request"]
        url = f"/api/v1/promotions/{first['id']}/approvals"
        client.post(url, json={}, headers=bearer(ops))
        assert client.post(url, json={}, headers=bearer(sec)).get_json()["status"] == "merged"
        # OPEN_CHANGES in force asks no approval for GUARDED; GUARDED then asks two.
        assert put(client, tokens["admin"], GUARDED).status_code == 201
        second = put(client, tokens["admin"], WEAKENED).get_json()["request"]
        url = f"/api/v1/promotions/{second['id']}/approvals"
        assert client.post(url, json={}, headers=bearer(ops)).status_code == 201

        reindex(runtime.index, runtime.mirror, runtime.requests_index)
        merged = runtime.requests_index.get(first["id"])
        assert merged is not None and merged.status == "merged"
        assert merged.app == "_policy" and merged.version == first["version"]
        pending = runtime.requests_index.get(second["id"])
        assert pending is not None and pending.status == "pending"
        assert [r.reviewer for r in runtime.requests_index.reviews_of(second["id"])] == ["olga"]
        done = client.post(url, json={}, headers=bearer(sec)).get_json()
        assert done["status"] == "merged"
        assert main_policy(remote) == WEAKENED
