"""push: the index follows the default branch; a version pinned outside Ritmo raises an alert."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.runtime import Runtime
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox
from tests.helpers import artifact_body, bearer, git, trailers
from tests.webhooks import hooks
from tests.webhooks.hooks import (
    BRANCH,
    OVERLAY,
    as_person,
    clone,
    head_of,
    open_promotion,
    payload,
    queued,
)

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def _push_event(work: Path, before: str, *, sender: str = "mallory") -> dict[str, Any]:
    """The push delivery for before..HEAD of `work`, commits listed as GitHub lists them."""
    event = copy.deepcopy(payload("push"))
    shas = git(work, "rev-list", "--reverse", f"{before}..HEAD").split()
    template = event["commits"][0]
    commits = []
    for sha in shas:
        name, email = git(work, "log", "-1", "--format=%an%x00%ae", sha).strip().split("\0")
        changed = git(work, "diff-tree", "--no-commit-id", "--name-status", "-r", "-m",
                      "--first-parent", sha).split("\n")  # fmt: skip
        commit = copy.deepcopy(template)
        commit.update(id=sha, message=git(work, "log", "-1", "--format=%B", sha).strip())
        commit["author"] = {"name": name, "email": email, "username": name.lower()}
        commit["added"] = [ln.split("\t")[1] for ln in changed if ln.startswith("A\t")]
        commit["modified"] = [ln.split("\t")[1] for ln in changed if ln.startswith("M\t")]
        commit["removed"] = [ln.split("\t")[1] for ln in changed if ln.startswith("D\t")]
        commits.append(commit)
    event.update(before=before, after=shas[-1], commits=commits, head_commit=commits[-1])
    event["sender"]["login"] = sender
    event["pusher"]["name"] = sender
    return event


def _register(hook: FlaskClient, rt: Runtime) -> None:
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE])
    resp = hook.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(ci))
    assert resp.status_code == 201, resp.json


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


class TestFollow:
    """Someone else's push: the index moves to the new tip."""

    def test_index_follows(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        gh.app()  # the bot's login, to tell Ritmo's pushes from others'
        work = clone(remote, tmp_path / "work")
        before = head_of(remote)
        (work / "README.md").write_text("Platform notes\n")
        as_person(work, "add", "README.md")
        as_person(work, "commit", "--quiet", "-m", "Add notes")
        git(work, "push", "--quiet", "origin", "main")
        with caplog.at_level(logging.ERROR):
            queued(hook, "push", _push_event(work, before))
            assert rt.webhooks.drain() == 1
        assert rt.index.tip() == head_of(remote) != before
        assert _errors(caplog) == []

    def test_other_branches_and_ritmos_pushes_are_skipped(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path
    ) -> None:
        gh.app()
        work = clone(remote, tmp_path / "work")
        before = head_of(remote)
        as_person(work, "commit", "--quiet", "--allow-empty", "-m", "Nothing")
        git(work, "push", "--quiet", "origin", "main")
        elsewhere = _push_event(work, before)
        elsewhere["ref"] = "refs/heads/feature"
        queued(hook, "push", elsewhere)
        queued(hook, "push", _push_event(work, before, sender="ritmo[bot]"))
        assert rt.webhooks.drain() == 2
        assert rt.index.tip() == before


class TestBypass:
    """An overlay's pinned version changed without a Ritmo promotion: an ERROR alert."""

    def test_version_pinned_by_hand(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        gh.app()  # the bot's login, to tell Ritmo's pushes from others'
        gh.token()
        gh.commit_comment()  # the alert, on the commit
        _register(hook, rt)
        work = clone(remote, tmp_path / "work")
        before = head_of(remote)
        path = work / OVERLAY
        path.write_text(path.read_text().replace('newTag: "0.1.0"', 'newTag: "9.9.9"'))
        as_person(work, "commit", "--quiet", "-am", "Hotfix: pin 9.9.9 in production")
        git(work, "push", "--quiet", "origin", "main")
        hand = head_of(remote)
        with caplog.at_level(logging.ERROR):
            queued(hook, "push", _push_event(work, before))
            assert rt.webhooks.drain() == 1
        (alert,) = _errors(caplog)
        assert alert.startswith("ALERT ") and hand in alert
        assert OVERLAY in alert and "9.9.9" in alert and "0.1.0" in alert
        assert "mallory" in alert and "without a Ritmo promotion" in alert
        # Ritmo recorded it on the branch (one drift commit on top), and followed.
        assert git(remote, "rev-parse", "main~1").strip() == hand
        assert trailers(remote, "main")["Ritmo-Drift-Commit"] == hand
        assert rt.index.tip() == head_of(remote)
        (told,) = gh.sent("POST", f"/repos/{REPOSITORY}/commits/{hand}/comments")
        assert told["body"].startswith("**Ritmo alert:** this commit pins web 9.9.9 in production")

    def test_overlay_edit_keeping_the_version(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        gh.app()  # the bot's login, to tell Ritmo's pushes from others'
        _register(hook, rt)
        work = clone(remote, tmp_path / "work")
        before = head_of(remote)
        path = work / OVERLAY
        path.write_text(path.read_text().replace("web-production", "web-prod"))
        as_person(work, "commit", "--quiet", "-am", "Rename the namespace")
        git(work, "push", "--quiet", "origin", "main")
        with caplog.at_level(logging.ERROR):
            queued(hook, "push", _push_event(work, before))
            assert rt.webhooks.drain() == 1
        assert _errors(caplog) == []

    def test_a_promotion_merged_on_github_is_not_a_bypass(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        open_promotion(hook, rt, gh)
        work = clone(remote, tmp_path / "work")
        before = head_of(remote)
        git(work, "-c", "user.name=Alice", "-c", "user.email=alice@example.com", "merge",
            "--quiet", "--no-ff", f"origin/{BRANCH}", "-m", "Merge pull request #7")  # fmt: skip
        git(work, "push", "--quiet", "origin", "main")
        with caplog.at_level(logging.ERROR):
            queued(hook, "push", _push_event(work, before, sender="alice"))
            assert rt.webhooks.drain() == 1
        assert _errors(caplog) == []  # the pull_request delivery judges it by the policy
        assert rt.index.tip() == head_of(remote)
