"""A review on a promotion pull request re-evaluates it: status, and a merge once approved."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.webhooks.payloads import promotion_request, sender
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)
router = Router()


@router.register("pull_request_review", "submitted")
@router.register("pull_request_review", "edited")
@router.register("pull_request_review", "dismissed")
def settle_reviewed_promotion(event: Event, context: HandlerContext) -> None:
    if (found := promotion_request(event, context)) is None:
        return  # not a promotion request: reviews elsewhere are none of Ritmo's business
    pull, request = found
    # The payload's review is only the trigger: settle reads every review from GitHub,
    # so an edited, dismissed or out-of-order delivery cannot leave a stale count.
    status = context.requests.settle(request.id)
    log.info(
        "delivery %s: review %s by %s on #%s -> %s is %s",
        event.delivery_id, event.action, sender(event), pull["number"], request.id, status,
    )  # fmt: skip
