"""API tokens and identities: scopes, who a caller is, and the rules a token's name obeys.

Pure: the tokens themselves live in the database (bot/store/tokens.py), only as digests.
An identity is a name compared ignoring case everywhere (a token's name, a GitHub login):
`Release-Bot` and `release-bot` are one person, so one cannot approve what the other asked.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

TOKEN_PREFIX = "ritmo_"
# Ritmo's own identity: the local forge's author and the commits' reviewer of record.
RITMO = "ritmo"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Scope(enum.StrEnum):
    ARTIFACTS_WRITE = "artifacts:write"
    ARTIFACTS_READ = "artifacts:read"
    PROMOTIONS_WRITE = "promotions:write"
    PROMOTIONS_APPROVE = "promotions:approve"
    DEPLOYMENTS_WRITE = "deployments:write"
    ADMIN = "admin"


class TokenError(ValueError):
    """A token cannot be created or found as asked: `field` names what to fix, `status` is
    the HTTP answer (422 bad input, 409 a name taken, 404 no such token)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who an API call comes from: the token's name is the caller's identity."""

    name: str
    scopes: frozenset[Scope]
    groups: frozenset[str] = frozenset()

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def identity_key(name: str) -> str:
    """The form two identities are compared in: GitHub logins ignore case, so do we."""
    return name.casefold()


def is_among(name: str, names: Iterable[str]) -> bool:
    """`name` is one of `names`, ignoring case."""
    key = identity_key(name)
    return any(identity_key(other) == key for other in names)


def digest(token: str) -> str:
    # Tokens are 256 random bits, so a plain hash is enough; no password stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str, reserved: Iterable[str]) -> None:
    """Refuse a name that is not a plain identity, or that is Ritmo's or a bot's."""
    # GitHub Apps act as `<slug>[bot]`: no token may pass for one, known or not.
    if is_among(name, [RITMO, *reserved]) or identity_key(name).endswith("[bot]"):
        raise TokenError("name", f"name {name!r} is reserved for Ritmo itself; choose another")
    if not _NAME.match(name):
        raise TokenError("name", f"name {name!r}: use letters, digits and . _ @ - (max 128)")


def check_scopes(scopes: Iterable[str]) -> list[Scope]:
    try:
        parsed = sorted({Scope(s) for s in scopes})
    except ValueError as exc:
        known = ", ".join(s.value for s in Scope)
        raise TokenError("scopes", f"scope: {exc}; known scopes: {known}") from None
    if not parsed:
        raise TokenError("scopes", "scope: give at least one scope")
    return parsed


def check_groups(groups: Iterable[str]) -> list[str]:
    for group in groups:
        if not _NAME.match(group):
            raise TokenError("groups", f"group {group!r}: use letters, digits and . _ @ -")
    return sorted(set(groups))


def reserved_names(forge_kind: str, bot_login: str | None) -> tuple[str, ...]:
    """The names no token may take: Ritmo's, and the GitHub App's bot login when known."""
    return (RITMO, bot_login) if forge_kind == "github" and bot_login else (RITMO,)
