"""GET /api/v1/environments: apps x environments, what git pins and whether Ritmo recorded it."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError, reason_of
from bot.api.parse import query_of
from bot.auth import Scope
from bot.manifests.records import NAME_PATTERN

blueprint = Blueprint("environments", __name__, url_prefix="/api/v1")


class EnvironmentsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = Field(
        default=None, description="Only this app."
    )


# -- the response, for the OpenAPI document (tests check the API against it) -----------


class Deployment(BaseModel):
    """The latest deployment reported for the app in the environment."""

    model_config = ConfigDict(extra="forbid")

    id: str
    artifact_id: str
    version: str | None
    status: str = Field(description="progressing, succeeded, failed or degraded")
    rolled_back: bool
    at: str | None = Field(description="When the deployment last changed (ISO 8601)")


class EnvironmentCell(BaseModel):
    """What one environment of one app runs, as the default branch's tip pins it."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(
        description="The pinned artifact's version; the pinned tag or digest itself when no "
        "artifact record has it; null when nothing is pinned"
    )
    pinned: str | None = Field(description="The tag or digest the overlay holds")
    artifact_id: str | None = Field(description="The artifact record with that value, if any")
    commit: str | None = Field(
        description="The last first-parent commit of the default branch that changed the pin"
    )
    recorded: bool = Field(
        description="false for a pin Ritmo did not record: set by a commit not signed by "
        "Ritmo (a hand pin), or not what Ritmo's last promotion or rollback there says"
    )
    recorded_by: str | None = Field(description="The Ritmo-signed commit that recorded it")
    promotion: str | None = Field(description="The promotion (pro-...) or request (req-...)")
    pinned_by: str | None = Field(
        description="Who promoted or rolled back; for an unrecorded pin, the commit's author"
    )
    pinned_at: str | None = Field(description="The pinning commit's time (ISO 8601)")
    rolled_back: bool = Field(description="A rollback pinned it")
    rolled_back_from: str | None = Field(description="The version a rollback replaced")
    path: str = Field(description="The overlay file, per the policy's app target")
    health: str | None = Field(description="The latest deployment's status; null: none")
    deployment: Deployment | None


class AppEnvironments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str
    environments: dict[str, EnvironmentCell] = Field(description="In the policy's order")


class Environments(BaseModel):
    """Apps (from the index and the policy) x environments (in the policy's order)."""

    model_config = ConfigDict(extra="forbid")

    tip: str | None = Field(description="The default branch's commit this was read at")
    environments: list[str]
    apps: list[AppEnvironments]


@blueprint.get("/environments")
@require_scope(Scope.ARTIFACTS_READ)
def list_environments() -> Response:
    query = query_of(EnvironmentsQuery)
    runtime = current_runtime()
    try:
        table = runtime.environments.table(query.app)
    except (RuntimeError, OSError) as exc:  # no policy read yet; git failed
        raise ApiError(503, f"cannot read the environments now: {reason_of(exc)}", headers={
            "Retry-After": "5"
        }) from None  # fmt: skip
    return jsonify(table)
