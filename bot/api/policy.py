"""PUT /api/v1/policy: change the policy through Ritmo, judged by the policy in force."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bot.api.artifacts import correlation_id
from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.api.parse import body_of
from bot.auth import Scope
from bot.manifests.writer import Conflict
from bot.policy.load import BRANCH_POLICY_PATH, PolicyError
from bot.promotions.policy_change import PolicyRequests
from bot.promotions.service import PromotionRefused

blueprint = Blueprint("policy", __name__, url_prefix="/api/v1")

MAX_POLICY = 256 * 1024
Reason = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[\x20-\x7e]*$")]


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(max_length=MAX_POLICY, description="The whole .ritmo/policy.yaml text.")
    reason: Reason = Field(
        default="no reason given", description="One line, recorded as Ritmo-Reason."
    )


@blueprint.put("/policy")
@require_scope(Scope.ADMIN)
def apply_policy() -> tuple[Response, int]:
    cid = correlation_id()
    body = body_of(PolicyBody, 'body must be a JSON object: {"policy": "<yaml>", "reason": "..."}')
    runtime = current_runtime()
    service = runtime.requests
    if not isinstance(service, PolicyRequests):
        raise ApiError(503, "this server cannot change the policy")
    try:
        applied = service.apply_policy(body.policy, body.reason, g.principal.name, cid)
    except PolicyError as exc:
        fields = [
            {"field": "policy", "message": f"{p.line}:{p.column}: {p.message}"}
            for p in exc.problems
        ]
        raise ApiError(
            422, f"invalid policy ({len(fields)} problem(s)); nothing was written", fields
        ) from None
    except (Conflict, PromotionRefused) as exc:
        raise ApiError(409, str(exc)) from None
    out = {"status": applied.status, "path": BRANCH_POLICY_PATH, "policy": applied.blob,
           "commit": applied.commit, "request": applied.request}  # fmt: skip
    response = jsonify(out)
    response.headers["X-Correlation-ID"] = cid
    if applied.request is not None:
        response.headers["Location"] = f"/api/v1/promotions/{applied.request['id']}"
        return response, 202
    return response, 201 if applied.status == "changed" else 200
