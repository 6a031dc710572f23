"""GET /api/v1/outbox and POST /api/v1/outbox/<id>/retry: notifications, for admins.

The list is newest first, paged like the other lists (items, total, page, per_page and a
Link rel="next" header); `status` narrows it, e.g. `?status=dead` for the dead letters.
Retrying requeues a dead letter with fresh attempts, due at once.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict

from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.api.paging import Page, PerPage, page_of
from bot.api.parse import query_of
from bot.auth import Scope
from bot.notify.outbox import Outbox
from bot.store.outbox import NotDead

blueprint = Blueprint("outbox", __name__, url_prefix="/api/v1/outbox")


class OutboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["queued", "delivering", "delivered", "dead"] | None = None
    page: Page = 1
    per_page: PerPage = 50


# SQLite's INTEGER is 64-bit: a larger id names no row (and would not even bind).
_MAX_ROW_ID = 2**63 - 1


def _outbox() -> Outbox:
    outbox: Outbox = current_runtime().outbox
    return outbox


@blueprint.get("")
@require_scope(Scope.ADMIN)
def list_outbox() -> Response:
    query = query_of(OutboxQuery)
    items, total = _outbox().search(query.status, query.page, query.per_page)
    found = [row.as_json() for row in items]
    return page_of(".list_outbox", found, total, query.page, query.per_page)


@blueprint.get("/<int:row_id>")
@require_scope(Scope.ADMIN)
def show_outbox(row_id: int) -> Response:
    row = _outbox().get(row_id) if row_id <= _MAX_ROW_ID else None
    if row is None:
        raise ApiError(404, f"no notification {row_id}; list them with GET /api/v1/outbox")
    return jsonify(row.as_json())


@blueprint.post("/<int:row_id>/retry")
@require_scope(Scope.ADMIN)
def retry_outbox(row_id: int) -> Response:
    try:
        row = _outbox().retry(row_id) if row_id <= _MAX_ROW_ID else None
    except NotDead as exc:
        raise ApiError(409, str(exc)) from None
    if row is None:
        raise ApiError(404, f"no notification {row_id}; list them with GET /api/v1/outbox")
    return jsonify(row.as_json())
