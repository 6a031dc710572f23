"""GET /: a read-only dashboard of what runs where, open requests and recent deployments.

Authentication: none, like /healthz. A browser cannot send Ritmo's bearer tokens, and the
page shows only what anyone who can read the manifests repository already sees in its
commits and trailers: versions per environment, who requested, approved and deployed
them, deployment health, rollbacks and pull-request links. It shows no tokens, secrets,
signatures, log or target URLs, or CD messages, and it changes nothing (GET only). Bind
Ritmo to loopback or a trusted network as usual; when the server is reachable from
further away and the names of people should not be, put an authenticating proxy in front
of `/` (the API under /api/v1 keeps its own tokens).

`dashboard_data(runtime)` assembles a plain dict (no HTML): what runs where is GET
/api/v1/environments' table (git's pins, unrecorded ones marked), the rest the indexes';
`templates/dashboard/index.html` renders it with autoescaping on (commit text and names
are untrusted: `bot.templates.Templates` does not escape, it renders commit messages).

The page is anonymous, so it costs O(1) per request whatever the history: apps come
`PER_PAGE` to a page (`?page=N`), and each page is rendered once per state of what it
shows (`dashboard_state`) and then served from `bot.api.dashboard_cache`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2
from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict, Field

from bot.api.context import current_runtime
from bot.api.dashboard_cache import PageCache
from bot.api.errors import ApiError
from bot.api.parse import query_of
from bot.deploy.records import FAILED
from bot.manifests.trailers import parse_trailers
from bot.runtime import Runtime
from bot.store.deployment_record import Deployment
from bot.store.request_record import RequestRecord
from bot.timestamps import parse_or_none

log = logging.getLogger(__name__)

blueprint = Blueprint("dashboard", __name__)

RECENT = 20
PER_PAGE = 50  # apps on one page of the dashboard


class DashboardQuery(BaseModel):
    """`GET /?page=N`: the page of apps, 1 first. Other parameters are ignored."""

    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=100_000)


_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def age(stamp: Any, now: datetime) -> str | None:
    """How long ago, shortly: 42s, 5m, 3h, 2d (None when unknown)."""
    then = parse_or_none(stamp)
    if then is None:
        return None
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def pull_request_url(api_url: str, repository: str, number: str) -> str:
    """The web address of a pull request; GitHub Enterprise's API lives at HOST/api/v3."""
    parts = urlsplit(api_url)
    host = "github.com" if parts.netloc == "api.github.com" else parts.netloc
    return f"{parts.scheme or 'https'}://{host}/{repository}/pull/{number}"


def _request_link(runtime: Runtime, forge_ref: Any) -> str | None:
    forge = runtime.settings.forge
    if forge.kind != "github" or not forge.github.repository or not str(forge_ref or "").isdigit():
        return None
    return pull_request_url(forge.github.api_url, forge.github.repository, str(forge_ref))


def _latest(record: Deployment) -> Any:
    """When a deployment record last changed (ISO 8601 text compares in time order)."""
    return max(str(record.created_at or ""), str(record.updated_at or "")) or None


