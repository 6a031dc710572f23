"""Rebuild promotion requests and their reviews from git alone.

Open requests are the `ritmo/promote/*` branches; ended ones left a trace on the
default branch: the signed merge commit, or a signed closing commit.
"""

from __future__ import annotations

from typing import Any

from bot.manifests.mirror import Mirror
from bot.manifests.trailers import COMMIT_FORMAT, Commit, read_commits
from bot.policy.model import POLICY_APP
from bot.statuses import RequestStatus
from bot.store.index import ArtifactIndex
from bot.store.request_index import RequestIndex
from bot.store.request_record import RequestRecord, ReviewRecord
from bot.timestamps import stamp_epoch

BRANCH_PREFIX = "ritmo/promote/"


def _log(mirror: Mirror, *args: str) -> list[Commit]:
    return read_commits(mirror.log(COMMIT_FORMAT, *args))


def _branch_history(mirror: Mirror, tip: str) -> tuple[Commit | None, list[Commit]]:
    """The request commit under `tip`, and the review commits above it (oldest first)."""
    reviews: list[Commit] = []
    for commit in _log(mirror, "--first-parent", "-n", "500", tip):
        if commit.one("Ritmo-Promotion-Request"):
            return commit, list(reversed(reviews))
        if commit.one("Ritmo-Review"):
            reviews.append(commit)
    return None, []


def _forge_merge(commit: Commit) -> str | None:
    """The merge a person made on the forge, as Ritmo's record of it names it."""
    return commit.one("Ritmo-Merge-Commit") or commit.one("Ritmo-Policy-Merge-Commit")


def rebuild_requests(
    mirror: Mirror, tip: str, requests: RequestIndex, artifacts: ArtifactIndex
) -> int:
    """Re-create every request the history shows; returns how many."""
    rows: dict[str, dict[str, Any]] = {}
    superseded_by: dict[str, str] = {}

    def add(head: Commit, status: RequestStatus, branch_tip: str, reviews: list[Commit]) -> None:
        artifact = artifacts.get(head.one("Ritmo-Artifact") or "")
        hop = (head.one("Ritmo-Promotion-Request") or "").partition(" -> ")
        # A policy change request: its pseudo target, and the new policy's blob in place
        # of an artifact (the closing commit carries it as Ritmo-Artifact).
        blob = head.one("Ritmo-Policy-Change-Request") or head.one("Ritmo-Artifact")
        if hop[0] == POLICY_APP and blob:
            artifact_id, app, version = blob, POLICY_APP, blob[:12]
        elif artifact is None or not hop[1]:
            return
        else:
            artifact_id = artifact.record.id
            app, version = artifact.record.name, artifact.record.version
        request_id = "req-" + head.sha[:16]
        env = hop[2]
        rows[request_id] = {
            "id": request_id,
            "artifact_id": artifact_id,
            "app": app,
            "version": version,
            "from_env": hop[0],
            "to_env": env,
            "branch": f"{BRANCH_PREFIX}{app}/{env}",
            "head": head.sha,
            "tip": branch_tip,
            "status": status,
            "requested_by": head.one("Ritmo-Requested-By") or "unknown",
            "approval_ticket": head.one("Ritmo-Approval-Ticket"),
            "opened_at": stamp_epoch(head.when),
            "closed_at": None,
            "superseded_by": None,
            "merge_commit": None,
            "reason": None,
            "forge_ref": None,
            "body": None,
        }
        if head.one("Ritmo-Supersedes"):
            superseded_by[str(head.one("Ritmo-Supersedes"))] = request_id
        for review in reviews:
            requests.add_review(
                ReviewRecord(
                    sha=review.sha,
                    request_id=request_id,
                    reviewer=review.one("Ritmo-Reviewer") or "unknown",
                    state=review.one("Ritmo-Review") or "commented",
                    commit=review.one("Ritmo-Reviewed-Commit") or head.sha,
                    submitted_at=stamp_epoch(review.when),
                )
            )

    ended: list[Commit] = []
    for commit in _log(mirror, "--first-parent", "--grep=^Ritmo-Request: ", tip):
        # A merge records a promotion, (a rollback request's) a rollback, or a policy change.
        request_id = commit.one("Ritmo-Request")
        if request_id is None or commit.one("Ritmo-Review"):
            continue
        merged = (
            commit.one("Ritmo-Promotion") or commit.one("Ritmo-Rollback")
            or commit.one("Ritmo-Policy")
        )  # fmt: skip
        if merged and len(commit.parents) == 2:
            head, reviews = _branch_history(mirror, commit.parents[1])
            if head is not None:
                add(head, RequestStatus.MERGED, commit.parents[1], reviews)
                rows.get(request_id, {}).update(
                    merge_commit=commit.sha, closed_at=stamp_epoch(commit.when)
                )
        elif merged and (forge_merge := _forge_merge(commit)):
            # Merged by a person on the forge; Ritmo's record names the forge's merge commit.
            by_forge = _log(mirror, "-n", "1", forge_merge)
            if by_forge and len(by_forge[0].parents) == 2:
                head, reviews = _branch_history(mirror, by_forge[0].parents[1])
                if head is not None:
                    add(head, RequestStatus.MERGED, by_forge[0].parents[1], reviews)
                    rows.get(request_id, {}).update(
                        merge_commit=by_forge[0].sha, closed_at=stamp_epoch(commit.when)
                    )
        elif commit.one("Ritmo-Request-Closed"):
            ended.append(commit)
    for branch_tip in mirror.fetch_branches(BRANCH_PREFIX).values():
        head, reviews = _branch_history(mirror, branch_tip)
        # A branch the forge keeps after a merge is history, not an open request.
        if head is not None and "req-" + head.sha[:16] not in rows:
            add(head, RequestStatus.PENDING, branch_tip, reviews)
    for commit in ended:
        head_sha = commit.one("Ritmo-Request-Head")
        request_id = commit.one("Ritmo-Request")
        if request_id is None or head_sha is None:
            continue
        if request_id not in rows:
            # The branch is gone; the closing commit's trailers say what the request was.
            add(
                Commit(head_sha, (), commit.when, commit.trailers),
                RequestStatus.PENDING,
                head_sha,
                [],
            )
        row = rows.get(request_id)
        if row is not None:
            row.update(
                status=commit.one("Ritmo-Request-Closed"),
                closed_at=stamp_epoch(commit.when),
                reason=commit.one("Ritmo-Request-Close-Reason"),
            )
            for line in commit.trailers.get("Ritmo-Review-Record", []):
                reviewer, state, reviewed, at, sha = line.split(" ")
                requests.add_review(
                    ReviewRecord(sha=sha, request_id=request_id, reviewer=reviewer,
                                 state=state, commit=reviewed, submitted_at=at)
                )  # fmt: skip
    for old, new in superseded_by.items():
        if old in rows:
            rows[old]["superseded_by"] = new
    for row in sorted(rows.values(), key=lambda r: str(r["opened_at"])):
        requests.save(RequestRecord.from_row(row))
    return len(rows)
