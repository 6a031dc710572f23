"""Query helpers shared by the indexes: ordering by appearance, paging, and the promotion
history that pages requests and direct promotions together."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.statuses import RequestStatus
from bot.store.locks import lock_key
from bot.store.schema import promotions, requests


def last_seq(conn: sa.Connection, table: sa.Table) -> int:
    """The highest `seq` in `table` (0 when empty): rows are ordered by appearance.

    On PostgreSQL this first takes a transaction-scoped lock on the table's sequence, so
    replicas adding rows at once neither tie on max + 1 nor both insert a row that each
    found missing; the lock goes with the caller's transaction. (SQLite's writer lock
    does the same there.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"seq/{table.name}")}
        )
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.seq), 0))).scalar_one())


def promotion_history(
    engine: Engine,
    app: str | None = None,
    env: str | None = None,
    status: RequestStatus | None = None,
    artifact_id: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[tuple[str, str]], int]:
    """Promotion requests and direct promotions, newest first, paged in SQL: the page's
    ("request" | "promotion", id) and how many match. A merged request's promotion is
    listed once, as the request; `status` "promoted" means direct promotions only, other
    statuses are a request's; requests are listed without `artifact_id` only."""
    parts: list[sa.Select[Any]] = []
    if status != RequestStatus.PROMOTED and artifact_id is None:
        where = _equal({requests.c.app: app, requests.c.to_env: env, requests.c.status: status})
        parts.append(
            sa.select(
                sa.literal("request").label("kind"), requests.c.id.label("id"),
                requests.c.opened_at.label("at"), requests.c.seq.label("seq"),
            ).where(*where)
        )  # fmt: skip
    if status in (None, RequestStatus.PROMOTED):
        where = _equal(
            {promotions.c.app: app, promotions.c.to_env: env, promotions.c.artifact_id: artifact_id}
        )
        parts.append(
            sa.select(
                sa.literal("promotion").label("kind"), promotions.c.id.label("id"),
                promotions.c.promoted_at.label("at"), promotions.c.seq.label("seq"),
            ).where(promotions.c.request_id.is_(None), *where)
        )  # fmt: skip
    if not parts:
        return [], 0
    both = (sa.union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    newest = (sa.func.coalesce(both.c.at, "").desc(), both.c.seq.desc())
    with engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(both)).scalar_one())
        rows = conn.execute(
            sa.select(both.c.kind, both.c.id).order_by(*newest).offset(offset).limit(limit)
        ).all()
    return [(str(kind), str(row_id)) for kind, row_id in rows], total


def _equal(wanted: dict[sa.Column[Any], Any]) -> list[sa.ColumnElement[bool]]:
    return [column == value for column, value in wanted.items() if value is not None]


def page_rows(
    engine: Engine, table: sa.Table, equal: dict[str, Any], offset: int, limit: int
) -> tuple[list[sa.Row[Any]], int]:
    """Rows whose columns equal the given values (None: any), newest first, and the count."""
    where = _equal({table.c[column]: value for column, value in equal.items()})
    count = sa.select(sa.func.count()).select_from(table).where(*where)
    query = sa.select(table).where(*where).order_by(table.c.seq.desc())
    with engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
        rows = list(conn.execute(query.offset(offset).limit(limit)).all())
    return rows, total
