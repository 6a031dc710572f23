"""Every webhook behaviour Ritmo has, composed into one router."""

from __future__ import annotations

from bot.webhooks import comments, installations, policy_pulls, pull_requests, pushes, reviews
from bot.webhooks.router import Router


def build_router() -> Router:
    return Router(
        reviews.router,
        pull_requests.router,
        installations.router,
        pushes.router,
        comments.router,
        policy_pulls.router,
    )
