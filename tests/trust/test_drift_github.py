"""Drift on the GitHub forge: Ritmo comments on the offending commit (POST
/repos/{owner}/{repo}/commits/{commit_sha}/comments), found by a scheduler tick even when
no push webhook arrives."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.runtime import Runtime
from bot.scheduler import run_due
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox
from tests.helpers import artifact_body, bearer, git, trailers
from tests.webhooks import hooks
from tests.webhooks.hooks import as_person, clone, head_of

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def test_an_unsigned_policy_edit_is_commented_on(
    hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    gh.app()
    gh.token()
    gh.commit_comment()
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE])
    resp = hook.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(ci))
    assert resp.status_code == 201, resp.json
    work = clone(remote, tmp_path / "work")
    policy = work / ".ritmo" / "policy.yaml"
    policy.write_text(
        policy.read_text().replace("requires_approval: true", "requires_approval: false")
    )
    as_person(work, "commit", "--quiet", "-am", "Production without approvals")
    git(work, "push", "--quiet", "origin", "main")
    hand = head_of(remote)

    with caplog.at_level(logging.ERROR):
        run_due(rt)  # no webhook: the tick finds it

    assert trailers(remote, "main")["Ritmo-Drift-Commit"] == hand
    assert trailers(remote, "main")["Ritmo-Drift"] == "policy"
    (told,) = gh.sent("POST", f"/repos/{REPOSITORY}/commits/{hand}/comments")
    assert told["body"].startswith("**Ritmo alert:** this commit changes .ritmo/policy.yaml")
    assert "Ritmo does not obey this policy" in told["body"]
    assert [
        r for r in caplog.records if r.getMessage().startswith("ALERT ") and hand in r.getMessage()
    ]
    run_due(rt)  # once: no second comment
    assert len(gh.sent("POST", f"/repos/{REPOSITORY}/commits/{hand}/comments")) == 1
