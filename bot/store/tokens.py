"""API tokens in the database, shared by every replica: a digest per token, never the secret.

Every request reads its token's row by digest, so a revoke takes effect on the next request
everywhere; nothing is cached. Requests that arrive together share one lookup (bot/store/
group_commit.py), started after each of them arrived: a burst costs a few queries, not one
a request, and a request that starts after a revoke committed still sees it.

Names are unique ignoring case, enforced by a unique column holding the folded name, so two
replicas creating `alice` and `Alice` at once cannot both succeed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.auth import (
    Principal,
    Scope,
    TokenError,
    check_groups,
    check_name,
    check_scopes,
    digest,
    identity_key,
    new_secret,
)
from bot.store.group_commit import GroupCommit
from bot.store.schema import metadata

# Not git-derived: a schema rebuild of the index keeps it (bot/store/schema.py GIT_DERIVED).
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("name_key", sa.String(128), primary_key=True),  # the name, casefolded
    sa.Column("name", sa.String(128), nullable=False),  # as its creator wrote it
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.Text, nullable=False),  # JSON list
    sa.Column("groups", sa.Text, nullable=False),  # JSON list
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("last_used_at", sa.String(32)),
)

# Digests of revoked tokens, so that no tokens file (another replica's copy) brings one back.
revoked_tokens = sa.Table(
    "api_tokens_revoked",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=False),
)

# `last_used_at` is written at most this often per token: a read per request, rarely a write.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: everything but its secret and digest."""

    name: str
    scopes: tuple[str, ...]
    groups: tuple[str, ...]
    created_at: str
    last_used_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "groups": list(self.groups),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenStore:
    """`reserved`: names no token may take besides `ritmo` (the App's bot login)."""

    def __init__(
        self,
        engine: Engine,
        reserved: Iterable[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._reserved = tuple(reserved)
        self._clock = clock
        self._lookups: GroupCommit[str, Any] = GroupCommit(self._rows_of)
        metadata.create_all(engine, tables=[api_tokens, revoked_tokens])

    def create(self, name: str, scopes: Iterable[str], groups: Iterable[str] = ()) -> str:
        """A new token's secret, shown this once; only its digest is kept."""
        return self.issue(name, scopes, groups)[0]

    def issue(
        self, name: str, scopes: Iterable[str], groups: Iterable[str] = ()
    ) -> tuple[str, TokenInfo]:
        secret = new_secret()
        return secret, self.add(name, digest(secret), scopes, groups, _stamp(self._clock()))

    def add(
        self,
        name: str,
        sha256: str,
        scopes: Iterable[str],
        groups: Iterable[str],
        created_at: str,
    ) -> TokenInfo:
        """Store a token by its digest (a new one, or one imported from a tokens file)."""
        check_name(name, self._reserved)
        row = {
            "name_key": identity_key(name),
            "name": name,
            "sha256": sha256,
            "scopes": json.dumps([s.value for s in check_scopes(scopes)]),
            "groups": json.dumps(check_groups(groups)),
            "created_at": created_at,
            "last_used_at": None,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(api_tokens.insert().values(**row))
        except IntegrityError:
            taken = self.find(name)
            if taken is None:  # the digest clashed: a token stored twice, not a name
                raise TokenError("token", "this token is already stored", 409) from None
            raise TokenError(
                "name",
                f"name {name!r} is taken by the token {taken.name!r} (names ignore case); "
                "choose another, or revoke that one first",
                409,
            ) from None
        return _info(row)

    def authenticate(self, presented: str) -> Principal | None:
        # A lookup by digest: the digest of a guess says nothing about a real token's, so
        # the index's timing leaks nothing worth having.
        row = self._lookups.submit(digest(presented))
        if row is None:
            return None
        return Principal(
            name=row.name,
            scopes=frozenset(Scope(s) for s in json.loads(row.scopes)),
            groups=frozenset(json.loads(row.groups)),
        )

    def _rows_of(self, digests: list[str]) -> Sequence[Any]:
        """The row of each digest (None for an unknown one), in one query; each token
        found is touched once however many of the requests carried it."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.sha256.in_(sorted(set(digests))))
            ).all()
        rows = {row.sha256: row for row in found}
        for row in rows.values():
            self._touch(row.name_key, row.last_used_at)
        return [rows.get(d) for d in digests]

    def find(self, name: str) -> TokenInfo | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.name_key == identity_key(name))
            ).first()
        return _info(row._mapping) if row else None

    def all(self) -> list[TokenInfo]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.name_key)).all()
        return [_info(r._mapping) for r in rows]

    def knows(self, sha256: str) -> bool:
        """The digest is a token stored now, or one revoked."""
        with self._engine.connect() as conn:
            for table in (api_tokens, revoked_tokens):
                if conn.execute(sa.select(table.c.sha256).where(table.c.sha256 == sha256)).first():
                    return True
        return False

    def revoke(self, name: str) -> TokenInfo:
        """Delete the token named `name` (any case); the next request with it is refused."""
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.name_key == identity_key(name))
            ).first()
            if row is None:
                raise TokenError("name", f"no token named {name!r}; see `ritmo token list`", 404)
            conn.execute(api_tokens.delete().where(api_tokens.c.name_key == row.name_key))
            conn.execute(
                revoked_tokens.insert().values(
                    sha256=row.sha256, name=row.name, revoked_at=_stamp(self._clock())
                )
            )
        return _info(row._mapping)

    def memberships(self) -> dict[str, frozenset[str]]:
        """group -> the token names (users) that carry it: the local forge's groups."""
        groups: dict[str, set[str]] = {}
        for token in self.all():
            for group in token.groups:
                groups.setdefault(group, set()).add(token.name)
        return {g: frozenset(names) for g, names in groups.items()}

    def names(self) -> list[str]:
        return [t.name for t in self.all()]

    def _touch(self, name_key: str, last_used_at: str | None) -> None:
        now = self._clock()
        cutoff = _stamp(now - TOUCH_EVERY)
        if last_used_at is not None and last_used_at > cutoff:
            return
        column = api_tokens.c.last_used_at
        with self._engine.begin() as conn:
            # The condition again: replicas touching at once write once.
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name_key == name_key)
                .where(sa.or_(column.is_(None), column <= cutoff))
                .values(last_used_at=_stamp(now))
            )


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        name=row["name"],
        scopes=tuple(json.loads(row["scopes"])),
        groups=tuple(json.loads(row["groups"])),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )
