"""Reading GitHub's webhook payloads: whose repository, which promotion pull request."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import timestamps
from bot.promotions.request_view import BRANCH_PREFIX
from bot.store.request_record import RequestRecord
from bot.webhooks.router import Event

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext


class NotIndexedYet(Exception):
    """The delivery names a promotion request Ritmo has not recorded yet.

    GitHub does not promise order: a review can arrive before Ritmo saved the pull
    request's number. Raising makes the queue retry the delivery later, with backoff."""


def login(user: Any) -> str:
    """A user object's login; a deleted account shows as GitHub's "ghost"."""
    if isinstance(user, dict) and isinstance(user.get("login"), str):
        return str(user["login"])
    return "ghost"


def sender(event: Event) -> str:
    return login(event.payload.get("sender"))


def is_ritmo(context: HandlerContext, who: str) -> bool:
    """Whether `who` is the app's bot user, the one that pushes, merges and closes."""
    return who.casefold() == context.forge.author().casefold()


def for_manifests(event: Event, context: HandlerContext) -> bool:
    """Whether the delivery is about the manifests repository (the app may be installed
    on others, whose pull request numbers mean nothing here)."""
    repository = event.payload.get("repository")
    name = repository.get("full_name") if isinstance(repository, dict) else None
    ours = context.settings.forge.github.repository
    return isinstance(name, str) and ours is not None and name.casefold() == ours.casefold()


def promotion_pull(event: Event, context: HandlerContext) -> dict[str, Any] | None:
    """The pull request, when it is a promotion request: a `ritmo/promote/` branch of the
    manifests repository itself (a fork's branch of the same name is not Ritmo's)."""
    pull = event.payload.get("pull_request")
    if not isinstance(pull, dict) or not for_manifests(event, context):
        return None
    head = pull.get("head") or {}
    ref, repo = head.get("ref"), head.get("repo") or {}
    if not isinstance(ref, str) or not ref.startswith(BRANCH_PREFIX):
        return None
    ours = str(context.settings.forge.github.repository).casefold()
    if str(repo.get("full_name", "")).casefold() != ours:
        return None
    return pull


def indexed_request(pull: dict[str, Any], context: HandlerContext) -> RequestRecord:
    """The request shown as this pull request; NotIndexedYet (retried) when unknown."""
    request = context.requests_index.by_forge_ref(str(pull["number"]))
    if request is None:
        raise NotIndexedYet(
            f"pull request #{pull['number']} ({pull['head']['ref']}) is not a known promotion "
            "request yet; retrying later"
        )
    return request


def promotion_request(
    event: Event, context: HandlerContext
) -> tuple[dict[str, Any], RequestRecord] | None:
    """The promotion pull request and the request it shows; None when the delivery is
    not about a promotion pull request, NotIndexedYet (retried) when Ritmo has not
    recorded it yet."""
    pull = promotion_pull(event, context)
    return None if pull is None else (pull, indexed_request(pull, context))


def timestamp(value: Any) -> datetime:
    """GitHub's ISO 8601 times ("2026-03-02T12:00:00Z") as aware datetimes."""
    return timestamps.parse(str(value))
