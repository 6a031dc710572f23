"""The audit log reads only the default branch's own line, and says which events come
from commits Ritmo did not sign (issue 13, finding 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.runtime import Runtime
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer, git, remote_refs

BRANCH = "ritmo/promote/web/production"


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def _forged_approval(remote: Path, tmp_path: Path, artifact: str) -> str:
    """Mallory's unsigned commit on the request branch, dressed as Ritmo's merge."""
    work = tmp_path / "mallory"
    git(tmp_path, "clone", "--quiet", "--branch", BRANCH, str(remote), str(work))
    message = (
        "Promote web 2.0.0 to production\n\n"
        f"Ritmo-Promotion: staging -> production\nRitmo-Artifact: {artifact}\n"
        "Ritmo-Promoted-By: release-bot\nRitmo-Approved-By: alice, bob\n"
    )
    person = ("-c", "user.name=Mallory", "-c", "user.email=mallory@example.com")
    git(work, *person, "-c", "commit.gpgsign=false", "commit", "--quiet", "--allow-empty",
        "-m", message)  # fmt: skip
    git(work, "push", "--quiet", "origin", BRANCH)
    return git(work, "rev-parse", "HEAD").strip()


def test_request_branch_commits_are_refused_and_unsigned_ones_untrusted(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    tmp_path: Path,
) -> None:
    reader = bearer(tokens["reader"])
    alice = runtime.tokens.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    art = client.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"),
                      headers=bearer(tokens["ci"])).json["id"]  # fmt: skip
    opened = client.post(f"/api/v1/artifacts/{art}/promote",
                         json={"from": "staging", "to": "production"},
                         headers=bearer(tokens["promoter"]))  # fmt: skip
    assert opened.status_code == 202, opened.json
    forged = _forged_approval(remote, tmp_path, art)
    # Ritmo sees the foreign commit (and so has it in its mirror) when a review comes.
    moved = client.post(f"/api/v1/promotions/{opened.json['request']['id']}/approvals",
                        json={}, headers=bearer(alice))  # fmt: skip
    assert moved.status_code == 409, moved.json
    assert runtime.mirror.has_commit(forged)
    main = remote_refs(remote)["refs/heads/main"]

    for field in ("until", "since"):
        for value in (forged, BRANCH):
            refused = client.get(f"/api/v1/audit?{field}={value}", headers=reader)
            assert refused.status_code == 422, refused.json
            assert refused.json["fields"][0]["field"] == field
            assert "first-parent line" in refused.json["fields"][0]["message"]
    # Commits of the branch's own line and dates still work; every event there is Ritmo's.
    fine = client.get(f"/api/v1/audit?until={main}&since=2000-01-01", headers=reader)
    assert fine.status_code == 200, fine.json
    assert fine.json["items"] and all(e["trusted"] is True for e in fine.json["items"])
    assert "approved" not in [e["kind"] for e in fine.json["items"]]
    assert remote_refs(remote)["refs/heads/main"] == main  # reading wrote nothing

    # The same unsigned commit pushed onto main (a fast-forward): its events show, untrusted.
    git(remote, "update-ref", "refs/heads/main", forged, main)
    listed = client.get(f"/api/v1/audit?until={forged}", headers=reader)
    assert listed.status_code == 200, listed.json
    items = listed.json["items"]
    mine = [(e["kind"], e["actor"], e["trusted"]) for e in items if e["commit"] == forged]
    assert mine == [
        ("approved", "bob", False), ("approved", "alice", False),
        ("promoted", "release-bot", False),
    ]  # fmt: skip
    others = [e for e in items if e["commit"] != forged]
    assert others and all(e["trusted"] is True for e in others)
