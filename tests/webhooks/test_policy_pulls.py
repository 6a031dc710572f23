"""Policy pull requests people open on GitHub: judged by the policy in force's
`policy_changes`, shown in `ritmo/approval`, vouched for by a signed commit when merged
with the rule held, an ALERT when merged without."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.config import Settings
from bot.manifests.packs import object_id
from bot.runtime import Runtime
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox, review
from tests.helpers import bearer, commits_since, git, trailers, verify_commit
from tests.webhooks import hooks
from tests.webhooks.hooks import as_person, clone, head_of, payload, queued, stamp, statuses

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook

NUMBER = 12
POLICY_BRANCH = "ritmo/promote/_policy/_policy"
BRANCH = "weaken-production"
# Production without approvals: what the pull request would put in force.
WEAKENED = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true}
  - {from: staging, to: production}
groups:
  ops-team: {kind: github-team, team: acme/ops}
  security-team: {kind: github-team, team: acme/security}
apps:
  web: {}
"""


def _push_policy_branch(remote: Path, tmp_path: Path) -> str:
    """Mallory edits the policy on a branch of her own and pushes it."""
    work = clone(remote, tmp_path / "mallory")
    git(work, "checkout", "--quiet", "-b", BRANCH)
    (work / ".ritmo" / "policy.yaml").write_text(WEAKENED)
    as_person(work, "commit", "--quiet", "-am", "Production without approvals")
    git(work, "push", "--quiet", "origin", BRANCH)
    return git(work, "rev-parse", "HEAD").strip()


