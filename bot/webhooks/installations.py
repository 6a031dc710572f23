"""Track where the GitHub App is installed: `installation` and `installation_repositories`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.store.installations import InstallationIndex
from bot.webhooks.payloads import login
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)
router = Router()

_STATUS = {"deleted": "deleted", "suspend": "suspended", "unsuspend": "active"}


def _installation(event: Event) -> dict[str, Any]:
    installation = event.payload.get("installation")
    if not isinstance(installation, dict) or not isinstance(installation.get("id"), int):
        raise ValueError(f"delivery {event.delivery_id} ({event.name}) has no installation.id")
    return installation


def _names(repositories: Any) -> list[str]:
    return [str(r["full_name"]) for r in repositories or [] if isinstance(r, dict)]


def _store(context: HandlerContext) -> InstallationIndex:
    return InstallationIndex(context.index.engine)


@router.register("installation", "created")
def record_installation(event: Event, context: HandlerContext) -> None:
    installation = _installation(event)
    account = installation.get("account")
    _store(context).installed(
        installation["id"],
        login(account),
        account.get("type") if isinstance(account, dict) else None,
        installation.get("repository_selection"),
        _names(event.payload.get("repositories")),
    )
    log.info("installed on %s (installation %s)", login(account), installation["id"])


@router.register("installation", "deleted")
@router.register("installation", "suspend")
@router.register("installation", "unsuspend")
def record_installation_status(event: Event, context: HandlerContext) -> None:
    installation = _installation(event)
    status = _STATUS[str(event.action)]
    account = login(installation.get("account"))
    _store(context).set_status(installation["id"], status, account)
    log.info("installation %s on %s is %s", installation["id"], account, status)


@router.register("installation_repositories", "added")
@router.register("installation_repositories", "removed")
def record_installation_repositories(event: Event, context: HandlerContext) -> None:
    installation = _installation(event)
    _store(context).change_repositories(
        installation["id"],
        login(installation.get("account")),
        event.payload.get("repository_selection") or installation.get("repository_selection"),
        added=_names(event.payload.get("repositories_added")),
        removed=_names(event.payload.get("repositories_removed")),
    )
