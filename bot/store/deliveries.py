"""Webhook deliveries: de-duplicated by delivery id, queued durably until handled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.store.group_commit import GroupCommit
from bot.store.query import last_seq
from bot.store.schema import metadata

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(128), primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # queued running done failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("not_before", sa.Float, nullable=False, default=0.0),  # retry backoff
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Index("ix_webhook_deliveries_seq", "seq"),
)


def _takeable(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(deliveries.c.status.in_(("queued", "running")), deliveries.c.not_before <= now)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Arrival:
    """A delivery to queue, as the receiver got it."""

    delivery_id: str
    event: str
    payload: str
    received_at: str


@contextmanager
def _acknowledging(conn: sa.Connection) -> Iterator[None]:
    """One transaction that is on disk when it returns.

    SQLite: the writer lock is taken up front (BEGIN IMMEDIATE, so max(seq) and the
    duplicate check see every other process's committed rows), and the commit waits for
    the WAL to reach the disk (synchronous FULL: an acknowledged delivery survives a power
    cut; GitHub does not send it again). One fsync per group, not per delivery. PostgreSQL
    commits durably by default, and last_seq's advisory lock orders the replicas."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA synchronous=FULL")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if sqlite:  # back to the engine's setting (bot/store/schema.py) for the pool's next user
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.rollback()  # ends nothing: the pragma is outside any transaction


class DeliveryQueue:
    """Survives a restart: what was acknowledged is handled, once, by whoever runs next.

    A delivery being handled is `running` with a lease (`not_before` is when it runs out),
    renewed by its holder; when a holder dies its deliveries are due again once their
    leases run out, on whichever replica drains next."""

    def __init__(self, engine: Engine, max_attempts: int = 5, lease: float = 60.0) -> None:
        self._engine = engine
        self.max_attempts = max_attempts
        self.lease = lease
        # Deliveries acknowledged at the same time share one transaction.
        self._arrivals: GroupCommit[Arrival, bool] = GroupCommit(self._insert)
        metadata.create_all(engine)
        # The queue outlives upgrades (create_all adds no index to an existing table).
        for index in deliveries.indexes:
            index.create(engine, checkfirst=True)

    def accept(self, delivery_id: str, event: str, payload: str) -> bool:
        """Queue a delivery; False when this delivery id was seen before. Returns once the
        row is committed (with whatever other deliveries arrived meanwhile)."""
        return self._arrivals.submit(Arrival(delivery_id, event, payload, _now()))

    def _insert(self, batch: list[Arrival]) -> list[bool]:
        """Insert the deliveries not seen before, in one transaction; which were new."""
        with self._engine.connect() as conn, _acknowledging(conn):
            seq = last_seq(conn, deliveries)
            ids = {a.delivery_id for a in batch}
            seen = set(
                conn.execute(
                    sa.select(deliveries.c.delivery_id).where(deliveries.c.delivery_id.in_(ids))
                ).scalars()
            )
            rows: list[dict[str, Any]] = []
            fresh: list[bool] = []
            for arrival in batch:
                new = arrival.delivery_id not in seen
                fresh.append(new)
                if new:
                    seen.add(arrival.delivery_id)  # a second copy in the same batch
                    seq += 1
                    rows.append(
                        {"delivery_id": arrival.delivery_id, "event": arrival.event,
                         "payload": arrival.payload, "status": "queued", "attempts": 0,
                         "received_at": arrival.received_at, "not_before": 0.0, "seq": seq}
                    )  # fmt: skip
            if rows:
                conn.execute(deliveries.insert(), rows)
        return fresh

    def due(self, now: float, limit: int = 50) -> list[dict[str, Any]]:
        """Queued deliveries whose backoff is over, and running ones whose lease ran out."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries).where(_takeable(now)).order_by(deliveries.c.seq).limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    def claim(self, delivery_id: str, now: float) -> bool:
        """Take a due delivery for handling, leased until now + lease; False when someone
        else holds it (one UPDATE: of two claimants, the second finds the lease taken)."""
        with self._engine.begin() as conn:
            taken = conn.execute(
                deliveries.update()
                .where(deliveries.c.delivery_id == delivery_id, _takeable(now))
                .values(
                    status="running",
                    not_before=now + self.lease,
                    attempts=deliveries.c.attempts + 1,
                )
            )
        return taken.rowcount == 1

    def renew(self, delivery_id: str, now: float) -> None:
        """The holder is still at it: extend the lease."""
        with self._engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.delivery_id == delivery_id, deliveries.c.status == "running")
                .values(not_before=now + self.lease)
            )

    def done(self, delivery_id: str) -> None:
        self._set(delivery_id, status="done")

    def failed(self, delivery_id: str, error: str, attempts: int, retry_at: float) -> None:
        """Count a failed attempt; give up (status failed) after max_attempts."""
        status = "failed" if attempts >= self.max_attempts else "queued"
        self._set(
            delivery_id, status=status, attempts=attempts, last_error=error, not_before=retry_at
        )

    def depth(self) -> int:
        with self._engine.connect() as conn:
            count = sa.select(sa.func.count()).where(deliveries.c.status == "queued")
            return int(conn.execute(count).scalar_one())

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id)
            ).first()
        return dict(row._mapping) if row else None

    def _set(self, delivery_id: str, **values: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                deliveries.update().where(deliveries.c.delivery_id == delivery_id).values(**values)
            )
