"""The promotion API: promote an artifact (by id, or by app and version), list promotions
and requests, review a request."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from flask import Blueprint, Response, g, jsonify, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from bot.api.artifacts import correlation_id
from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.api.paging import Page, PerPage, offset, page_of
from bot.api.parse import json_body, model_of, query_of
from bot.auth import Scope
from bot.manifests.records import NAME_PATTERN, VERSION_PATTERN
from bot.manifests.records import artifact_id as artifact_id_of
from bot.manifests.writer import Conflict
from bot.promotions.service import PromotionInput, PromotionRefused
from bot.statuses import RequestStatus, values
from bot.store.index import IndexedArtifact
from bot.store.query import promotion_history

blueprint = Blueprint("promotions", __name__, url_prefix="/api/v1")

EnvName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Note = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[\x20-\x7e]*$")]
Ticket = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._#:/-]{0,127}$")]


class _BodyProblem(Exception):
    """Raised past pydantic (which would name no field): `field` is wrong, `message` why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class PromoteBody(BaseModel):
    """`from` (or `from_environment`) and `to` (or `to_environment`) are required: both
    names of one may be sent only if they agree. They name environments of the policy in
    force: `from` the one the artifact is in now, `to` one a promotion rule leads to from
    it (the next, unless a rule says otherwise); anything else is a 409 that says why, as
    is a freeze, a hold after a rollback, or a deployment the rule waits for. A 404: no
    artifact of that id. A rule that requires approval opens a request instead (202)."""

    from_required: ClassVar[bool] = True

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        # What _one_name_each checks, so that the schema is as strict as the validation.
        json_schema_extra={
            "allOf": [
                {"anyOf": [{"required": ["from"]}, {"required": ["from_environment"]}]},
                {"anyOf": [{"required": ["to"]}, {"required": ["to_environment"]}]},
            ]
        },
    )

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
            if not given and (label == "to" or self.from_required):
                raise _BodyProblem(label, f"{label} (or {long}) is required, e.g. staging")
            if len(set(given)) > 1:
                raise _BodyProblem(label, f"{label} and {long} disagree; send one of them")
        return self

    def ask(self, default_from: str | None = None) -> PromotionInput:
        note = self.approved_by
        return PromotionInput(
            from_env=str(self.from_ or self.from_environment or default_from),
            to_env=str(self.to or self.to_environment),
            notes=self.notes,
            approval_ticket=self.approval_ticket,
            approved_by_note=", ".join(note) if isinstance(note, list) else note,
        )


# Described inline, as a Literal would be: a query parameter's schema takes no $ref.
Status = Annotated[
    RequestStatus, WithJsonSchema({"type": "string", "enum": list(values(RequestStatus))})
]


class PromotionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: EnvName | None = None
    env: EnvName | None = None
    status: Status | None = None
    artifact_id: Annotated[str, StringConstraints(pattern=r"^art-[0-9a-f]{20}$")] | None = None
    page: Page = 1
    per_page: PerPage = 50


class PromoteByName(PromoteBody):
    """Promote the artifact `app` `version` to `to`; `from` defaults to the environment
    before `to` in the policy."""

    from_required: ClassVar[bool] = False

    app: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] = Field(
        description="The artifact's name, e.g. web"
    )
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)] = Field(
        description="The artifact's version, e.g. 1.2.3"
    )


def _ask_of(model: type[PromoteBody], body: Any) -> PromoteBody:
    try:
        return model_of(model, body, 'body must be a JSON object: {"from": ..., "to": ...}')
    except _BodyProblem as exc:
        fields = [{"field": exc.field, "message": exc.message}]
        raise ApiError(422, f"invalid request: {exc.field}", fields) from None


@blueprint.post("/artifacts/<artifact_id>/promote")
@require_scope(Scope.PROMOTIONS_WRITE)
def promote_artifact(artifact_id: str) -> tuple[Response, int]:
    cid = correlation_id()
    ask = _ask_of(PromoteBody, json_body()).ask()
    artifact = current_runtime().index.get(artifact_id)
    if artifact is None:
        raise ApiError(404, f"no artifact {artifact_id!r}; list them with GET /api/v1/artifacts")
    return _promote(artifact, ask, cid)


