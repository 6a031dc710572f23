"""POST /api/v1/artifacts/{id}/promote and GET /api/v1/promotions: the brief's promotion API."""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from bot.api.artifacts import correlation_id, json_body
from bot.api.auth import require_scope
from bot.api.errors import ApiError, invalid_fields
from bot.auth import Scope
from bot.manifests.records import NAME_PATTERN
from bot.manifests.writer import Conflict, WriteUnavailable
from bot.promotions.service import PromotionInput, PromotionRefused
from bot.runtime import Runtime

blueprint = Blueprint("promotions", __name__, url_prefix="/api/v1")

EnvName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Note = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[\x20-\x7e]*$")]
Ticket = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._#:/-]{0,127}$")]


class PromoteBody(BaseModel):
    """The brief's body; `from`/`to` or `from_environment`/`to_environment`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: EnvName | None = Field(default=None, alias="from")
    to: EnvName | None = None
    from_environment: EnvName | None = None
    to_environment: EnvName | None = None
    notes: Note | None = None
    approval_ticket: Ticket | None = None
    approved_by: Note | list[Note] | None = Field(
        default=None, description="Stored as a note. It never counts as an approval."
    )
    auto: bool = Field(default=False, description="The caller is automation (a note).")

    @model_validator(mode="after")
    def _one_name_each(self) -> PromoteBody:
        for short, long in (("from_", "from_environment"), ("to", "to_environment")):
            given = [v for v in (getattr(self, short), getattr(self, long)) if v is not None]
            label = short.rstrip("_")
            if not given:
                raise ValueError(f"{label} (or {long}) is required")
            if len(set(given)) > 1:
                raise ValueError(f"{label} and {long} disagree; send one of them")
        return self

    def ask(self) -> PromotionInput:
        note = self.approved_by
        return PromotionInput(
            from_env=str(self.from_ or self.from_environment),
            to_env=str(self.to or self.to_environment),
            notes=self.notes,
            approval_ticket=self.approval_ticket,
            approved_by_note=", ".join(note) if isinstance(note, list) else note,
        )


class PromotionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: EnvName | None = None
    env: EnvName | None = None
    artifact_id: Annotated[str, StringConstraints(pattern=r"^art-[0-9a-f]{20}$")] | None = None
    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=50, ge=1, le=500)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["ritmo"]
    return runtime


@blueprint.post("/artifacts/<artifact_id>/promote")
@require_scope(Scope.PROMOTIONS_WRITE)
def promote_artifact(artifact_id: str) -> tuple[Response, int]:
    cid = correlation_id()
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(422, 'body must be a JSON object: {"from": ..., "to": ...}')
    try:
        ask = PromoteBody.model_validate(body).ask()
    except ValidationError as exc:
        raise invalid_fields(exc) from None
    runtime = _runtime()
    artifact = runtime.index.get(artifact_id)
    if artifact is None:
        raise ApiError(404, f"no artifact {artifact_id!r}; list them with GET /api/v1/artifacts")
    try:
        outcome: dict[str, Any] = runtime.promotions.promote(artifact, ask, g.principal.name, cid)
    except (PromotionRefused, Conflict) as exc:
        raise ApiError(409, str(exc)) from None
    except WriteUnavailable as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    promotion = runtime.index.promotion("pro-" + str(outcome["commit"])[:16])
    response = jsonify({**outcome, "artifact_id": artifact_id, "promotion": promotion})
    response.headers["X-Correlation-ID"] = cid
    return response, 201


@blueprint.get("/promotions")
@require_scope(Scope.ARTIFACTS_READ)
def list_promotions() -> Response:
    try:
        query = PromotionQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise invalid_fields(exc, status=400) from None
    items, total = _runtime().index.search_promotions(
        app=query.app,
        env=query.env,
        artifact_id=query.artifact_id,
        offset=(query.page - 1) * query.per_page,
        limit=query.per_page,
    )
    return jsonify({"items": items, "total": total, "page": query.page, "per_page": query.per_page})


@blueprint.get("/promotions/<promotion_id>")
@require_scope(Scope.ARTIFACTS_READ)
def show_promotion(promotion_id: str) -> Response:
    found = _runtime().index.promotion(promotion_id)
    if found is None:
        raise ApiError(404, f"no promotion {promotion_id!r}; list them with GET /api/v1/promotions")
    return jsonify(found)
