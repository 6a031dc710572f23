"""pull_request: tampered branches, closed requests, merges a person made on GitHub."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.config import Settings
from bot.runtime import Runtime
from bot.store.reindex import reindex
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox, review
from tests.helpers import git, remote_refs, trailers, verify_commit
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
    review_event,
    stamp,
    statuses,
)

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def _push_to_branch(remote: Path, tmp_path: Path) -> str:
    """Someone other than Ritmo pins another version on the request branch."""
    work = clone(remote, tmp_path / "mallory")
    git(work, "checkout", "--quiet", BRANCH)
    path = work / OVERLAY
    path.write_text(path.read_text().replace('newTag: "2.0.0"', 'newTag: "6.6.6"'))
    as_person(work, "commit", "--quiet", "-am", "Pin 6.6.6 instead")
    git(work, "push", "--quiet", "origin", BRANCH)
    return git(work, "rev-parse", "HEAD").strip()


def _merge_in_the_ui(remote: Path, tmp_path: Path) -> str:
    """What GitHub's merge button does: a merge commit by the person, unsigned by Ritmo."""
    work = clone(remote, tmp_path / "alice")
    git(work, "-c", "user.name=Alice", "-c", "user.email=alice@example.com", "merge",
        "--quiet", "--no-ff", f"origin/{BRANCH}",
        "-m", f"Merge pull request #7 from acme/{BRANCH}")  # fmt: skip
    git(work, "push", "--quiet", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def _closed(merged_by: str | None = None, merge: str = "", head: str = "", by: str = "alice",
            merged_at: str | None = None) -> dict[str, Any]:  # fmt: skip
    event = copy.deepcopy(payload("pull_request-merged" if merged_by else "pull_request-closed"))
    pull = event["pull_request"]
    if merged_by:
        pull["merged_by"]["login"] = merged_by
        pull.update(merge_commit_sha=merge, merged_at=merged_at or stamp())
    if head:
        pull["head"]["sha"] = head
    event["sender"]["login"] = by
    return event


class TestTampered:
    """A push by anyone but Ritmo: status failure, an explaining comment, never merged."""

    def test_foreign_push(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        settings: Settings,
    ) -> None:  # fmt: skip
        request = open_promotion(hook, rt, gh)
        head = request["head"]
        before = head_of(remote)
        foreign = _push_to_branch(remote, tmp_path)
        event = copy.deepcopy(payload("pull_request-synchronize"))
        event.update(before=head, after=foreign)
        event["pull_request"]["head"]["sha"] = foreign
        queued(hook, "pull_request", event)
        assert rt.webhooks.drain() == 1

        ((state, description),) = statuses(gh, foreign)
        assert state == "failure" and description.startswith("tampered: mallory pushed")
        (comment,) = gh.sent("POST", f"/repos/{REPOSITORY}/issues/7/comments")
        assert "tampered" in comment["body"] and "never merge" in comment["body"]
        assert gh.sent("PATCH", f"/repos/{REPOSITORY}/pulls/7") == [{"state": "closed"}]
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "rejected"
        assert saved.reason.startswith("tampered: mallory pushed " + foreign[:12])

        closing = head_of(remote)
        assert git(remote, "rev-parse", f"{closing}^").strip() == before
        verify_commit(remote, closing, settings.gnupghome)
        assert trailers(remote, closing)["Ritmo-Request-Closed"] == "rejected"
        assert remote_refs(remote)[f"refs/heads/{BRANCH}"] == foreign  # kept, as evidence

        # Approvals that come after change nothing: the request is over.
        gh.reviews(body=[
            review("alice", "APPROVED", foreign, stamp(-1), rid=91),
            review("bob", "APPROVED", foreign, stamp(-1), rid=92),
        ])  # fmt: skip
        queued(hook, "pull_request_review", review_event("submitted", "bob", "approved", foreign))
        assert rt.webhooks.drain() == 1
        assert head_of(remote) == closing

    def test_ritmos_own_push_is_not_tampering(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox
    ) -> None:
        request = open_promotion(hook, rt, gh)
        event = copy.deepcopy(payload("pull_request-synchronize"))
        event.update(before="0" * 40, after=request["head"])
        event["pull_request"]["head"]["sha"] = request["head"]
        event["sender"]["login"] = "ritmo[bot]"
        queued(hook, "pull_request", event)
        assert rt.webhooks.drain() == 1
        assert rt.requests_index.get(request["id"]).status == "pending"  # type: ignore[union-attr]
        assert len(statuses(gh, request["head"])) == 1  # only the one from opening


class TestClosed:
    """Closed without a merge: rejected. Ritmo's own closing is not counted twice."""

    def test_closed_by_a_person(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, settings: Settings
    ) -> None:
        request = open_promotion(hook, rt, gh)
        queued(hook, "pull_request", _closed(head=request["head"]))
        assert rt.webhooks.drain() == 1
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "rejected"
        assert saved.reason == "pull request #7 was closed by alice without merging"
        closing = head_of(remote)
        verify_commit(remote, closing, settings.gnupghome)
        said = trailers(remote, closing)
        assert said["Ritmo-Request-Closed"] == "rejected"
        assert said["Ritmo-Request"] == request["id"]
        assert f"refs/heads/{BRANCH}" not in remote_refs(remote)
        assert gh.sent("POST", f"/repos/{REPOSITORY}/issues/7/comments") == []  # GitHub shows it

    def test_closed_by_ritmo_or_twice(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path
    ) -> None:
        request = open_promotion(hook, rt, gh)
        before = head_of(remote)
        queued(hook, "pull_request", _closed(head=request["head"], by="ritmo[bot]"))
        assert rt.webhooks.drain() == 1
        assert rt.requests_index.get(request["id"]).status == "pending"  # type: ignore[union-attr]
        assert head_of(remote) == before
        queued(hook, "pull_request", _closed(head=request["head"]))
        queued(hook, "pull_request", _closed(head=request["head"]))  # another delivery id
        assert rt.webhooks.drain() == 2
        assert len(git(remote, "rev-list", f"{before}..main").split()) == 1

    def test_opened_promotion_is_left_alone(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path
    ) -> None:
        """`opened` is routed for policy pull requests people open (test_policy_pulls);
        Ritmo's own promotion pull request opening changes nothing and asks GitHub nothing."""
        before = head_of(remote)
        event = copy.deepcopy(payload("pull_request-closed"))
        event["action"] = "opened"
        queued(hook, "pull_request", event)
        assert rt.webhooks.drain() == 1
        assert gh.requests() == [] and head_of(remote) == before


class TestMergedByAPerson:
    """Merged through GitHub's UI: recorded with a signed commit, judged, alerted on."""

    def _merge(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        approvals: Callable[[str], list[dict[str, Any]]],
    ) -> tuple[dict[str, Any], str]:  # fmt: skip
        request = open_promotion(hook, rt, gh)
        gh.reviews(body=approvals(request["head"]))
        merge = _merge_in_the_ui(remote, tmp_path)
        queued(hook, "pull_request", _closed("alice", merge, request["head"]))
        assert rt.webhooks.drain() == 1
        return request, merge

    def test_policy_held(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        settings: Settings, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        def both(head: str) -> list[dict[str, Any]]:
            return [
                review("alice", "APPROVED", head, stamp(-3), rid=91),
                review("bob", "APPROVED", head, stamp(-2), rid=92),
            ]

        with caplog.at_level(logging.ERROR):
            request, merge = self._merge(hook, rt, gh, remote, tmp_path, both)
        record = head_of(remote)
        assert git(remote, "rev-parse", f"{record}^").strip() == merge
        assert git(remote, "diff", "--stat", merge, record).strip() == ""  # empty: a record
        verify_commit(remote, record, settings.gnupghome)
        said = trailers(remote, record)
        assert said["Ritmo-Promotion"] == "staging -> production"
        assert said["Ritmo-Artifact"] == request["artifact_id"]
        assert said["Ritmo-Request"] == request["id"]
        assert said["Ritmo-Merged-By"] == "alice"
        assert said["Ritmo-Policy-Held"] == "yes"
        assert said["Ritmo-Approved-By"] == "alice, bob"
        assert said["Ritmo-Merge-Commit"] == merge
        assert 'newTag: "2.0.0"' in git(remote, "show", f"main:{OVERLAY}")
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged"
        assert saved.merge_commit == merge
        assert statuses(gh, merge) == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        promoted, _ = rt.index.search_promotions(app="web", env="production")
        assert [p["request_id"] for p in promoted] == [request["id"]]
        assert rt.index.get(request["artifact_id"]).promotion_status == "production"  # type: ignore[union-attr]
        # What runs where: the person's merge set the pin; Ritmo's signed record counts.
        (web,) = rt.environments.table("web")["apps"]
        production = web["environments"]["production"]
        assert (production["version"], production["recorded"]) == ("2.0.0", True)
        assert (production["commit"], production["recorded_by"]) == (merge, record)
        assert production["promotion"] == request["id"]

        # Rebuilt from git alone, the request is merged, though GitHub kept its branch.
        reindex(rt.index, rt.mirror, rt.requests_index)
        rebuilt = rt.requests_index.get(request["id"])
        assert rebuilt is not None and rebuilt.status == "merged"
        assert rebuilt.merge_commit == merge
        assert rt.index.get(request["artifact_id"]).promotion_status == "production"  # type: ignore[union-attr]

    def test_policy_did_not_hold(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, tmp_path: Path,
        settings: Settings, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        def one(head: str) -> list[dict[str, Any]]:
            return [
                review("alice", "APPROVED", head, stamp(-3), rid=91),
                review("bob", "APPROVED", head, stamp(+30), rid=92),  # after the merge
            ]

        with caplog.at_level(logging.ERROR):
            request, merge = self._merge(hook, rt, gh, remote, tmp_path, one)
        record = head_of(remote)
        verify_commit(remote, record, settings.gnupghome)
        said = trailers(remote, record)
        assert said["Ritmo-Policy-Held"] == "no"
        assert said["Ritmo-Merged-By"] == "alice"
        assert said["Ritmo-Approved-By"] == "alice"
        ((state, description),) = statuses(gh, merge)
        assert state == "failure"
        assert description.startswith("merged by alice without the policy: missing 1 approval")
        (alert,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "ALERT" in alert.getMessage() and request["id"] in alert.getMessage()
        # People hear of it where they work: a comment on the pull request.
        (told,) = [
            c["body"]
            for c in gh.sent("POST", f"/repos/{REPOSITORY}/issues/7/comments")
            if c["body"].startswith("**Ritmo alert:**")
        ]
        assert "merged by @alice although the policy did not hold" in told
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged"
        assert "policy held: no" in saved.reason
