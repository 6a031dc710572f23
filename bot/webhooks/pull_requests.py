"""Promotion pull requests changed on GitHub: pushed to by others, closed, merged by a person.

`opened` and `reopened` are not routed: Ritmo opens its own pull requests, and a
reopened one does not revive a request that already ended.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.statuses import RequestStatus
from bot.webhooks.payloads import is_ritmo, login, promotion_request, sender, timestamp
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)
router = Router()


@router.register("pull_request", "synchronize")
def reject_tampered_promotion(event: Event, context: HandlerContext) -> None:
    if (found := promotion_request(event, context)) is None:
        return
    pull, request = found
    after = str(event.payload.get("after") or pull["head"]["sha"])
    if request.status != RequestStatus.PENDING or after == request.tip:
        return  # Ritmo's own push, or a request that already ended
    context.requests.tampered(request.id, sender(event), after)


@router.register("pull_request", "closed")
def record_closed_promotion(event: Event, context: HandlerContext) -> None:
    if (found := promotion_request(event, context)) is None:
        return
    pull, request = found
    if request.status != RequestStatus.PENDING:
        return  # Ritmo ended it (merged, superseded, expired, rejected) and said so
    if pull.get("merged"):
        by = login(pull.get("merged_by"))
        if is_ritmo(context, by):
            return  # Ritmo's signed merge landing: it saves the request itself
        held = context.requests.merged_on_forge(
            request.id,
            str(pull["merge_commit_sha"]),
            by,
            str(pull["head"]["sha"]),
            timestamp(pull["merged_at"]),
        )
        log.info(
            "delivery %s: #%s merged by %s -> %s recorded; policy held: %s",
            event.delivery_id, pull["number"], by, request.id, held,
        )  # fmt: skip
        return
    by = sender(event)
    if is_ritmo(context, by):
        return  # Ritmo closed it; its closing commit is on its way
    context.requests.close(
        request.id, RequestStatus.REJECTED,
        f"pull request #{pull['number']} was closed by {by} without merging",
        tell_forge=False,  # GitHub already shows it closed, by whom
    )  # fmt: skip
