"""The deployment API: CD systems report deployments; anyone may roll one back.

POST /api/v1/deployments needs `deployments:write`, the CD credential that can do nothing
else. Reading needs `artifacts:read` or `deployments:write`. A rollback is a change to an
environment: `deployments:write` may roll back a failed or degraded deployment only, any
other takes `promotions:write`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from flask import Blueprint, Response, g, jsonify, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from bot.api.artifacts import correlation_id
from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError, invalid_fields
from bot.api.paging import Page, PerPage, has_next, offset, page_of
from bot.api.parse import body_of, json_body, query_of
from bot.auth import Scope
from bot.deploy.records import Observation
from bot.deploy.service import DeploymentService
from bot.manifests.records import NAME_PATTERN
from bot.statuses import DeploymentStatus, RequestStatus, values

blueprint = Blueprint("deployments", __name__, url_prefix="/api/v1/deployments")

Line = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[\x20-\x7e]*$")]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[\x21-\x7e]+$")]
# Described inline, as a Literal would be: a query parameter's schema takes no $ref.
Status = Annotated[
    DeploymentStatus, WithJsonSchema({"type": "string", "enum": list(values(DeploymentStatus))})
]


class DeploymentBody(BaseModel):
    """A deployment report, with what a CD system knows about the outcome."""

    model_config = ConfigDict(extra="forbid")

    artifact_id: str = Field(pattern=r"^art-[0-9a-f]{20}$")
    environment: str = Field(pattern=NAME_PATTERN)
    target_type: Line | None = None
    target_url: Url | None = None
    deployed_by: Line | None = None
    # The title a plain field gets; WithJsonSchema leaves it out.
    status: Status = Field(default=DeploymentStatus.SUCCEEDED, title="Status")
    revision: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}$",
        description="The manifests commit deployed; default: the default branch's tip.",
    )
    log_url: Url | None = None
    message: Annotated[str, StringConstraints(max_length=1000)] = ""


class DeploymentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str | None = Field(default=None, pattern=NAME_PATTERN)
    env: str | None = Field(default=None, pattern=NAME_PATTERN)
    status: Status | None = None
    artifact_id: str | None = Field(default=None, pattern=r"^art-[0-9a-f]{20}$")
    page: Page = 1
    per_page: PerPage = 50


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: (
        Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[\x20-\x7e]*$")]
        | None
    ) = None


def _service() -> DeploymentService:
    service: DeploymentService = current_runtime().deployments
    return service


@blueprint.post("")
@require_scope(Scope.DEPLOYMENTS_WRITE)
def create_deployment() -> tuple[Response, int]:
    cid = correlation_id()
    body = body_of(DeploymentBody, "body must be a JSON object with artifact_id and environment")
    seen = Observation(
        status=body.status,
        source="api",
        trigger=f"api:{body.status}",
        revision=body.revision or "",
        at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        message=" ".join(body.message.split()),
        deployed_by=body.deployed_by or g.principal.name,
        log_url=body.log_url,
        target_type=body.target_type,
        target_url=body.target_url,
    )
    outcome = _service().create(body.artifact_id, body.environment, seen, cid)
    response = jsonify(outcome.as_json())
    response.headers["X-Correlation-ID"] = cid
    return response, 201 if outcome.created else 200


@blueprint.get("")
@require_scope(Scope.ARTIFACTS_READ, Scope.DEPLOYMENTS_WRITE)
def list_deployments() -> Response:
    query = query_of(DeploymentQuery)
    found, total = _service().records.search(
        app=query.app,
        env=query.env,
        status=query.status,
        artifact_id=query.artifact_id,
        offset=offset(query.page, query.per_page),
        limit=query.per_page,
    )
    more = has_next(query.page, query.per_page, total)
    items = [record.to_dict() for record in found]
    return page_of(".list_deployments", items, total, query.page, query.per_page, has_next=more)


@blueprint.get("/<deployment_id>")
@require_scope(Scope.ARTIFACTS_READ, Scope.DEPLOYMENTS_WRITE)
def show_deployment(deployment_id: str) -> Response:
    record = _service().records.get(deployment_id)
    if record is None:
        raise ApiError(404, f"no deployment {deployment_id!r}; list them at /api/v1/deployments")
    return jsonify(record.to_dict())


@blueprint.post("/<deployment_id>/rollback")
@require_scope(Scope.DEPLOYMENTS_WRITE, Scope.PROMOTIONS_WRITE)
def rollback_deployment(deployment_id: str) -> tuple[Response, int]:
    cid = correlation_id()
    raw = json_body() if request.get_data(cache=True) else {}
    try:
        body = RollbackBody.model_validate(raw if isinstance(raw, dict) else {"": raw})
    except ValidationError as exc:
        raise invalid_fields(exc) from None
    # deployments:write rolls back what failed; a healthy deployment takes a promoter.
    healthy_too = g.principal.allows(Scope.PROMOTIONS_WRITE)
    done = _service().rollbacks.rollback(
        deployment_id, g.principal.name, cid, body.reason, healthy_too=healthy_too
    )
    response = jsonify(done)
    response.headers["X-Correlation-ID"] = cid
    return response, 202 if done["status"] == RequestStatus.PENDING else 201