def _cell(env: str, pin: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A cell of GET /api/v1/environments, as the page shows it."""
    deployment = pin.get("deployment")
    cell: dict[str, Any] = {
        "env": env,
        "version": pin["version"],
        "artifact_id": pin["artifact_id"],
        "recorded": pin["recorded"],
        "commit": pin["commit"],
        "short_commit": (pin["commit"] or "")[:7],
        "promoted_by": pin["pinned_by"],
        "promoted_at": pin["pinned_at"],
        "age": age(pin["pinned_at"], now) if pin["version"] else None,
        "rolled_back_from": pin["rolled_back_from"],
        "health": None,
        "deployed_version": None,
        "deployed_at": None,
        "deployment_id": None,
        "deployed_matches": False,
    }
    if deployment is not None:
        cell.update(
            health="rolled back" if deployment["rolled_back"] else deployment["status"],
            deployed_version=deployment["version"],
            deployed_at=deployment["at"],
            deployment_id=deployment["id"],
            deployed_matches=bool(pin["artifact_id"])
            and deployment["artifact_id"] == pin["artifact_id"],
        )
    return cell


def _describe(runtime: Runtime, row: RequestRecord) -> dict[str, Any]:
    """The request with its approval progress (which may ask the forge for reviews)."""
    try:
        return runtime.requests.describe(row.id)
    except Exception as exc:  # the forge is down: show the request, without progress
        log.warning("dashboard: could not describe %s: %s", row.id, exc)
        return {**row.as_row(), "from": row.from_env, "to": row.to_env, "progress": None,
                "decision": None, "reason": "approval state unavailable; see the log"}  # fmt: skip


def _version_of(runtime: Runtime, artifact_id: str | None) -> str | None:
    if not artifact_id:
        return None
    found = runtime.index.get(artifact_id)
    return str(found.record.version) if found else None


def rollback_why(status: str | None, reason: str | None) -> str:
    """Why a rollback happened, as the page says it: the deployment failed (or degraded),
    or someone rolled back one that had not failed; then the reason they gave."""
    if status in FAILED:
        why = f"deployment {status}"
    elif status is None:
        why = "rolled back"  # no deployment named (or no longer indexed)
    else:
        why = f"rolled back by hand (the deployment had {status})"
    return f"{why}: {reason}" if reason else why


def _reasons(runtime: Runtime, commits: list[str]) -> dict[str, str]:
    """commit -> the Ritmo-Reason its rollback recorded, for the commits this mirror has."""
    if not commits:
        return {}
    try:
        said = runtime.mirror.log(
            "--no-walk=unsorted", "--ignore-missing", "--format=%x00%H%x00%B", *commits, "--"
        )
    except OSError as exc:
        log.warning("dashboard: could not read rollback reasons: %s", exc)
        return {}
    parts = said.split("\0")[1:]
    found = {}
    for sha, message in zip(parts[::2], parts[1::2], strict=False):
        reason = parse_trailers(message).get("Ritmo-Reason")
        if reason:
            found[sha.strip()] = reason[0]
    return found


def pages_of(count: int) -> int:
    """How many pages `count` apps take (an empty installation still has page 1)."""
    return max(1, -(-count // PER_PAGE))


def dashboard_data(runtime: Runtime, now: datetime | None = None, page: int = 1) -> dict[str, Any]:
    """Everything page `page` shows, as plain data: its apps from the environments table
    (git's pins, read once per tip) and the indexes."""
    now = now or datetime.now(UTC)
    pending = [_describe(runtime, r) for r in runtime.requests_index.pending()]
    table = runtime.environments.table()  # what GET /api/v1/environments answers
    envs = table["environments"]
    shown = table["apps"][(page - 1) * PER_PAGE : page * PER_PAGE]
    apps = [
        {"app": entry["app"], "cells": [_cell(e, entry["environments"][e], now) for e in envs]}
        for entry in shown
    ]
    requests = []
    for r in pending:
        requests.append(
            {
                "id": r["id"],
                "app": r["app"],
                "version": r["version"],
                "from": r["from"],
                "to": r["to"],
                "progress": r.get("progress"),
                "missing": r.get("missing") or [],
                "approvers": r.get("approvers") or [],
                "decision": r.get("decision"),
                "reason": r.get("reason"),
                "requested_by": r["requested_by"],
                "opened_at": r["opened_at"],
                "age": age(r["opened_at"], now),
                "branch": r["branch"],
                "forge_ref": r["forge_ref"],
                "link": _request_link(runtime, r["forge_ref"]),
            }
        )
    deployments = [
        {
            "id": d.id,
            "app": d.app,
            "environment": d.environment,
            "version": d.version,
            "status": str(d.status),
            "rolled_back": bool(d.rolled_back_by),
            "deployed_by": d.deployed_by,
            "at": _latest(d),
            "age": age(_latest(d), now),
        }
        for d in runtime.deployments.records.search(limit=RECENT)[0]
    ]
    rollbacks = []
    recent = runtime.index.rollbacks()[:RECENT]
    reasons = _reasons(runtime, [rb["commit"] for rb in recent])
    for rb in recent:
        replaced = runtime.index.get(rb["failed_artifact"])
        found = (
            runtime.deployments.records.get(rb["deployment_id"]) if rb["deployment_id"] else None
        )
        status = str(found.status) if found else None
        rollbacks.append(
            {
                "commit": rb["commit"],
                "app": replaced.record.name if replaced else None,
                "environment": rb["environment"],
                # Rolled back is not failed: a healthy deployment can be rolled back too.
                "rolled_back_version": replaced.record.version if replaced else None,
                "restored_version": _version_of(runtime, rb["restored_artifact"]),
                "deployment_status": status,
                "failed": status in FAILED,
                "why": rollback_why(status, reasons.get(rb["commit"])),
                "rolled_back_by": rb["rolled_back_by"],
                "at": rb["rolled_back_at"],
                "age": age(rb["rolled_back_at"], now),
            }
        )
    return {
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environments": envs,
        "apps": apps,
        "page": page,
        "pages": pages_of(len(table["apps"])),
        "app_count": len(table["apps"]),
        "open_requests": requests,
        "deployments": deployments,
        "rollbacks": rollbacks,
    }


@cache
def _jinja(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # HTML: names, versions and reasons are untrusted text
    )


def render_dashboard(runtime: Runtime, data: dict[str, Any]) -> str:
    return _jinja(str(runtime.templates.root)).get_template("dashboard/index.html").render(**data)


def dashboard_state(runtime: Runtime) -> tuple[Any, ...]:
    """What the page shows changes only when one of these does: the index's tip (records,
    pins, rollbacks), the deployment ledger's tip, the open requests (a review moves a
    request branch's tip) and the policy in force. A few small reads, whatever the size."""
    pending = tuple((r.id, r.tip, r.status) for r in runtime.requests_index.pending())
    return (
        runtime.index.tip(),
        runtime.deployments.records.ledger_tip(),
        pending,
        id(runtime.policy()),
    )


def _page_count(runtime: Runtime) -> int:
    return pages_of(len(runtime.environments.table()["apps"]))


@blueprint.get("/")
def dashboard() -> Response:
    runtime = current_runtime()
    page = query_of(DashboardQuery).page
    cache: PageCache = current_app.extensions.setdefault("ritmo.dashboard", PageCache())
    state = cache.state(lambda: dashboard_state(runtime))
    pages = int(cache.get(state, "pages", lambda: str(_page_count(runtime))))
    if page > pages:
        raise ApiError(
            404,
            f"no page {page} of the dashboard",
            [{"field": "page", "message": f"is past the last page; the pages are 1 to {pages}"}],
        )
    text = cache.get(
        state, page, lambda: render_dashboard(runtime, dashboard_data(runtime, page=page))
    )
    return Response(text, mimetype="text/html", headers=_HEADERS)
