"""Webhook deliveries: de-duplicated by delivery id, queued durably until handled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.store.index import last_seq, metadata

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


class DeliveryQueue:
    """Survives a restart: what was acknowledged is handled, once, by whoever runs next.

    A delivery being handled is `running` with a lease (`not_before` is when it runs out),
    renewed by its holder; when a holder dies its deliveries are due again once their
    leases run out, on whichever replica drains next."""

    def __init__(self, engine: Engine, max_attempts: int = 5, lease: float = 60.0) -> None:
        self._engine = engine
        self.max_attempts = max_attempts
        self.lease = lease
        metadata.create_all(engine)
        # The queue outlives upgrades (create_all adds no index to an existing table).
        for index in deliveries.indexes:
            index.create(engine, checkfirst=True)

    def accept(self, delivery_id: str, event: str, payload: str) -> bool:
        """Queue a delivery; False when this delivery id was seen before."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    deliveries.insert().values(
                        delivery_id=delivery_id,
                        event=event,
                        payload=payload,
                        status="queued",
                        attempts=0,
                        received_at=_now(),
                        not_before=0.0,
                        seq=last_seq(conn, deliveries) + 1,
                    )
                )
        except IntegrityError:
            return False
        return True

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
