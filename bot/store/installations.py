"""Where the GitHub App is installed: accounts, their repositories, and whether it is active."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.store.schema import metadata

installations = sa.Table(
    "github_installations",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("account_type", sa.String(32)),  # Organization or User
    sa.Column("repository_selection", sa.String(16)),  # all or selected
    sa.Column("repositories", sa.Text, nullable=False),  # JSON list of owner/name, sorted
    sa.Column("status", sa.String(16), nullable=False),  # active, suspended, deleted
    sa.Column("updated_at", sa.String(32), nullable=False),
)


@dataclass(frozen=True)
class Installation:
    id: int
    account: str
    account_type: str | None
    repository_selection: str | None
    repositories: tuple[str, ...]
    status: str
    updated_at: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class InstallationIndex:
    """One row per installation, kept as `installation` and `installation_repositories`
    deliveries say. `repositories` lists what the deliveries named: with selection `all`,
    GitHub sends no list, so an empty list there means "every repository of the account"."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine, tables=[installations])

    def installed(
        self,
        installation_id: int,
        account: str,
        account_type: str | None,
        repository_selection: str | None,
        repositories: Iterable[str],
    ) -> None:
        self._upsert(
            installation_id,
            account=account,
            account_type=account_type,
            repository_selection=repository_selection,
            repositories=_dump(repositories),
            status="active",
        )

    def set_status(self, installation_id: int, status: str, account: str) -> None:
        self._upsert(installation_id, status=status, account=account)

    def change_repositories(
        self,
        installation_id: int,
        account: str,
        repository_selection: str | None,
        added: Iterable[str] = (),
        removed: Iterable[str] = (),
    ) -> None:
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(installations.c.repositories).where(installations.c.id == installation_id)
            ).first()
            current = set(json.loads(row.repositories)) if row else set()
            current = (current | set(added)) - set(removed)
            self._upsert(
                installation_id,
                conn=conn,
                account=account,
                repository_selection=repository_selection,
                repositories=_dump(current),
            )

    def get(self, installation_id: int) -> Installation | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(installations).where(installations.c.id == installation_id)
            ).first()
        return _installation(row) if row else None

    def all(self) -> list[Installation]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(installations).order_by(installations.c.id)).all()
        return [_installation(r) for r in rows]

    def covering(self, repository: str) -> list[Installation]:
        """Active installations that name `repository` (owner/name) or cover all of its
        account's repositories."""
        owner = repository.split("/", 1)[0].casefold()
        found = []
        for inst in self.all():
            if inst.status != "active":
                continue
            named = repository.casefold() in {r.casefold() for r in inst.repositories}
            if named or (inst.repository_selection == "all" and inst.account.casefold() == owner):
                found.append(inst)
        return found

    def _upsert(
        self, installation_id: int, conn: sa.Connection | None = None, **values: Any
    ) -> None:
        if conn is None:
            with self._engine.begin() as own:
                self._upsert(installation_id, own, **values)
            return
        values["updated_at"] = _now()
        updated = conn.execute(
            installations.update().where(installations.c.id == installation_id).values(**values)
        )
        if updated.rowcount == 0:
            row = {"repositories": "[]", "status": "active", **values}
            conn.execute(installations.insert().values(id=installation_id, **row))


def _dump(repositories: Iterable[str]) -> str:
    return json.dumps(sorted(set(repositories)))


def _installation(row: sa.Row[Any]) -> Installation:
    return Installation(
        id=int(row.id),
        account=row.account,
        account_type=row.account_type,
        repository_selection=row.repository_selection,
        repositories=tuple(json.loads(row.repositories)),
        status=row.status,
        updated_at=row.updated_at,
    )
