"""Bearer-token checks for the REST API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.auth import Principal, Scope
from bot.store.tokens import TokenStore

P = ParamSpec("P")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ritmo"'}
R = TypeVar("R")


def require_scope(scope: Scope, *others: Scope) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The view needs a token with `scope` (or any of `others`)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            g.principal = authenticate(scope, *others)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def authenticate(scope: Scope, *others: Scope) -> Principal:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "missing bearer token; send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    store: TokenStore = current_runtime().tokens
    principal = store.authenticate(token.strip())
    if principal is None:
        raise ApiError(
            401, "unknown token; create one with `ritmo token create`", headers=_CHALLENGE
        )
    if not any(principal.allows(s) for s in (scope, *others)):
        wanted = " or ".join(s.value for s in (scope, *others))
        raise ApiError(403, f"token {principal.name!r} lacks the scope {wanted}")
    return principal