def _merge_in_the_ui(remote: Path, tmp_path: Path) -> str:
    work = clone(remote, tmp_path / "merger")
    git(work, "-c", "user.name=Alice", "-c", "user.email=alice@example.com", "merge",
        "--quiet", "--no-ff", f"origin/{BRANCH}",
        "-m", f"Merge pull request #{NUMBER} from mallory/{BRANCH}")  # fmt: skip
    git(work, "push", "--quiet", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def _pull_event(action: str, head: str, opened: str) -> dict[str, Any]:
    """A pull_request delivery for Mallory's #12 into main, from the recorded sample."""
    event = copy.deepcopy(payload("pull_request-synchronize"))
    event.pop("before"), event.pop("after")
    event.update(action=action, number=NUMBER)
    pull = event["pull_request"]
    pull.update(number=NUMBER, title="Production without approvals", created_at=opened)
    pull["user"].update(login="mallory", type="User")
    pull["head"].update(ref=BRANCH, sha=head, label=f"acme:{BRANCH}")
    event["sender"]["login"] = "mallory"
    return event


def _review_event(login: str, head: str, opened: str) -> dict[str, Any]:
    event = copy.deepcopy(payload("pull_request_review-submitted"))
    event["review"].update(state="approved", commit_id=head, submitted_at=stamp())
    event["review"]["user"]["login"] = login
    pull = event["pull_request"]
    pull.update(number=NUMBER, created_at=opened)
    pull["user"].update(login="mallory", type="User")
    pull["head"].update(ref=BRANCH, sha=head, label=f"acme:{BRANCH}")
    event["sender"]["login"] = login
    return event


def _merged_event(head: str, merge: str, opened: str, by: str = "alice") -> dict[str, Any]:
    event = _pull_event("closed", head, opened)
    merged = payload("pull_request-merged")["pull_request"]
    event["pull_request"].update(
        state="closed", merged=True, merged_at=stamp(), closed_at=stamp(),
        merge_commit_sha=merge, merged_by={**merged["merged_by"], "login": by},
    )  # fmt: skip
    event["sender"]["login"] = by
    return event


def _github(gh: GitHubSandbox, head: str, approvals: list[dict[str, Any]]) -> None:
    gh.token()
    gh.app()
    gh.files(NUMBER)
    gh.reviews(NUMBER, body=approvals)
    gh.team("ops")
    gh.team("security")
    gh.status(head)


class TestPolicyPullRequest:
    def test_status_shows_progress_then_merged_with_reviews_is_vouched(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        settings: Settings,
    ) -> None:  # fmt: skip
        head = _push_policy_branch(remote, tmp_path)
        opened = stamp(-30)
        _github(gh, head, [])
        queued(hook, "pull_request", _pull_event("opened", head, opened))
        assert rt.webhooks.drain() == 1
        ((state, description),) = statuses(gh, head)
        assert state == "pending" and description.startswith("0/2 approvals: missing")

        # Mallory's own approval would not count; alice (ops) then bob (security) do.
        gh.reviews(NUMBER, body=[
            review("mallory", "APPROVED", head, stamp(-20), rid=90),
            review("alice", "APPROVED", head, stamp(-10), rid=91),
        ])  # fmt: skip
        queued(hook, "pull_request_review", _review_event("alice", head, opened))
        assert rt.webhooks.drain() == 1
        assert statuses(gh, head)[-1][1].startswith("1/2 approvals: missing 1 approval from")
        gh.reviews(NUMBER, body=[
            review("alice", "APPROVED", head, stamp(-10), rid=91),
            review("bob", "APPROVED", head, stamp(-5), rid=92),
        ])  # fmt: skip
        queued(hook, "pull_request_review", _review_event("bob", head, opened))
        assert rt.webhooks.drain() == 1
        assert statuses(gh, head)[-1] == ("success", "2/2 approvals: approved by alice and bob")

        merge = _merge_in_the_ui(remote, tmp_path)
        queued(hook, "pull_request", _merged_event(head, merge, opened))
        assert rt.webhooks.drain() == 1
        vouch = head_of(remote)
        assert git(remote, "rev-parse", f"{vouch}^").strip() == merge
        verify_commit(remote, vouch, settings.gnupghome)
        said = trailers(remote, vouch)
        blob = git(remote, "rev-parse", f"{merge}:.ritmo/policy.yaml").strip()
        assert blob == object_id("blob", WEAKENED.encode())
        assert said["Ritmo-Policy"] == blob
        assert said["Ritmo-Approved-By"] == "alice, bob"
        assert said["Ritmo-Policy-Request"] == str(NUMBER)
        assert said["Ritmo-Policy-Merge-Commit"] == merge
        assert git(remote, "diff", "--name-only", merge, vouch).strip() == ""  # empty commit

    def test_merged_without_the_rule_is_not_vouched_and_alerts(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        head = _push_policy_branch(remote, tmp_path)
        opened = stamp(-30)
        # One approval from ops; security never approved.
        _github(gh, head, [review("alice", "APPROVED", head, stamp(-10), rid=91)])
        gh.comment(NUMBER)
        merge = _merge_in_the_ui(remote, tmp_path)
        gh.status(merge)
        gh.commit_comment(merge)
        caplog.set_level(logging.INFO)
        queued(hook, "pull_request", _merged_event(head, merge, opened, by="mallory"))
        assert rt.webhooks.drain() == 1
        rt.drift.settle()

        # No vouching commit: the one on top records the merge as drift.
        (drift,) = commits_since(remote, merge)
        said = trailers(remote, drift)
        assert "Ritmo-Policy" not in said and "Ritmo-Policy" not in trailers(remote, merge)
        assert said["Ritmo-Drift"] == "policy" and said["Ritmo-Drift-Commit"] == merge
        alerts = [r for r in caplog.records if r.getMessage().startswith("ALERT ")]
        assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
        assert f"merges policy pull request #{NUMBER}" in alerts[0].getMessage()
        assert "; by mallory (recorded in " in alerts[0].getMessage()
        assert "missing 1 approval from security-team" in alerts[0].getMessage()
        ((state, description),) = statuses(gh, merge)
        assert state == "failure" and "policy_changes" in description
        (comment,) = gh.sent("POST", f"/repos/{REPOSITORY}/issues/{NUMBER}/comments")
        assert comment["body"].startswith("**Ritmo alert:**")

    def test_a_pull_request_that_leaves_the_policy_alone_is_not_judged(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path
    ) -> None:
        head = _push_policy_branch(remote, tmp_path)
        gh.token()
        gh.files(NUMBER, ["apps/web/base/deployment.yaml"])
        queued(hook, "pull_request", _pull_event("opened", head, stamp(-1)))
        assert rt.webhooks.drain() == 1
        assert statuses(gh, head) == []


class TestPolicyChangeRequestOnGitHub:
    """PUT /api/v1/policy needing approval opens a pull request; GitHub reviews merge it."""

    def _open(self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox) -> dict[str, Any]:
        admin = rt.tokens.create("platform-admin", [Scope.ADMIN])
        gh.opening()
        gh.app()
        gh.reviews(body=[])
        gh.team("ops")
        gh.team("security")
        resp = hook.put(
            "/api/v1/policy", json={"policy": WEAKENED, "reason": "drill"},
            headers=bearer(admin),
        )  # fmt: skip
        assert resp.status_code == 202, resp.json
        request: dict[str, Any] = resp.json["request"]
        assert request["forge_ref"] == "7" and request["change"] == "policy"
        (pull,) = gh.sent("POST", f"/repos/{REPOSITORY}/pulls")
        assert pull["head"] == POLICY_BRANCH and pull["base"] == "main"
        assert pull["title"] == "Change the Ritmo policy (.ritmo/policy.yaml)"
        assert "-    requires_approval: true" in pull["body"]  # the diff reviewers judge
        assert statuses(gh, request["head"]) == [("pending", "0/2 approvals")]
        return request

    def test_reviews_merge_it_signed(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, settings: Settings
    ) -> None:
        request = self._open(hook, rt, gh)
        head = request["head"]
        gh.reviews(body=[
            review("alice", "APPROVED", head, stamp(-2), rid=91),
            review("bob", "APPROVED", head, stamp(-1), rid=92),
        ])  # fmt: skip
        event = hooks.review_event("submitted", "bob", "approved", head, ref=POLICY_BRANCH)
        queued(hook, "pull_request_review", event)
        assert rt.webhooks.drain() == 1
        merge = head_of(remote)
        verify_commit(remote, merge, settings.gnupghome)
        said = trailers(remote, merge)
        assert said["Ritmo-Policy"] == object_id("blob", WEAKENED.encode())
        assert said["Ritmo-Approved-By"] == "alice, bob"
        assert said["Ritmo-Request"] == request["id"]
        assert git(remote, "rev-parse", f"{merge}^2").strip() == head
        assert git(remote, "show", "main:.ritmo/policy.yaml") == WEAKENED
        assert statuses(gh, head)[-1] == ("success", "2/2 approvals: approved by alice and bob")

    def test_merged_by_a_person_without_approvals_is_not_vouched(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        request = self._open(hook, rt, gh)
        work = clone(remote, tmp_path / "merger")
        git(work, "-c", "user.name=Mallory", "-c", "user.email=m@example.com", "merge",
            "--quiet", "--no-ff", f"origin/{POLICY_BRANCH}", "-m", "Merge #7")  # fmt: skip
        git(work, "push", "--quiet", "origin", "main")
        merge = git(work, "rev-parse", "HEAD").strip()
        gh.status(merge)
        gh.comment()
        gh.commit_comment(merge)
        event = copy.deepcopy(payload("pull_request-merged"))
        event["pull_request"]["head"].update(ref=POLICY_BRANCH, sha=request["head"])
        event["pull_request"]["merged_by"]["login"] = "mallory"
        event["pull_request"].update(merge_commit_sha=merge, merged_at=stamp())
        caplog.set_level(logging.INFO)
        queued(hook, "pull_request", event)
        assert rt.webhooks.drain() == 1
        rt.drift.settle()
        (drift,) = commits_since(remote, merge)  # nothing vouches for it: drift
        assert trailers(remote, drift)["Ritmo-Drift-Commit"] == merge
        assert "Ritmo-Policy" not in trailers(remote, drift)
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged"
        assert "policy_changes held: no" in saved.reason
        alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT ")]
        assert len(alerts) == 1 and "merges policy pull request #7" in alerts[0]
        assert "; by mallory (recorded in " in alerts[0]


def test_approved_but_merged_over_a_hand_edit_is_not_vouched(
    hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Reviewers approved the pull request's policy; the merge mixed in an edit someone
    pushed to main by hand. Vouching for the result would launder that edit."""
    head = _push_policy_branch(remote, tmp_path)
    opened = stamp(-30)
    hand = clone(remote, tmp_path / "hand")
    policy = hand / ".ritmo" / "policy.yaml"
    policy.write_text("# tuned by hand\n" + policy.read_text())
    as_person(hand, "commit", "--quiet", "-am", "Tune the policy")
    git(hand, "push", "--quiet", "origin", "main")
    _github(gh, head, [
        review("alice", "APPROVED", head, stamp(-10), rid=91),
        review("bob", "APPROVED", head, stamp(-5), rid=92),
    ])  # fmt: skip
    gh.comment(NUMBER)
    merge = _merge_in_the_ui(remote, tmp_path)
    assert git(remote, "show", f"{merge}:.ritmo/policy.yaml") == "# tuned by hand\n" + WEAKENED
    gh.status(merge)
    hand_sha = git(hand, "rev-parse", "HEAD").strip()
    gh.commit_comment(hand_sha)
    gh.commit_comment(merge)
    caplog.set_level(logging.INFO)
    queued(hook, "pull_request", _merged_event(head, merge, opened))
    assert rt.webhooks.drain() == 1
    rt.drift.settle()
    # No vouching commit: the hand edit and the merge over it are each recorded as drift.
    drifts = [trailers(remote, c) for c in commits_since(remote, merge)]
    assert all("Ritmo-Policy" not in t for t in drifts)
    assert sorted(t["Ritmo-Drift-Commit"] for t in drifts) == sorted([hand_sha, merge])
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT ")]
    (merge_alert,) = [a for a in alerts if f"commit {merge}" in a]
    assert f"the merged .ritmo/policy.yaml is not the one approved at {head[:12]}" in merge_alert
