"""A push to the default branch by someone else: the branch is fetched at once.

Following it is the runtime's job (`advance`): the index moves, and drift (a pin or a
policy change Ritmo did not make) is recorded by bot/trust/watch.py. The scheduler does
the same at every interval, so a lost webhook delays drift by one interval at most.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.webhooks.payloads import for_manifests, is_ritmo, sender
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

router = Router()


@router.register("push")
def follow_default_branch(event: Event, context: HandlerContext) -> None:
    payload = event.payload
    branch = context.settings.manifests.branch
    if not for_manifests(event, context) or payload.get("ref") != f"refs/heads/{branch}":
        return
    if payload.get("deleted") or is_ritmo(context, sender(event)):
        return  # Ritmo's own push: the index followed it as it landed
    context.writer.sync()
    context.drift.settle()  # the drift this push brought is recorded with the delivery
