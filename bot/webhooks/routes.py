"""Every webhook behaviour Ritmo has, composed into one router."""

from __future__ import annotations

from bot.webhooks.router import Router


def build_router() -> Router:
    return Router()