@blueprint.post("/promotions")
@require_scope(Scope.PROMOTIONS_WRITE)
def promote_by_name() -> tuple[Response, int]:
    """`ritmo promote web 1.2.3 --to production`: the artifact named by app and version."""
    cid = correlation_id()
    body = _ask_of(PromoteByName, json_body())
    assert isinstance(body, PromoteByName)
    runtime = current_runtime()
    artifact = runtime.index.get(artifact_id_of(body.app, body.version))
    if artifact is None:
        raise ApiError(
            404,
            f"no artifact with app {body.app!r} and version {body.version!r}; list that app's "
            f"versions with GET /api/v1/artifacts?name={body.app}",
        )
    return _promote(artifact, body.ask(default_from=_source(body, artifact)), cid)


def _source(body: PromoteByName, artifact: IndexedArtifact) -> str | None:
    """Without `from`: the environment before `to` in the policy. An unknown `to` is left
    to the policy check, which names the environments."""
    if body.from_ or body.from_environment:
        return None
    to_env = str(body.to or body.to_environment)
    names = current_runtime().policy().environment_names
    if to_env not in names:
        return to_env
    where = names.index(to_env)
    if where == 0:
        raise ApiError(
            409, f"{to_env} is the first environment: registering an artifact puts it there"
        )
    before = names[where - 1]
    if artifact.promotion_status != before and artifact.promotion_status in names[:where]:
        step = names[names.index(artifact.promotion_status) + 1]
        raise ApiError(
            409,
            f"{body.app} {body.version} is in {artifact.promotion_status}, not {before}; "
            f"promote it to {step} first",
        )
    return before


def _promote(artifact: IndexedArtifact, ask: PromotionInput, cid: str) -> tuple[Response, int]:
    runtime = current_runtime()
    by = g.principal.name
    try:
        rule = runtime.promotions.check(artifact, ask)
        if rule.requires_approval:
            opened = runtime.requests.open(artifact, ask, rule, by, cid)
            response = jsonify(
                {"status": RequestStatus.PENDING, "environment": ask.to_env, "request": opened}
            )
            response.headers["Location"] = f"/api/v1/promotions/{opened['id']}"
            response.headers["X-Correlation-ID"] = cid
            return response, 202
        outcome: dict[str, Any] = runtime.promotions.promote(artifact, ask, by, cid)
    except (PromotionRefused, Conflict) as exc:
        raise ApiError(409, str(exc)) from None
    promotion = runtime.index.promotion("pro-" + str(outcome["commit"])[:16])
    artifact_id = artifact.record.id
    response = jsonify({**outcome, "artifact_id": artifact_id, "promotion": promotion})
    response.headers["X-Correlation-ID"] = cid
    return response, 201


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["approved", "changes_requested"] = "approved"
    commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")] | None = Field(
        default=None, description="The head you reviewed; refused if it is not the current one."
    )


@blueprint.post("/promotions/<request_id>/approvals")
@require_scope(Scope.PROMOTIONS_APPROVE)
def review_request(request_id: str) -> tuple[Response, int]:
    """Local forge: an authenticated user approves (or asks for changes on) a request."""
    raw = json_body() if request.content_length else {}
    body = model_of(ReviewBody, raw, 'body must be a JSON object: {"state": "approved"}')
    try:
        described = current_runtime().requests.review(
            request_id, g.principal, body.state, body.commit
        )
    except (PromotionRefused, Conflict) as exc:
        raise ApiError(409, str(exc)) from None
    return jsonify(described), 201


@blueprint.get("/promotions")
@require_scope(Scope.ARTIFACTS_READ)
def list_promotions() -> Response:
    query = query_of(PromotionQuery)
    runtime = current_runtime()
    found, total = promotion_history(
        runtime.index.engine, query.app, query.env, query.status, query.artifact_id,
        offset(query.page, query.per_page), query.per_page,
    )  # fmt: skip
    page: list[dict[str, Any] | None] = [
        runtime.requests.describe(row_id) if kind == "request" else runtime.index.promotion(row_id)
        for kind, row_id in found
    ]
    items = [item for item in page if item is not None]
    return page_of(".list_promotions", items, total, query.page, query.per_page)


@blueprint.get("/promotions/<promotion_id>")
@require_scope(Scope.ARTIFACTS_READ)
def show_promotion(promotion_id: str) -> Response:
    runtime = current_runtime()
    if promotion_id.startswith("req-") and runtime.requests_index.get(promotion_id):
        return jsonify(runtime.requests.describe(promotion_id))
    found = runtime.index.promotion(promotion_id)
    if found is None:
        raise ApiError(404, f"no promotion {promotion_id!r}; list them with GET /api/v1/promotions")
    return jsonify(found)
