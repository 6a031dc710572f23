"""The notification outbox: rendered requests stored durably until delivered or dead.

A row moves queued -> delivering (claimed by one worker) -> delivered, back to queued
(a failed attempt, retried after a backoff) or dead (permanent failure, or out of
attempts). Dead letters stay until an operator requeues them (`retry`). A `delivering`
row is leased: `next_attempt_at` is when its holder's claim runs out (renewed while it
works), after which any replica may take it again.

Rows hold the rendered request without credentials (secrets are resolved by name when
sent). The idempotency key is unique: storing the same work twice stores it once.
"""

from __future__ import annotations

import json
import random as _random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.store.schema import metadata
from bot.timestamps import stamp_epoch

Status = Literal["queued", "delivering", "delivered", "dead"]
STATUSES: tuple[Status, ...] = ("queued", "delivering", "delivered", "dead")

BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
RETRY_AFTER_CAP = 3600.0  # honour a receiver's Retry-After up to an hour
_ERROR_CHARS = 1000

outbox = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),  # the Idempotency-Key
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("app", sa.String(64), nullable=False),
    sa.Column("environment", sa.String(64)),
    sa.Column("integration", sa.String(128)),  # the integration's name, if any
    sa.Column("target", sa.String(32), nullable=False),  # its kind: slack, webhook, ...
    sa.Column("request", sa.Text, nullable=False),  # JSON: {"kind", "target", "event"}
    sa.Column("correlation_id", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False),  # epoch seconds
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("delivered_at", sa.String(32)),
    sa.Index("ix_notify_outbox_due", "status", "next_attempt_at"),
)


class NotDead(Exception):
    """Only a dead letter can be retried."""

    def __init__(self, row: OutboxRow) -> None:
        self.row = row
        super().__init__(
            f"notification {row.id} is {row.status}, not dead; only dead letters are retried"
        )


@dataclass(frozen=True)
class NewDelivery:
    key: str
    event: str
    app: str
    environment: str | None
    integration: str | None
    target: str
    request: dict[str, Any]
    correlation_id: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    event: str
    app: str
    environment: str | None
    integration: str | None
    target: str
    request: dict[str, Any]
    correlation_id: str | None
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: str
    delivered_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.key,
            "event": self.event,
            "app": self.app,
            "environment": self.environment,
            "integration": self.integration,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": None
            if self.status != "queued"
            else stamp_epoch(self.next_attempt_at),
            "last_error": self.last_error,
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
            "correlation_id": self.correlation_id,
            "request": self.request,
        }


