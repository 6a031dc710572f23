"""Pull requests people open that change `.ritmo/policy.yaml`: judged by `policy_changes`.

The policy in force (never the one in the pull request) decides: Ritmo shows its judgement
in the `ritmo/approval` status on the head. Merged with the rule held, a signed commit on
the default branch vouches for the merged policy (`Ritmo-Policy: <blob>`, the approvers);
merged without it, nothing vouches for it: an ALERT, and the policy in force stays.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.forge.github import GitHubForge
from bot.policy.load import BRANCH_POLICY_PATH
from bot.promotions.policy_change import PolicyRequests
from bot.webhooks.payloads import for_manifests, login, promotion_pull, timestamp
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)
router = Router()


def policy_pull(
    event: Event, context: HandlerContext
) -> tuple[dict[str, Any], PolicyRequests] | None:
    """The pull request and the service judging it, when it is a person's pull request
    into the default branch that changes the policy file."""
    pull = event.payload.get("pull_request")
    if not isinstance(pull, dict) or not for_manifests(event, context):
        return None
    if promotion_pull(event, context) is not None:
        return None  # Ritmo's own requests (a policy change among them) settle themselves
    if (pull.get("base") or {}).get("ref") != context.settings.manifests.branch:
        return None
    service = context.requests
    if not isinstance(service, PolicyRequests) or not isinstance(service.forge, GitHubForge):
        return None
    if BRANCH_POLICY_PATH not in service.forge.changed_files(str(pull["number"])):
        return None
    return pull, service


@router.register("pull_request", "opened")
@router.register("pull_request", "reopened")
@router.register("pull_request", "synchronize")
@router.register("pull_request", "ready_for_review")
@router.register("pull_request_review", "submitted")
@router.register("pull_request_review", "edited")
@router.register("pull_request_review", "dismissed")
def show_policy_pull(event: Event, context: HandlerContext) -> None:
    found = policy_pull(event, context)
    if found is None or found[0].get("state") == "closed":
        return
    pull, service = found
    number, head, author = str(pull["number"]), str(pull["head"]["sha"]), login(pull.get("user"))
    decision = service.judge_pull(number, head, author, timestamp(pull["created_at"]))
    service.show_pull(number, head, author, decision)
    log.info(
        "delivery %s: policy pull request #%s is %s (%s)",
        event.delivery_id, number, decision.status, decision.progress,
    )  # fmt: skip


@router.register("pull_request", "closed")
def accept_policy_pull(event: Event, context: HandlerContext) -> None:
    found = policy_pull(event, context)
    if found is None or not found[0].get("merged"):
        return  # closed unmerged: nothing changed
    pull, service = found
    number, head, author = str(pull["number"]), str(pull["head"]["sha"]), login(pull.get("user"))
    # Judged before the merge is synced: the policy in force, not the merged one.
    decision = service.judge_pull(
        number, head, author, timestamp(pull["created_at"]), at=timestamp(pull["merged_at"])
    )
    service.accept_merged_pull(
        number, str(pull["merge_commit_sha"]), login(pull.get("merged_by")), author, head,
        decision,
    )  # fmt: skip
