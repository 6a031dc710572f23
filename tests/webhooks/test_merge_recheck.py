"""The merge-time re-check on GitHub: reviews complete a production pull request after its
artifact was rolled back out of staging; Ritmo closes the pull request as stale with a
comment and a signed closing commit, and production keeps its version (issue 13, 4)."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from bot.auth import Scope
from bot.config import Settings
from bot.runtime import Runtime
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox, review
from tests.helpers import artifact_body, bearer, git, trailers, verify_commit
from tests.webhooks import hooks
from tests.webhooks.hooks import (
    OVERLAY,
    head_of,
    open_promotion,
    queued,
    review_event,
    stamp,
    statuses,
)

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def test_approved_after_a_rollback_out_of_staging_closes_stale(
    hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, settings: Settings
) -> None:
    early = rt.tokens.create("ci-early", [Scope.ARTIFACTS_WRITE])
    first = hook.post("/api/v1/artifacts", json=artifact_body(version="1.9.0"),
                      headers=bearer(early))  # fmt: skip
    assert first.status_code == 201, first.json
    request = open_promotion(hook, rt, gh)  # 2.0.0, staging -> production, PR #7
    head = request["head"]
    production = git(remote, "show", f"main:{OVERLAY}")

    cd = rt.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    body = {"artifact_id": request["artifact_id"], "environment": "staging", "status": "failed"}
    reported = hook.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert reported.status_code == 201, reported.json
    rolled = hook.post(f"/api/v1/deployments/{reported.json['id']}/rollback",
                       json={"reason": "500s"}, headers=bearer(cd))  # fmt: skip
    assert rolled.status_code == 201, rolled.json
    assert rt.index.held(request["artifact_id"], "staging")
    before = head_of(remote)

    gh.reviews(body=[
        review("alice", "APPROVED", head, stamp(-2), rid=91),
        review("bob", "APPROVED", head, stamp(-1), rid=92),
    ])  # fmt: skip
    queued(hook, "pull_request_review", review_event("submitted", "bob", "approved", head, 92))
    assert rt.webhooks.drain() == 1

    saved = rt.requests_index.get(request["id"])
    assert saved is not None and saved.status == "stale", saved
    assert git(remote, "show", f"main:{OVERLAY}") == production  # production unchanged
    close = head_of(remote)
    assert git(remote, "rev-parse", f"{close}^1").strip() == before
    assert len(git(remote, "rev-parse", f"{close}^@").split()) == 1  # not a merge
    verify_commit(remote, close, settings.gnupghome)
    said = trailers(remote, close)
    assert said["Ritmo-Request-Closed"] == "stale"
    assert "held out of staging by a rollback" in said["Ritmo-Request-Close-Reason"]

    # The pull request: a comment that says why, then closed; the status never went green.
    comments = gh.sent("POST", f"/repos/{REPOSITORY}/issues/7/comments")
    assert len(comments) == 1
    assert "(stale)" in comments[0]["body"] and "held out of staging" in comments[0]["body"]
    assert gh.sent("PATCH", f"/repos/{REPOSITORY}/pulls/7") == [{"state": "closed"}]
    assert "success" not in [state for state, _ in statuses(gh, head)]
