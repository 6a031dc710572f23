"""GET/POST /api/v1/tokens and DELETE /api/v1/tokens/{name}: API tokens, for admins.

The secret is in the POST's answer only; the list shows names, scopes, groups, when each was
created and last used. A revoke is refused at once by every replica (they read the database).
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.api.parse import body_of
from bot.auth import Scope, TokenError
from bot.store.tokens import TokenStore

blueprint = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")

_Text = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _Text = Field(
        description="Who uses the token; their identity, unique ignoring case. Letters, "
        "digits and . _ @ -; `ritmo` and the GitHub App's bot login are reserved."
    )
    scopes: list[Scope] = Field(min_length=1, description="At least one scope.")
    groups: list[_Text] = Field(default_factory=list, description="Approver groups.")


def _tokens() -> TokenStore:
    tokens: TokenStore = current_runtime().tokens
    return tokens


def _refused(exc: TokenError) -> ApiError:
    return ApiError(exc.status, str(exc), [{"field": exc.field, "message": str(exc)}])


@blueprint.get("")
@require_scope(Scope.ADMIN)
def list_tokens() -> Response:
    found = _tokens().all()
    return jsonify({"items": [t.as_json() for t in found], "total": len(found)})


@blueprint.post("")
@require_scope(Scope.ADMIN)
def create_token() -> tuple[Response, int]:
    body = body_of(TokenBody, 'body must be a JSON object: {"name": ..., "scopes": [...]}')
    try:
        secret, made = _tokens().issue(body.name, body.scopes, body.groups)
    except TokenError as exc:
        raise _refused(exc) from None
    return jsonify({**made.as_json(), "token": secret}), 201


@blueprint.delete("/<name>")
@require_scope(Scope.ADMIN)
def revoke_token(name: str) -> Response:
    try:
        gone = _tokens().revoke(name)
    except TokenError as exc:
        raise _refused(exc) from None
    return jsonify({**gone.as_json(), "revoked": True})