def backoff(
    attempt: int,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds before the next try after the `attempt`-th failure (1-based): full
    jitter, uniformly in [0, min(cap, base * 2**(attempt-1)))."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return ceiling * random()


def _takeable(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(outbox.c.status.in_(("queued", "delivering")), outbox.c.next_attempt_at <= now)


def _row(row: sa.Row[Any]) -> OutboxRow:
    data = dict(row._mapping)
    data["request"] = json.loads(data["request"])
    return OutboxRow(**data)


class OutboxStore:
    """The table, over the shared engine. `clock`-free: callers pass `now` (epoch s)."""

    def __init__(
        self,
        engine: Engine,
        max_attempts: int = 8,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        random: Callable[[], float] = _random.random,
        lease: float = 60.0,
    ) -> None:
        self._engine = engine
        self.max_attempts = max_attempts
        self.lease = lease
        self._base = backoff_base
        self._cap = backoff_cap
        self._random = random
        metadata.create_all(engine, tables=[outbox])

    def enqueue(self, items: Sequence[NewDelivery], now: float) -> list[int]:
        """Store new work in one transaction; returns the ids of rows really added
        (an idempotency key already stored is skipped)."""
        if not items:
            return []
        try:
            with self._engine.begin() as conn:
                return self._insert(conn, items, now)
        except IntegrityError:
            # Another process stored one of the keys between our check and insert.
            with self._engine.begin() as conn:
                return self._insert(conn, items, now)

    def _insert(self, conn: sa.Connection, items: Iterable[NewDelivery], now: float) -> list[int]:
        wanted = {item.key: item for item in items}
        known = set(
            conn.execute(sa.select(outbox.c.key).where(outbox.c.key.in_(list(wanted)))).scalars()
        )
        added: list[int] = []
        for key, item in wanted.items():
            if key in known:
                continue
            result = conn.execute(
                outbox.insert().values(
                    key=key,
                    event=item.event,
                    app=item.app,
                    environment=item.environment,
                    integration=item.integration,
                    target=item.target,
                    request=json.dumps(item.request, sort_keys=True),
                    correlation_id=item.correlation_id,
                    status="queued",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=stamp_epoch(now),
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            added.append(int(pk[0]))
        return added

    def due(self, now: float, limit: int = 50) -> list[OutboxRow]:
        """Queued rows whose time has come and leased ones whose lease ran out, oldest
        first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox)
                .where(_takeable(now))
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
            ).all()
        return [_row(r) for r in rows]

    def next_due(self) -> float | None:
        """When the earliest queued row is due or lease runs out (epoch s); None when
        nothing is waiting."""
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
                    outbox.c.status.in_(("queued", "delivering"))
                )
            ).scalar_one()
        return None if value is None else float(value)

    def claim(self, row_id: int, now: float) -> bool:
        """Take a due row for delivery, leased until now + lease; False when another
        worker (here or on another replica) holds it."""
        with self._engine.begin() as conn:
            taken = conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, _takeable(now))
                .values(status="delivering", next_attempt_at=now + self.lease)
            )
        return taken.rowcount == 1

    def renew(self, row_id: int, now: float) -> None:
        """The holder is still at it: extend the lease."""
        with self._engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.status == "delivering")
                .values(next_attempt_at=now + self.lease)
            )

    def delivered(self, row_id: int, now: float) -> None:
        self._set(
            row_id,
            status="delivered",
            attempts=outbox.c.attempts + 1,
            delivered_at=stamp_epoch(now),
            last_error=None,
        )

    def failed(
        self, row_id: int, error: str, now: float, retry_after: float | None = None
    ) -> Status:
        """Count a failed attempt: queued again after a backoff (at least `retry_after`),
        or dead once `max_attempts` are spent. Returns the new status."""
        with self._engine.begin() as conn:
            attempts = (
                int(
                    conn.execute(
                        sa.select(outbox.c.attempts).where(outbox.c.id == row_id)
                    ).scalar_one()
                )
                + 1
            )
            values: dict[str, Any] = {"attempts": attempts, "last_error": error[:_ERROR_CHARS]}
            if attempts >= self.max_attempts:
                values["status"] = "dead"
                values["last_error"] = f"gave up after {attempts} attempts; last: {error}"[
                    :_ERROR_CHARS
                ]
            else:
                delay = backoff(attempts, self._base, self._cap, self._random)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
                values.update(status="queued", next_attempt_at=now + delay)
            conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))
        status: Status = values["status"]
        return status

    def dead(self, row_id: int, error: str) -> None:
        """A permanent failure: no more attempts until someone retries it."""
        self._set(
            row_id,
            status="dead",
            attempts=outbox.c.attempts + 1,
            last_error=error[:_ERROR_CHARS],
        )

    def get(self, row_id: int) -> OutboxRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).first()
        return _row(row) if row else None

    def search(
        self, status: Status | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[OutboxRow], int]:
        """Rows (of one status, or all), newest first, and how many there are in all."""
        where = [outbox.c.status == status] if status is not None else []
        count = sa.select(sa.func.count()).select_from(outbox).where(*where)
        query = sa.select(outbox).where(*where).order_by(outbox.c.id.desc())
        with self._engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return [_row(r) for r in rows], total

    def dead_letters(self, offset: int = 0, limit: int = 50) -> tuple[list[OutboxRow], int]:
        return self.search("dead", offset, limit)

    def retry(self, row_id: int, now: float) -> OutboxRow | None:
        """Requeue a dead letter with fresh attempts, due now. None: no such row;
        NotDead when the row is not dead (it is left as it is)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.status == "dead")
                .values(status="queued", attempts=0, next_attempt_at=now)
            )
        row = self.get(row_id)
        if row is not None and done.rowcount != 1:
            raise NotDead(row)
        return row

    def counts(self) -> dict[str, int]:
        """How many rows are in each status (for metrics and health)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
            ).all()
        found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    def _set(self, row_id: int, **values: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))
