"""pull_request_review: reviews on a promotion PR re-evaluate it and merge it, signed."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from bot.config import Settings
from bot.runtime import Runtime
from tests.forge.github_sandbox import REPOSITORY, GitHubSandbox, review
from tests.helpers import git, trailers, verify_commit
from tests.webhooks import hooks
from tests.webhooks.hooks import (
    OVERLAY,
    deliver,
    drain_later,
    head_of,
    open_promotion,
    queued,
    review_event,
    stamp,
    statuses,
)

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


class TestReplayedSequence:
    """Opened, approved, a second approval dismissed, re-approved: merged, signed, pinned."""

    def test_sequence(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, settings: Settings
    ) -> None:
        request = open_promotion(hook, rt, gh)
        head = request["head"]
        before = head_of(remote)

        gh.reviews(body=[review("alice", "APPROVED", head, stamp(-5), rid=91)])
        queued(
            hook, "pull_request_review", review_event("submitted", "alice", "approved", head, 91)
        )
        assert rt.webhooks.drain() == 1
        assert statuses(gh, head)[-1][0] == "pending"
        assert statuses(gh, head)[-1][1].startswith("1/2 approvals")

        # bob's approval is dismissed before Ritmo gets to it: GitHub's state is what counts.
        gh.reviews(body=[
            review("alice", "APPROVED", head, stamp(-5), rid=91),
            review("bob", "DISMISSED", head, stamp(-4), rid=92),
        ])  # fmt: skip
        queued(hook, "pull_request_review", review_event("submitted", "bob", "approved", head, 92))
        queued(hook, "pull_request_review", review_event("dismissed", "bob", "dismissed", head, 92))
        assert rt.webhooks.drain() == 2
        assert head_of(remote) == before
        # 0/2, then 1/2: the two deliveries that changed nothing post nothing (issue 14:
        # a status is posted only when its state or description changes).
        assert [s for s, _ in statuses(gh, head)] == ["pending"] * 2

        gh.reviews(body=[
            review("alice", "APPROVED", head, stamp(-5), rid=91),
            review("bob", "DISMISSED", head, stamp(-4), rid=92),
            review("bob", "APPROVED", head, stamp(-1), rid=93),
        ])  # fmt: skip
        queued(hook, "pull_request_review", review_event("submitted", "bob", "approved", head, 93))
        assert rt.webhooks.drain() == 1
        state, description = statuses(gh, head)[-1]
        assert state == "success" and description.startswith("2/2 approvals")

        merge = head_of(remote)
        assert git(remote, "rev-parse", f"{merge}^1").strip() == before
        assert git(remote, "rev-parse", f"{merge}^2").strip() == head
        verify_commit(remote, merge, settings.gnupghome)
        verify_commit(remote, head, settings.gnupghome)
        said = trailers(remote, merge)
        assert said["Ritmo-Promotion"] == "staging -> production"
        assert said["Ritmo-Approved-By"] == "alice, bob"
        assert said["Ritmo-Request"] == request["id"]
        assert said["Ritmo-Artifact"] == request["artifact_id"]
        overlay = git(remote, "show", f"{merge}:{OVERLAY}")
        assert 'newTag: "2.0.0"' in overlay
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged" and saved.merge_commit == merge
        assert rt.index.get(request["artifact_id"]).promotion_status == "production"  # type: ignore[union-attr]

        # GitHub then reports its own view of the merge (by the app's bot): nothing more.
        merged = hooks.payload("pull_request-merged")
        merged["pull_request"]["merged_by"]["login"] = "ritmo[bot]"
        merged["pull_request"]["merge_commit_sha"] = merge
        queued(hook, "pull_request", merged)
        assert rt.webhooks.drain() == 1
        assert head_of(remote) == merge


class TestDeliveries:
    """Duplicates do nothing twice; a review before its PR is indexed is retried later."""

    def test_duplicate_delivery(self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox) -> None:
        request = open_promotion(hook, rt, gh)
        head = request["head"]
        gh.reviews(body=[review("alice", "APPROVED", head, stamp(-1), rid=91)])
        event = review_event("submitted", "alice", "approved", head, 91)
        queued(hook, "pull_request_review", event, delivery="dup-1")
        again = deliver(hook, "pull_request_review", event, delivery="dup-1")
        assert again.status_code == 200 and again.json["status"] == "duplicate"
        assert rt.webhooks.drain() == 1
        assert rt.webhooks.drain() == 0
        assert len(statuses(gh, head)) == 2  # opened, then this one review
        assert len(gh.sent("GET", f"/repos/{REPOSITORY}/pulls/7/reviews")) == 1

    def test_review_before_the_request_is_indexed(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path
    ) -> None:
        early = review_event("submitted", "alice", "approved", "0" * 40, 91)
        delivery = queued(hook, "pull_request_review", early)
        assert rt.webhooks.drain() == 1
        row = rt.deliveries.get(delivery)
        assert row is not None and row["status"] == "queued" and row["attempts"] == 1
        assert "#7" in row["last_error"] and "not a known promotion request" in row["last_error"]
        assert rt.webhooks.drain() == 0  # backing off

        request = open_promotion(hook, rt, gh)
        head = request["head"]
        gh.reviews(body=[
            review("alice", "APPROVED", head, stamp(-1), rid=91),
            review("bob", "APPROVED", head, stamp(-1), rid=92),
        ])  # fmt: skip
        assert drain_later(rt) == 1
        row = rt.deliveries.get(delivery)
        assert row is not None and row["status"] == "done"
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "merged"
        assert git(remote, "rev-parse", "main^2").strip() == head

    def test_review_on_another_pull_request_is_ignored(
        self, hook: FlaskClient, rt: Runtime, gh: GitHubSandbox
    ) -> None:
        # A pull request of the manifests repository might edit the policy: Ritmo asks
        # which files it changes (one call), and leaves it alone when it does not.
        gh.token()
        gh.files(7, ["docs/README.md"])
        event = review_event("submitted", "alice", "approved", "1" * 40, 91, ref="feature/docs")
        delivery = queued(hook, "pull_request_review", event)
        other_repo = review_event("submitted", "alice", "approved", "1" * 40, 92)
        other_repo["repository"]["full_name"] = "acme/website"
        elsewhere = queued(hook, "pull_request_review", other_repo)
        assert rt.webhooks.drain() == 2
        assert rt.deliveries.get(delivery)["status"] == "done"  # type: ignore[index]
        assert rt.deliveries.get(elsewhere)["status"] == "done"  # type: ignore[index]
        calls = [c for c in gh.requests() if not c[1].endswith("/access_tokens")]
        assert calls == [("GET", f"/repos/{REPOSITORY}/pulls/7/files")]  # nothing else
