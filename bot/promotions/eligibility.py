"""Whether an approved request may still merge: the merge-time re-check (pure).

Approvals are given for an artifact as it stood when reviewers looked. By the time the
policy holds, the artifact may have been rolled back out of the source environment,
held there or in the target, replaced by a newer request, or the branch may have moved.
Any of these makes the request stale: it closes instead of merging (DESIGN.md, trust
model: "for an artifact still eligible then").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MergeFacts:
    """What is true now, at the moment of merging, as git and the index say."""

    app: str
    version: str
    from_env: str
    to_env: str
    rollback: bool  # a rollback request restores an earlier artifact: no source to stay in
    artifact_in: str | None  # the environment the artifact has reached (promotion_status)
    held_in: frozenset[str]  # environments a rollback holds the artifact out of
    newest_request: str | None  # the newest request for app and target environment
    request_id: str
    branch: str
    branch_tip: str | None  # the request branch on the remote now (None: gone)
    reviewed_tip: str  # the tip the reviews were recorded on
    artifact: bool = True  # False: a policy change, no artifact to be eligible


def stale_reason(facts: MergeFacts) -> str | None:
    """Why the request must not merge now, or None when it is still eligible."""
    label = f"{facts.app} {facts.version}"
    if facts.newest_request is not None and facts.newest_request != facts.request_id:
        return f"{facts.newest_request} is a newer request for {facts.app} in {facts.to_env}"
    if facts.branch_tip != facts.reviewed_tip:
        where = f"is at {facts.branch_tip[:12]}" if facts.branch_tip else "is gone"
        return (
            f"{facts.branch} {where}, not the reviewed {facts.reviewed_tip[:12]}; "
            "ask for the promotion again"
        )
    if not facts.artifact:
        return None
    for env in (facts.from_env, facts.to_env):
        if env in facts.held_in and not (facts.rollback and env == facts.from_env):
            return (
                f"{label} is held out of {env} by a rollback; promote a fixed version, "
                f"or promote {facts.version} into {env} again first"
            )
    if not facts.rollback and facts.artifact_in != facts.from_env:
        return (
            f"{label} is no longer in {facts.from_env} (it is in {facts.artifact_in}, "
            f"rolled back out of {facts.from_env}); promote it to {facts.from_env} again first"
        )
    return None
