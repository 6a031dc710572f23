"""POST/GET /api/v1/artifacts: CI registers artifacts; anyone with artifacts:read reads them."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, g, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.api.paging import Page, PerPage, offset, page_of
from bot.api.parse import body_of, query_of
from bot.auth import Scope
from bot.manifests.records import NAME_PATTERN, VERSION_PATTERN, ArtifactSpec
from bot.manifests.writer import Conflict
from bot.registry import SignatureRefused, UnknownApp
from bot.telemetry import correlation, logs

blueprint = Blueprint("artifacts", __name__, url_prefix="/api/v1/artifacts")


class ArtifactQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    promotion_status: str | None = Field(default=None, pattern=NAME_PATTERN)
    page: Page = 1
    per_page: PerPage = 50


def correlation_id() -> str:
    given = request.headers.get("X-Correlation-ID")
    if given is None:
        # The one the request's logs carry (bot/telemetry), so logs, trailers and the
        # response agree.
        return logs.correlation_id.get() or str(uuid.uuid4())
    if not correlation.valid(given):
        raise ApiError(
            400, "header X-Correlation-ID: use 1-128 letters, digits and . _ : - (or leave it out)"
        )
    return given


@blueprint.post("")
@require_scope(Scope.ARTIFACTS_WRITE)
def register_artifact() -> tuple[Response, int]:
    cid = correlation_id()
    spec = body_of(ArtifactSpec, "body must be a JSON object with the artifact's fields")
    try:
        spec.resolved_version()
    except ValueError as exc:
        field = [{"field": "version", "message": str(exc)}]
        raise ApiError(422, f"invalid request: {exc}", field) from None
    try:
        outcome = current_runtime().registry.register(spec, g.principal.name, cid)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    except SignatureRefused as exc:
        raise ApiError(422, str(exc), [{"field": "signature", "message": str(exc)}]) from None
    except UnknownApp as exc:
        raise ApiError(
            422, f"unknown app: {exc}", [{"field": "name", "message": str(exc)}]
        ) from None
    response = jsonify({**outcome.artifact.as_json(), "promotions": outcome.promotions})
    response.headers["X-Correlation-ID"] = cid
    if outcome.created:
        artifact_id = outcome.artifact.record.id
        response.headers["Location"] = url_for(".show_artifact", artifact_id=artifact_id)
    return response, 201 if outcome.created else 200


@blueprint.get("/<artifact_id>")
@require_scope(Scope.ARTIFACTS_READ)
def show_artifact(artifact_id: str) -> Response:
    found = current_runtime().index.get(artifact_id)
    if found is None:
        raise ApiError(404, f"no artifact {artifact_id!r}; list them with GET /api/v1/artifacts")
    # Environments a rollback keeps it out of, until someone promotes it there explicitly.
    return jsonify({**found.as_json(), "held_in": current_runtime().index.holds_of(artifact_id)})


@blueprint.get("")
@require_scope(Scope.ARTIFACTS_READ)
def list_artifacts() -> Response:
    query = query_of(ArtifactQuery)
    items, total = current_runtime().index.search(
        name=query.name,
        version=query.version,
        promotion_status=query.promotion_status,
        offset=offset(query.page, query.per_page),
        limit=query.per_page,
    )
    found = [a.as_json() for a in items]
    return page_of(".list_artifacts", found, total, query.page, query.per_page)
